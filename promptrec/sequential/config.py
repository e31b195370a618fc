"""Settings of the sequential model, recorded in every manifest so a run can be repeated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


ITEM_INITS = ("random", "text")
TIME_INITS = ("zero", "random")


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec (Kang & McAuley 2018) settings; ``time_aware`` adds when things happened.

    Defaults follow the paper (2 blocks, 1 head, learning rate 1e-3, batch 128, dropout 0.2 for
    dense data such as MovieLens; use 0.5 for sparse data) with a 64-wide model and the last 50
    items. Training uses cross-entropy over the true item and ``negatives`` items drawn uniformly
    for each batch (sampled softmax; 0 = all items, exact but several times slower on CPU for
    thousands of items) and stops when the validation NDCG@10
    (each user's last training event) has not improved for ``patience`` epochs, or after
    ``max_minutes``; the best epoch's model then trains ``final_epochs`` more epochs on every
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
    max_minutes: float = 4.0
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
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

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
