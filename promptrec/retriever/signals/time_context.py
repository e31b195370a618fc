"""Time context: which items fit the local hour and weekday of ``now``, for everybody."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.event_log import HOURS
from promptrec.retriever.signals.base import FitData, Query, Signal, category_matrix, hour_kernel


class TimeContextSignal(Signal):
    """Each item's affinity to the local hour and weekday of ``now``: log-lift of P(hour | item) over P(hour),
    smoothed toward the item's categories (and the catalogue) for items with few events."""

    def __init__(self, smoothing: float = 20.0, hour_bandwidth: float = 1.0):
        super().__init__("time_context", {"smoothing": smoothing, "hour_bandwidth": hour_bandwidth})
        self.item_cat: sp.csr_matrix | None = None

    def fit(self, data: FitData) -> None:
        self.item_cat = category_matrix(data.item_categories, data.n_items)

    def _lift(self, counts: np.ndarray, col: int) -> np.ndarray:
        a = self.params["smoothing"]
        total = counts.sum() + 1e-9
        p_global = (counts.sum(axis=0) + 1.0) / (total + counts.shape[1])
        cat_counts = self.item_cat.T @ counts  # categories x bins
        p_cat = (cat_counts + a * p_global) / (cat_counts.sum(axis=1, keepdims=True) + a)
        prior = np.asarray(self.item_cat @ p_cat)  # items x bins: the item's categories' profile
        n_item = counts.sum(axis=1, keepdims=True)
        p_item = (counts + a * prior) / (n_item + a)
        return np.log(p_item[:, col] / p_global[col])

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        out = np.empty((len(queries), log.n_items))
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        kernel = np.stack([hour_kernel(np.arange(HOURS), h, self.params["hour_bandwidth"]) for h in range(HOURS)])
        for i, q in enumerate(queries):
            hour, dow = log.local_calendar(q.now_ns)
            key = (log.position(q.now_ns), hour, dow)
            if key not in cache:
                hours, days = log.calendar_counts(q.now_ns)
                cache[key] = self._lift(hours @ kernel, hour) + self._lift(days, dow)
            out[i] = cache[key]
        return out

    def state(self) -> dict[str, Any]:
        return {"item_cat": self.item_cat}

    def load_state(self, state: dict[str, Any]) -> None:
        self.item_cat = state["item_cat"]
