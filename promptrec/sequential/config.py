"""Settings of the sequential model, recorded in every manifest so a run can be repeated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


ITEM_INITS = ("random", "text")
# the default time budget: BUDGET_SECONDS per 1,000 training windows (a user's events cut into max_len pieces; one
# per user when histories are shorter) per epoch, for BUDGET_EPOCHS epochs, within [BUDGET_FLOOR, BUDGET_CAP]
# minutes. Measured epochs: 1.3-3.4 s per 1,000 windows on 2 cores (50,546 Amazon sequences, 66-170 s an epoch);
# 14 s an epoch on the demo (651 windows of 50 events) with the 2 cores shared by several jobs, which the floor
# covers for 40 epochs. Early stopping (patience 10) ends most trainings within 40 epochs.
BUDGET_SECONDS, BUDGET_EPOCHS, BUDGET_FLOOR, BUDGET_CAP = 4.0, 40, 10.0, 120.0


def default_budget_minutes(windows: int) -> float:
    """Minutes of training allowed by default: 4 s per 1,000 training windows per epoch for 40 epochs, at least 10
    and at most 120 minutes (50,000 one-window sequences: 120 minutes; the demo: 10)."""
    minutes = BUDGET_SECONDS * windows / 1000 * BUDGET_EPOCHS / 60
    return round(min(max(minutes, BUDGET_FLOOR), BUDGET_CAP), 1)
TIME_INITS = ("zero", "random")


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec (Kang & McAuley 2018) settings; ``time_aware`` adds when things happened.

    Defaults follow the paper (2 blocks, 1 head, learning rate 1e-3, batch 128, dropout 0.2 for
    dense data such as MovieLens; use 0.5 for sparse data) with a 64-wide model and the last 50
    items. Training uses cross-entropy over the true item and ``negatives`` items drawn uniformly
    for each batch (sampled softmax; 0 = all items, exact but several times slower on CPU for
    thousands of items) and stops when the validation NDCG@10
    (each user's last training event) has not improved for ``patience`` epochs ("patience"), after
    ``epochs`` ("epoch_cap"), or after ``max_minutes`` ("time_budget"): the ``stop_reason`` of the training
    summary and the manifest. ``max_minutes=None`` (the default) scales the budget with the data
    (:func:`default_budget_minutes`). The best epoch's model then trains ``final_epochs`` more epochs on every
    event, the held-out last ones included (they are each user's most recent). ``seeds`` > 1 trains
    that many models (seeds ``seed``, ``seed`` + 1, ...) and averages their log-probabilities.
    ``item_init="text"`` starts the item embeddings from the item index's text vectors (their top
    ``dim`` principal components) instead of random ones; they are trained as usual from there.
    ``time_init`` (time-aware only): "zero" starts the time embeddings at zero, so the model starts as plain SASRec
    and learns what the gaps, hours and weekdays add; "random" (the only start before 2026-12-04) starts them as
    torch's embeddings do, N(0, 1), as large as the whole sequence's state, which the model then has to unlearn
    (validation NDCG@10 0.266 / 0.213 / 0.085 with it against 0.305 / 0.240 / 0.099 from zero on the NYC
    check-ins / the demo / MovieLens 100K: eval/results/sasrec_time_start).
    """

    max_len: int = 50
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    negatives: int = 256
    epochs: int = 200
    patience: int = 10
    max_minutes: float | None = None  # None: default_budget_minutes(training windows)
    final_epochs: int = 0  # after early stopping: epochs on every event, validation ones included, at lr / 10
    time_aware: bool = False
    seed: int = 0
    seeds: int = 1  # models in the ensemble, each trained alone with its own seed
    item_init: str = "random"  # "random" | "text": item embeddings start from the items' text vectors
    time_init: str = "zero"  # "zero" | "random": where the time embeddings (time_aware) start

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1 (models in the ensemble), got {self.seeds}.")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads}).")
        if self.max_len < 2:
            raise ValueError("max_len must be at least 2 (one item in, one to predict).")
        if self.item_init not in ITEM_INITS:
            raise ValueError(f"item_init must be one of {', '.join(ITEM_INITS)}, got {self.item_init!r}.")
        if self.time_init not in TIME_INITS:
            raise ValueError(f"time_init must be one of {', '.join(TIME_INITS)}, got {self.time_init!r}.")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive (or None: scaled with the data), got {self.max_minutes}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    def budget_minutes(self, windows: int) -> float:
        """The time budget of a training on ``windows`` training windows."""
        return default_budget_minutes(windows) if self.max_minutes is None else float(self.max_minutes)

    def members(self) -> list["SASRecConfig"]:
        """The settings of each model of the ensemble (one model when ``seeds`` is 1)."""
        return [replace(self, seed=self.seed + i, seeds=1) for i in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SASRecConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sequential-model setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**values)
