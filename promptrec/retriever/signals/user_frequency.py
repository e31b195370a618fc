"""User frequency: the baselines of next-place work. The user's most visited items, overall or at this
hour of the day (plus or minus ``hour_window`` hours); ties broken by the overall count."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import HOURS, Query, Signal

TIE_BREAK = 1e-3


class UserFrequencySignal(Signal):
    def __init__(self, hour_window: int | None = None):
        super().__init__("user_frequency", {"hour_window": hour_window})

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        window = self.params["hour_window"]
        out = np.zeros((len(queries), log.n_items))
        for i, q in enumerate(queries):
            if not len(q.codes):
                continue
            total = np.bincount(q.codes, minlength=log.n_items).astype(float)
            if window is None:
                out[i] = total
                continue
            hours, _ = q.calendar(log.timezone)
            d = np.abs(hours - log.local_calendar(q.now_ns)[0])
            near = np.minimum(d, HOURS - d) <= window
            out[i] = np.bincount(q.codes[near], minlength=log.n_items) + TIE_BREAK * total
        return out
