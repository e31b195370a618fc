"""LoRA fine-tuning of the reranker on the user's own logs: ``finetune(...)`` / ``promptrec finetune``.

    report = finetune("../shared/data/ml-100k", out="adapters/ml100k-lora", examples=1500)
    reranker = Reranker(catalog=ds.catalog, adapter="adapters/ml100k-lora")   # vLLM LoRA or peft

Examples come from the training split only (see :mod:`promptrec.finetune.examples`); early
stopping uses examples built from the split's validation events, which are held out in time.
Hard negatives come from a time-aware retriever fitted on the training events (transition,
trending and freshness signals, so no item index is needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptrec.finetune.adapter import AdapterError, base_model_id, check_adapter, read_manifest, write_manifest
from promptrec.finetune.train import LoraConfig

__all__ = ["AdapterError", "LoraConfig", "check_adapter", "finetune", "read_manifest", "sample_positions",
           "train_and_write"]

TEMPLATES = {"label_scoring": "label_scoring.j2", "listwise": "listwise.j2"}
SHARED_TEMPLATES = ["history.j2", "candidates.j2", "evidence.j2", "item_prompt.j2"]


def finetune(data: str | Path | None = None, *, out: str | Path, format: str = "auto", model: str | None = None,
             task: str = "label_scoring", examples: int = 1500, valid_examples: int = 200, hard_negatives: int = 10,
             random_negatives: int = 9, evidence: bool = True, split: str = "leave-last-out",
             prompts_dir: str | Path | None = None, max_prompt_tokens: int = 800, labels: str = "letters",
             lora: LoraConfig | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Build examples, train a LoRA adapter, write it to ``out`` with its manifest; returns the manifest."""
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import make_split
    from promptrec.finetune.examples import build_examples, training_targets
    from promptrec.models import DEFAULT_LLM, load_tokenizer
    from promptrec.prompt.builder import PromptBuilder
    from promptrec.retriever.retriever import TimeAwareRetriever

    model = model or DEFAULT_LLM
    lora = lora or LoraConfig(seed=seed)
    ds = load_dataset(data, format=format, **({} if data is None or format == "demo" else {"seed": seed}))
    sp = make_split(ds.interactions, split)
    retriever = TimeAwareRetriever(signals=["transition", "trending", "freshness"]).fit(sp.train, ds.catalog,
                                                                                         log=sp.train)
    tokenizer = load_tokenizer(model)
    builder = PromptBuilder(prompts_dir=prompts_dir, tokenizer=tokenizer, max_prompt_tokens=max_prompt_tokens,
                            labels=labels, timezone=ds.interactions.timezone)
    kw = dict(task=task, hard_negatives=hard_negatives, random_negatives=random_negatives, evidence=evidence,
              progress=progress)
    train = build_examples(training_targets(sp.train, examples, seed=seed), sp.train, retriever, ds.catalog, builder,
                           seed=seed, **kw)
    valid_targets = [sp.validation[i] for i in sample_positions(len(sp.validation), valid_examples, seed)]
    valid = build_examples(valid_targets, sp.train, retriever, ds.catalog, builder, seed=seed + 1, **kw)
    n = 1 + hard_negatives + random_negatives
    data_info = {"dataset": ds.name, "split": sp.describe(), "candidates": n, "hard_negatives": hard_negatives,
                 "random_negatives": random_negatives, "evidence": evidence, "seed": seed,
                 "max_prompt_tokens": max_prompt_tokens}
    return train_and_write(model, builder, train, valid, out, lora, task=task, candidates=n, data_info=data_info,
                            progress=progress)


def train_and_write(model: str, builder: Any, train: list, valid: list, out: str | Path, lora: LoraConfig, *,
                     task: str, candidates: int, data_info: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Train on the examples, then write the adapter's manifest and learning curve into ``out``; the manifest
    (also used by :func:`promptrec.eval.finetune_config.finetune_on_config`)."""
    from promptrec.finetune.curves import plot_training
    from promptrec.finetune.train import train_lora
    from promptrec.models import resolve_model
    from promptrec.prompt.labels import label_token_ids

    label_ids = label_token_ids(builder.tokenizer, builder.labels.labels(candidates), "" if builder.chat else " ")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = train_lora(resolve_model(model), train, valid, out, lora, label_ids=label_ids, progress=progress)
    manifest = {
        "base_model": base_model_id(model), "task": task, "labels": builder.labels.kind,
        "templates": {name: builder.library.source_hash(name) for name in SHARED_TEMPLATES + [TEMPLATES[task]]},
        "data": {**data_info, "train_examples": len(train), "validation_examples": len(valid)},
        "training": record["config"], "validation": {"before_training": record["history"][0] if valid else None,
                                                     "best": record["best"], "history": record["history"]},
        "run": {k: record[k] for k in ("steps", "planned_steps", "stopped", "bf16", "seconds", "final_train_loss")},
    }
    write_manifest(out, manifest)
    plot_training(record["history"], out / "training_curve.png", f"LoRA on {data_info['dataset']}")
    return manifest


def sample_positions(n: int, k: int, seed: int) -> list[int]:
    """``k`` of ``range(n)`` (all if fewer), seeded and sorted: the validation targets examples are built from."""
    import numpy as np

    return sorted(np.random.default_rng([seed, 17]).choice(n, min(k, n), replace=False).tolist())
