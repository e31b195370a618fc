"""User frequency: the baselines of next-place work. The user's most visited items, overall or at this
hour of the day (plus or minus ``hour_window`` hours); ties broken by the overall count, then by the most
recent visit (a baseline that leaves ties to the metric's pessimistic count undersells itself)."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import HOURS, Query, Signal


def lexicographic(*keys: np.ndarray) -> np.ndarray:
    """One score ordering items by the first key, ties by the second, and so on (non-negative integer keys
    but the last, which may be any non-negative number)."""
    out = keys[-1].astype(float)
    for key in reversed(keys[:-1]):
        out = key + out / (out.max() + 1.0)  # the finer keys, squeezed into [0, 1): below one step of this one
    return out


class UserFrequencySignal(Signal):
    def __init__(self, hour_window: int | None = None):
        super().__init__("user_frequency", {"hour_window": hour_window})

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        window = self.params["hour_window"]
        out = np.zeros((len(queries), log.n_items))
        for i, q in enumerate(queries):
            n = len(q.codes)
            if not n:
                continue
            total = np.bincount(q.codes, minlength=log.n_items).astype(float)
            last = np.zeros(log.n_items)
            np.maximum.at(last, q.codes, (np.arange(n) + 1.0) / (n + 1.0))  # each item's latest position
            if window is None:
                out[i] = lexicographic(total, last)
                continue
            hours, _ = q.calendar(log.timezone)
            d = np.abs(hours - log.local_calendar(q.now_ns)[0])
            near = np.minimum(d, HOURS - d) <= window
            out[i] = lexicographic(np.bincount(q.codes[near], minlength=log.n_items).astype(float), total, last)
        return out
