"""Training SASRec on users' sequences: cross-entropy over all items, Adam, early stopping on each
user's last training event, a progress bar and a time budget."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from promptrec.data.repeats import REPEAT_THRESHOLD
from promptrec.metrics import hit_rate, ndcg, true_ranks
from promptrec.sequential.config import SASRecConfig
from promptrec.sequential.model import SASRec, to_tensors
from promptrec.sequential.sequences import Batch, Sequence, query_batch, training_windows

MIN_VALID_EVENTS = 3  # users with fewer training events keep them all for training
log = logging.getLogger("promptrec.sequential")


@dataclass
class TrainResult:
    """A trained model and how the training went."""

    model: SASRec
    config: SASRecConfig
    best_epoch: int
    epochs_run: int
    valid_ndcg10: float
    valid_hr10: float
    seconds: float
    train_windows: int
    valid_users: int
    stopped_by: str  # "patience" | "epochs" | "time budget" (words; stop_reason is the key)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "epoch_cap"  # "patience" | "epoch_cap" | "time_budget"
    budget_minutes: float | None = None

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("best_epoch", "epochs_run", "valid_ndcg10", "valid_hr10", "seconds",
                                              "train_windows", "valid_users", "stopped_by", "stop_reason",
                                              "budget_minutes")} | {"history": self.history}


def hold_out_last(seqs: list[Sequence]) -> tuple[list[Sequence], list[Sequence], list[int]]:
    """(training sequences, validation prefixes, indices of validated users): each user with enough
    events gives its last one to validation."""
    train, prefixes, users = [], [], []
    for u, s in enumerate(seqs):
        if len(s.codes) >= MIN_VALID_EVENTS:
            cut = Sequence(s.codes[:-1], s.times[:-1], s.hours[:-1], s.dows[:-1])
            train.append(cut)
            prefixes.append(cut)
            users.append(u)
        else:
            train.append(s)
    return train, prefixes, users


def repeat_share(seqs: list[Sequence]) -> float:
    """Share of events whose item the user had already had (the data's repeat rate)."""
    events = sum(len(s.codes) for s in seqs)
    return sum(len(s.codes) - len(np.unique(s.codes)) for s in seqs) / max(events, 1)


def mask_seen(scores: np.ndarray, prefixes: list[Sequence], truth: np.ndarray) -> np.ndarray:
    """Scores with each user's earlier items out of the ranking (the truth itself is kept)."""
    out = scores.copy()
    for row, (s, t) in enumerate(zip(prefixes, truth)):
        out[row, s.codes[s.codes != t]] = -np.inf
    return out


def ranking_quality(scores: np.ndarray, truth: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(NDCG@k, HR@k) of the true columns in full rankings (ties count against the truth)."""
    ranks = true_ranks(scores, truth)
    return ndcg(ranks, k), hit_rate(ranks, k)


def batch_loss(model: SASRec, hidden: torch.Tensor, truth: torch.Tensor, negatives: int, n_items: int,
               generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of the true items against all items, or against ``negatives`` uniformly drawn
    items shared by the batch (a drawn item that is the truth itself is masked out)."""
    if not negatives or negatives >= n_items - 1:
        return F.cross_entropy(model.logits(hidden), truth)
    drawn = torch.randint(0, n_items, (negatives,), generator=generator)
    weights = model.item.weight[1:]
    positive = (hidden * weights[truth]).sum(-1, keepdim=True)
    negative = (hidden @ weights[drawn].T).masked_fill(drawn[None, :] == truth[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(truth), dtype=torch.long))


def adam(model: SASRec, config: SASRecConfig, lr: float) -> torch.optim.Adam:
    """The paper's optimiser: Adam with betas (0.9, 0.98)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)


def train_epoch(model: SASRec, optimiser: torch.optim.Optimizer, windows: Batch, rng: np.random.Generator,
                generator: torch.Generator, config: SASRecConfig, n_items: int) -> float:
    """One pass over the training windows in a random order; the mean batch loss."""
    model.train()
    order = rng.permutation(len(windows.items))
    total, batches = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        t = to_tensors(windows, order[start:start + config.batch_size])
        mask = t["targets"] > 0
        loss = batch_loss(model, model.hidden(t)[mask], t["targets"][mask] - 1, config.negatives, n_items, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def train_sasrec(seqs: list[Sequence], n_items: int, config: SASRecConfig, progress: bool = True,
                 item_vectors: np.ndarray | None = None) -> TrainResult:
    """Train on ``seqs`` (training-period events only) and keep the epoch best on validation;
    ``item_vectors`` (items x text dimensions) are needed with ``item_init="text"``."""
    if config.item_init == "text" and (item_vectors is None or len(item_vectors) != n_items):
        raise ValueError("item_init='text' needs one text vector per item: fit with an item index "
                         "(promptrec index build), or use item_init='random'.")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_seqs, prefixes, valid_users = hold_out_last(seqs)
    windows = training_windows(train_seqs, config.max_len)
    valid_batch = truth = None
    if prefixes:
        last = [seqs[u] for u in valid_users]
        valid_batch = query_batch(prefixes, config.max_len, np.array([s.times[-1] for s in last]),
                                  np.array([s.hours[-1] for s in last]), np.array([s.dows[-1] for s in last]))
        truth = np.array([s.codes[-1] for s in last])
    exclude_seen = repeat_share(seqs) < REPEAT_THRESHOLD  # rank as the retriever will: seen items out
    model = SASRec(n_items, config)
    if config.item_init == "text":
        model.start_items_from_text(item_vectors)
    optimiser = adam(model, config, config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    best = (-1.0, 0.0, 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    stopped_by, stop_reason, epoch = "epochs", "epoch_cap", 0
    budget = config.budget_minutes(len(windows.items))
    bar = tqdm(range(1, config.epochs + 1), desc="training SASRec" + (" (time-aware)" if config.time_aware else ""),
               unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        loss = train_epoch(model, optimiser, windows, rng, generator, config, n_items)
        if valid_batch is not None:
            scores = model.score_last(valid_batch)
            ndcg, hr = ranking_quality(mask_seen(scores, prefixes, truth) if exclude_seen else scores, truth)
        else:
            ndcg, hr = -loss, 0.0  # no validation users: keep the lowest loss
        history.append({"epoch": epoch, "loss": round(loss, 4), "valid_ndcg10": round(ndcg, 4)})
        bar.set_postfix(loss=f"{loss:.3f}", ndcg10=f"{ndcg:.4f}")
        if ndcg > best[0]:
            best = (ndcg, hr, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[2] >= config.patience:
            stopped_by, stop_reason = "patience", "patience"
            break
        if epoch < config.epochs and time.perf_counter() - started > 60 * budget:
            stopped_by, stop_reason = "time budget", "time_budget"
            rising = best[2] >= epoch - 1  # the best epoch is the last or the one before: still learning
            log.warning("SASRec stopped by its %.1f-minute time budget at epoch %d, before early stopping%s. How far "
                        "it got depends on this machine's speed and load; the model is cached and reused as it is. "
                        "Raise max_minutes for a model that stops by patience.", budget, epoch,
                        f", while validation NDCG@10 was still improving (best {best[0]:.4f} at epoch {best[2]})"
                        if rising else f" (best validation NDCG@10 {best[0]:.4f} at epoch {best[2]})")
            break
    bar.close()
    model.load_state_dict(best[3])
    if config.final_epochs and prefixes:
        # the validation events are each user's latest: the kept model also learns from them, briefly and gently
        optimiser = adam(model, config, config.lr * 0.1)
        every = training_windows(seqs, config.max_len)
        for _ in range(config.final_epochs):
            loss = train_epoch(model, optimiser, every, rng, generator, config, n_items)
            history.append({"epoch": len(history) + 1, "loss": round(loss, 4), "on_all_events": True})
    model.eval()
    return TrainResult(model, config, best[2], epoch, round(best[0], 4), round(best[1], 4),
                       round(time.perf_counter() - started, 1), len(windows.items), len(valid_users), stopped_by,
                       history, stop_reason, budget)
