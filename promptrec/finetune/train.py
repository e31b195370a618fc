"""LoRA training on ranking examples with peft + transformers.

The loss covers the answer tokens only (the prompt's labels are -100). AdamW with linear
warm-up and decay; bf16 autocast where the hardware has it; validation (on examples held out
in time) before training and every ``eval_every`` steps: the true label's rank among the
candidate labels from the next-token distribution, exactly as label scoring reads it. The best
adapter so far is kept; training stops early after ``patience`` evaluations without progress,
or at ``max_minutes``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from promptrec.finetune.examples import TrainingExample
from promptrec.models import native_bf16


SELECT_METRICS = ("NDCG@10", "fused NDCG@10")  # validation metrics that can pick the kept adapter


@dataclass
class LoraConfig:
    """What a LoRA run is made of; saved in the adapter's manifest."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    layers: int | None = None  # LoRA on the top N transformer layers only (None: all); backward stops below them
    learning_rate: float = 3e-4
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    batch_size: int = 4
    eval_every: int = 50
    patience: int = 3
    max_minutes: float | None = None
    bf16: bool = True
    seed: int = 0
    init_adapter: str | None = None  # continue from this adapter (its rank, alpha, modules and layers are kept)
    # loss weight of examples whose answer is not the first candidate shown: where candidates come in the
    # retriever's order, these are the cases the model must learn to depart from it (1: all weigh the same)
    depart_weight: float = 1.0
    # the validation metric that picks the kept adapter: "NDCG@10" of the model alone, or "fused NDCG@10": the
    # model fused with the order the candidates are shown in (the retriever's, for examples in its order)
    select: str = "NDCG@10"

    def __post_init__(self):
        if self.select not in SELECT_METRICS:
            raise ValueError(f"select must be one of {SELECT_METRICS}, not {self.select!r}.")


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer, examples: Sequence[TrainingExample], end_token: str | None) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: prompt tokens masked with -100, answer tokens (and the end token) kept."""
    out = []
    for ex in examples:
        p = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(ex.answer + (end_token or ""), add_special_tokens=False)["input_ids"]
        out.append((p + a, [-100] * len(p) + a))
    return out


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    """Left-padded ids, labels and attention mask: every example's answer ends at the last position."""
    import torch

    n = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, n - len(x):], labels[i, n - len(y):], mask[i, n - len(x):] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


def _positions(mask):
    """Position ids of left-padded rows: 0 at each row's first real token (as if it were not padded)."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def answer_loss(model, ids, labels, mask, weights=None):
    """Cross-entropy on the answer tokens only, computing logits for the last positions only (the vocabulary
    projection of every prompt position is most of a small model's cost otherwise). With ``weights`` (one per
    row) each row's mean answer-token loss counts that much: the weighted mean over the batch."""
    import torch

    width = int((labels != -100).sum(dim=1).max())
    logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), logits_to_keep=width + 1).logits
    target = labels[:, -width:]
    token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                   target.reshape(-1), ignore_index=-100, reduction="none")
    kept = (target != -100).float()  # the loss is 0 at the other positions
    if weights is None:
        return token_loss.sum() / kept.sum()
    row_loss = token_loss.reshape(target.shape).sum(dim=1) / kept.sum(dim=1).clamp(min=1)
    return (row_loss * weights).sum() / weights.sum()


def example_weights(examples: Sequence[TrainingExample], depart_weight: float) -> np.ndarray:
    """``depart_weight`` for examples whose true label is not the first one shown, 1 for the others."""
    return np.array([1.0 if ex.true_label == ex.labels[0] else depart_weight for ex in examples])


def validate(model, tokenizer, examples: Sequence[TrainingExample], label_ids: dict[str, int], *, bf16: bool,
             batch_size: int = 8) -> dict[str, float]:
    """Rank of the true label among the candidate labels at the answer position: NDCG@10, HR@1, MRR; how often
    the model's top label is the first one shown ("first_label_top"; in the retriever's order: keeping its top);
    and "fused NDCG@10", the best NDCG@10 of the model's scores fused with the retriever's scores of the candidates
    (as the reranker's tuned fusion does; with the order shown where the examples lack them) over fusion weights
    0, 0.1, ..., 1, with that weight."""
    import torch

    from promptrec.metrics import hit_rate, mrr, ndcg

    ranks, label_scores = [], []
    model.eval()
    tokenizer.padding_side = "left"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            enc = tokenizer([e.prompt for e in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model(**enc, position_ids=_positions(enc["attention_mask"]), logits_to_keep=1)
            logits = out.logits[:, -1, :].float()
            for row, ex in zip(logits, chunk):
                scores = row[[label_ids[lab] for lab in ex.labels]]
                true = scores[ex.labels.index(ex.true_label)]
                # ties share the rank (mid-rank): bf16 logits of a model near-uniform over the labels tie
                # often, and counting every tie against the true label would read as worse than random
                ranks.append(float((scores > true).sum()) + float((scores == true).sum() - 1) / 2)
                label_scores.append((scores.numpy(), _first_pass_scores(ex), ex.labels.index(ex.true_label)))
    r = np.array(ranks)
    fused, weight = _fused_ndcg(label_scores)
    return {"NDCG@10": ndcg(r, 10), "HR@1": hit_rate(r, 1), "MRR": mrr(r), "examples": len(r),
            "first_label_top": float(np.mean([s[0] >= s.max() for s, _, _ in label_scores])) if label_scores
            else float("nan"),
            "fused NDCG@10": fused, "fused_weight": weight}


def _first_pass_scores(example: TrainingExample) -> np.ndarray:
    """The scores fusion blends the model's with: the retriever's, else the order shown (first = best)."""
    if example.retriever_scores is not None:
        return np.asarray(example.retriever_scores, dtype=float)
    return -np.arange(len(example.labels), dtype=float)


def _fused_ndcg(label_scores: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> tuple[float, float]:
    """Best NDCG@10 over fusion weights of (model scores, first-pass scores, true position), and its weight."""
    from promptrec.metrics import ndcg
    from promptrec.reranker.fusion import FUSION_GRID, fused_order

    if not label_scores:
        return float("nan"), 1.0
    by_weight = {}
    for w in FUSION_GRID:
        ranks = [int(np.flatnonzero(fused_order(s, first, w) == true)[0]) for s, first, true in label_scores]
        by_weight[w] = ndcg(np.array(ranks, dtype=float), 10)
    best = max(by_weight, key=lambda w: (by_weight[w], w))  # ties: the weight nearer the shown order
    return by_weight[best], best


def train_lora(base_model: str | Path, train: Sequence[TrainingExample], valid: Sequence[TrainingExample],
               out: str | Path, cfg: LoraConfig, *, label_ids: dict[str, int], progress: bool = True
               ) -> dict[str, Any]:
    """Train, keep the best adapter (by validation ``cfg.select``) in ``out``; returns the training record."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    if not train:
        raise ValueError("no training examples; raise the number of examples or check the split.")
    _seed_everything(cfg.seed)
    out = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    bf16 = cfg.bf16 and native_bf16()
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    n_layers = int(model.config.num_hidden_layers)
    if cfg.init_adapter:
        from peft import PeftModel

        cfg = _continued(cfg, n_layers)
        model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
    else:
        top = {} if not cfg.layers else {"layers_to_transform": list(range(max(0, n_layers - cfg.layers), n_layers))}
        model = get_peft_model(model, PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                     target_modules=list(cfg.target_modules), task_type="CAUSAL_LM",
                                                     **top))
    listwise = "," in train[0].answer
    end = getattr(tokenizer, "eos_token", None) if listwise else None  # teach a listwise answer to stop
    data = encode(tokenizer, train, end)
    weights = example_weights(train, cfg.depart_weight)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict[str, Any]] = []
    best = {"step": 0, **validate(model, tokenizer, valid, label_ids, bf16=bf16)} if valid else None
    if best:
        history.append({**best, "loss": None})
        model.save_pretrained(out / "best")
    started, step, since_best, losses = time.perf_counter(), 0, 0, []
    stopped = "finished"
    order: list[int] = []
    with tqdm(total=total, desc="LoRA training", disable=not progress) as bar:
        while step < total:
            if not order:
                order = list(rng.permutation(len(data)))
            rows = [order.pop() for _ in range(min(cfg.batch_size, len(order)))]
            model.train()
            ids, labels, mask = _collate([data[i] for i in rows], tokenizer.pad_token_id)
            w = None if cfg.depart_weight == 1.0 else torch.tensor(weights[rows], dtype=torch.float32)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = answer_loss(model, ids, labels, mask, w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", best=f"{best[cfg.select]:.3f}" if best else "-")
            out_of_time = cfg.max_minutes is not None and time.perf_counter() - started > 60 * cfg.max_minutes
            if valid and (step % cfg.eval_every == 0 or step == total or out_of_time):
                m = {"step": step, **validate(model, tokenizer, valid, label_ids, bf16=bf16),
                     "loss": float(np.mean(losses[-cfg.eval_every:]))}
                history.append(m)
                if m[cfg.select] > best[cfg.select]:
                    best, since_best = m, 0
                    model.save_pretrained(out / "best")
                else:
                    since_best += 1
                if since_best >= cfg.patience:
                    stopped = f"early stop: no validation gain in {cfg.patience} evaluations"
                    break
            if out_of_time:
                stopped = f"time budget of {cfg.max_minutes} minutes reached"
                break
    if not valid:
        model.save_pretrained(out / "best")
    for f in (out / "best").iterdir():  # the best adapter becomes the folder's adapter
        shutil.copy2(f, out / f.name)
    shutil.rmtree(out / "best")
    tokenizer.save_pretrained(out)
    return {"steps": step, "planned_steps": total, "examples": len(train), "stopped": stopped, "bf16": bf16,
            "seconds": round(time.perf_counter() - started, 1), "best": best, "history": history,
            "final_train_loss": float(np.mean(losses[-20:])) if losses else None, "config": asdict(cfg)}


def _continued(cfg: LoraConfig, n_layers: int) -> LoraConfig:
    """``cfg`` with the shape of the adapter it continues from (rank, alpha, modules, layers come from there)."""
    from dataclasses import replace

    path = Path(cfg.init_adapter) / "adapter_config.json"
    if not path.exists():
        raise FileNotFoundError(f"init_adapter: {path} is missing; give a folder written by `promptrec finetune`.")
    a = json.loads(path.read_text())
    layers = a.get("layers_to_transform")
    return replace(cfg, rank=int(a["r"]), alpha=int(a["lora_alpha"]), dropout=float(a.get("lora_dropout", cfg.dropout)),
                   target_modules=sorted(a["target_modules"]), layers=n_layers - min(layers) if layers else None)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
