"""Time context: which items fit the local hour and weekday of ``now``, for everybody."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from promptrec.retriever.event_log import HOURS
from promptrec.retriever.signals.base import CategorySignal, FitData, Query, hour_kernel, local_hour_dow, n_columns

log = logging.getLogger("promptrec.retriever")


class TimeContextSignal(CategorySignal):
    """Each item's affinity to the local hour and weekday of ``now``: log-lift of P(hour | item) over P(hour),
    smoothed toward the item's categories (and the catalogue) for items with few events. A part with no
    information in the training events (every event at the same local hour, or on the same weekday) is left out,
    with one warning; with neither part informative the signal scores every item 0 (no say in the blend)."""

    scores_items = True
    use_hour, use_day = True, True
    _has_cat: np.ndarray | None = None  # items with at least one category

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
        prior = np.where(self._has_cat, prior, p_global[col])  # no categories: the catalogue's share
        mass = row_sums + a
        p_item = np.where(mass > 0, (column + a * prior) / np.where(mass > 0, mass, 1.0), p_global[col])
        return np.log(np.maximum(p_item, 1e-12) / p_global[col])  # an item never seen in the bin (smoothing 0)

    def fit(self, data: FitData) -> None:
        super().fit(data)
        self.use_hour, self.use_day = True, True
        if data.train_times is None or not len(data.train_times):
            return
        hours, dows = local_hour_dow(np.asarray(data.train_times, dtype=np.int64), data.timezone)
        self.fit_calendar(np.bincount(hours, minlength=HOURS), np.bincount(dows, minlength=7))

    def fit_calendar(self, hour_events: np.ndarray, weekday_events: np.ndarray) -> None:
        """Which parts carry information, from the training events per local hour and per weekday (their counts,
        or sums of them over shards of users: promptrec.retriever.ray_fit)."""
        hours, days = np.flatnonzero(hour_events), np.flatnonzero(weekday_events)
        self.use_hour, self.use_day = len(hours) > 1, len(days) > 1
        if not (self.use_hour or self.use_day):
            log.warning("time_context: every training event is at the same local hour (%dh) on the same weekday; "
                        "the signal carries no information and is left out of the blend (it scores every item 0).",
                        int(hours[0]))
        elif not self.use_hour:
            log.warning("time_context: every training event is at the same local hour (%dh); the hour of day "
                        "carries no information and only the weekday is used.", int(hours[0]))
        elif not self.use_day:
            log.warning("time_context: every training event is on the same weekday; the weekday carries no "
                        "information and only the hour of day is used.")

    def state(self) -> dict[str, Any]:
        return super().state() | {"use_parts": np.array([self.use_hour, self.use_day])}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._has_cat = np.asarray(self.item_cat.sum(axis=1)).ravel() > 0
        parts = state.get("use_parts")  # retrievers saved before it: both parts
        self.use_hour, self.use_day = (True, True) if parts is None else (bool(parts[0]), bool(parts[1]))

    def _lift_at(self, log: Any, now_ns: int, hour: int, dow: int, kernel: np.ndarray) -> np.ndarray:
        """The hour's lift (counts smoothed by ``kernel``, whose column ``hour`` is the log's ``hours_near``) plus
        the weekday's."""
        by_hour, by_day, by_item = log.calendar_totals(now_ns)
        lift = np.zeros(len(by_item))
        if self.use_hour:
            near = log.hours_near(now_ns, hour, self.params["hour_bandwidth"])
            lift += self._lift(near, by_hour @ kernel, by_item * kernel[:, 0].sum(), hour)
        if self.use_day:
            lift += self._lift(log.calendar_counts(now_ns)[1][:, dow], by_day, by_item, dow)
        return lift

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
