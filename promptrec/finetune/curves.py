"""The learning curve of a fine-tuning run: training loss and validation HR@1 / NDCG@10 per step (PNG), with the
fused NDCG@10 and how often the model's top label is the first one shown where they were recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def plot_training(history: Sequence[dict[str, Any]], path: str | Path, title: str = "LoRA training") -> Path:
    """Write the curve of a ``train_lora`` record's ``history`` to ``path``."""
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    steps = [h["step"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    lossy = [(h["step"], h["loss"]) for h in history if h.get("loss") is not None]
    if lossy:
        left.plot(*zip(*lossy), marker="o")
    left.set(xlabel="step", ylabel="training loss (mean since last validation)", title="loss")
    for key in ("HR@1", "NDCG@10"):
        right.plot(steps, [h[key] for h in history], marker="o", label=key)
    extra = {"fused NDCG@10": "NDCG@10 fused with the retriever", "first_label_top": "top label is the first shown"}
    for key, label in extra.items():
        if all(key in h for h in history):  # runs since it was recorded
            right.plot(steps, [h[key] for h in history], marker=".", linestyle="--", label=label)
    right.set(xlabel="step", ylabel="validation", title="validation", ylim=(0, 1))
    right.legend()
    fig.suptitle(title)
    save_figure(fig, path)
    return Path(path)
