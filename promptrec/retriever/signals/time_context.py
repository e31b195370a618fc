"""Time context: which items fit the local hour and weekday of ``now``, for everybody."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.event_log import HOURS
from promptrec.retriever.signals.base import CategorySignal, Query, hour_kernel, n_columns


class TimeContextSignal(CategorySignal):
    """Each item's affinity to the local hour and weekday of ``now``: log-lift of P(hour | item) over P(hour),
    smoothed toward the item's categories (and the catalogue) for items with few events."""

    scores_items = True

    def __init__(self, smoothing: float = 20.0, hour_bandwidth: float = 1.0):
        super().__init__("time_context", {"smoothing": smoothing, "hour_bandwidth": hour_bandwidth})

    def _lift(self, counts: np.ndarray, col: int, kernel: np.ndarray | None = None) -> np.ndarray:
        """log P(bin | item) / P(bin) for one bin, the counts smoothed over neighbouring bins by ``kernel``
        (circulant, so every row of smoothed counts sums to the raw row sum times one constant); only the
        asked column is smoothed, which is all the lift needs."""
        a = self.params["smoothing"]
        if kernel is None:
            column, bin_totals, row_sums = counts[:, col], counts.sum(axis=0), counts.sum(axis=1)
        else:
            column, bin_totals = counts @ kernel[:, col], counts.sum(axis=0) @ kernel
            row_sums = counts.sum(axis=1) * kernel[:, 0].sum()
        p_global = (bin_totals + 1.0) / (bin_totals.sum() + 1e-9 + counts.shape[1])
        cat_column = self.cat_item @ column
        p_cat = (cat_column + a * p_global[col]) / (self.cat_item @ row_sums + a)
        prior = self.item_cat @ p_cat  # the item's categories' share of this bin
        p_item = (column + a * prior) / (row_sums + a)
        return np.log(p_item / p_global[col])

    def _lift_at(self, log: Any, now_ns: int, hour: int, dow: int, kernel: np.ndarray) -> np.ndarray:
        hours, days = log.calendar_counts(now_ns)
        return self._lift(hours, hour, kernel) + self._lift(days, dow)

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((len(queries), n_columns(log, items)))
        kernel = np.stack([hour_kernel(np.arange(HOURS), h, self.params["hour_bandwidth"]) for h in range(HOURS)])
        settings = ("time_context", id(self), self.params["smoothing"], self.params["hour_bandwidth"])
        for i, q in enumerate(queries):
            hour, dow = log.local_calendar(q.now_ns)
            lift = log.memo(settings + (log.slot(q.now_ns), hour, dow),
                            lambda: self._lift_at(log, q.now_ns, hour, dow, kernel))  # once per slot
            out[i] = lift if items is None else lift[items]
        return out
