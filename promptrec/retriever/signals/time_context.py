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

    def _lift(self, column: np.ndarray, bin_totals: np.ndarray, row_sums: np.ndarray, col: int) -> np.ndarray:
        """log P(bin | item) / P(bin) for the bin ``col``: ``column`` the items' counts in it, ``bin_totals`` and
        ``row_sums`` every bin's and every item's total (hours smoothed over neighbouring hours by a circulant
        kernel, under which every item's smoothed total is its raw total times one constant)."""
        a = self.params["smoothing"]
        p_global = (bin_totals + 1.0) / (bin_totals.sum() + 1e-9 + len(bin_totals))
        cat_column = self.cat_item @ column
        p_cat = (cat_column + a * p_global[col]) / (self.cat_item @ row_sums + a)
        prior = self.item_cat @ p_cat  # the item's categories' share of this bin
        p_item = (column + a * prior) / (row_sums + a)
        return np.log(p_item / p_global[col])

    def _lift_at(self, log: Any, now_ns: int, hour: int, dow: int, kernel: np.ndarray) -> np.ndarray:
        """The hour's lift (counts smoothed by ``kernel``, whose column ``hour`` is the log's ``hours_near``) plus
        the weekday's."""
        by_hour, by_day, by_item = log.calendar_totals(now_ns)
        near = log.hours_near(now_ns, hour, self.params["hour_bandwidth"])
        days = log.calendar_counts(now_ns)[1]
        return (self._lift(near, by_hour @ kernel, by_item * kernel[:, 0].sum(), hour)
                + self._lift(days[:, dow], by_day, by_item, dow))

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
