"""Freshness: newer items score higher."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import DAY_NS, FitData, Query, Signal, n_columns


class FreshnessSignal(Signal):
    """Minus log(1 + age in days) at ``now``, the age counted from the release time or, where that is
    unknown, from the item's first event before ``now`` (never seen: age 0, brand new). Items not yet
    available at ``now`` are removed by the retriever, not scored here."""

    scores_items = True

    def __init__(self):
        super().__init__("freshness", {})
        self.release_ns: np.ndarray | None = None

    def fit(self, data: FitData) -> None:
        self.release_ns = data.release_ns

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        release, first_seen = (self.release_ns, log.first_seen) if items is None else \
            (self.release_ns[items], log.first_seen[items])
        unknown = release == np.iinfo(np.int64).min
        out = np.empty((len(queries), n_columns(log, items)))
        for i, q in enumerate(queries):
            born = np.where(unknown, np.minimum(first_seen, q.now_ns), release)
            age_days = (q.now_ns - born.astype(np.float64)) / DAY_NS
            out[i] = -np.log1p(np.clip(age_days, 0, None))
        return out

    def state(self) -> dict[str, Any]:
        return {"release_ns": self.release_ns}

    def load_state(self, state: dict[str, Any]) -> None:
        self.release_ns = state["release_ns"]
