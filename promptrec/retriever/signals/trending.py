"""Trending: what many people used recently, before ``now``."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import DAY_NS, Query, Signal, n_columns


class TrendingSignal(Signal):
    """Popularity in a window before ``now``, each event weighted by 0.5 ** (age / half-life)."""

    scores_items = True

    def __init__(self, half_life_days: float = 7.0, window_days: float = 35.0):
        super().__init__("trending", {"half_life_days": half_life_days, "window_days": window_days})

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        p = self.params
        out = np.empty((len(queries), n_columns(log, items)))
        cache: dict[int, np.ndarray] = {}
        for i, q in enumerate(queries):
            slot = log.slot(q.now_ns)
            if slot not in cache:
                cache[slot] = np.log1p(log.decayed_counts(q.now_ns, p["half_life_days"] * DAY_NS,
                                                          p["window_days"] * DAY_NS))
            out[i] = cache[slot] if items is None else cache[slot][items]
        return out
