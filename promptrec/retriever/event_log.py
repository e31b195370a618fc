"""The retriever's view of the event log: events as item codes, sorted by time, for statistics 'before now'.

Every global statistic (trending, time-of-day affinity, first-seen time) is computed from
events strictly before the query's ``now``. Counts per item and local hour / weekday are
kept at checkpoints, so a query adds only the events since the last checkpoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions, epoch_ns

HOURS, DAYS = 24, 7


class TimeIndexedLog:
    """All known events of all users, as arrays sorted by time."""

    def __init__(self, inter: Interactions, catalog: Catalog, *, checkpoints: int = 64):
        frame = inter.frame
        known = frame["item_id"].isin(catalog.frame.index).to_numpy()
        frame = frame.loc[known]
        self.dropped_unknown_items = int((~known).sum())
        order = np.argsort(epoch_ns(frame["timestamp"]), kind="stable")
        frame = frame.iloc[order]
        self.n_items = len(catalog)
        self.timezone = inter.timezone
        self.ts = epoch_ns(frame["timestamp"])
        self.codes = catalog.codes(frame["item_id"].to_numpy())
        self.weights = frame["weight"].to_numpy(dtype=np.float64)
        local = frame["timestamp"].dt.tz_convert(inter.timezone)
        self.hour = local.dt.hour.to_numpy(dtype=np.int64)
        self.dow = local.dt.dayofweek.to_numpy(dtype=np.int64)
        self.first_seen = np.full(self.n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(self.first_seen, self.codes, self.ts)
        # cumulative (item x hour) and (item x weekday) counts at checkpoints
        budget = max(2, min(checkpoints, int(2e8 // max(1, self.n_items * (HOURS + DAYS) * 4))))
        self.cut = np.unique(np.linspace(0, len(self.ts), budget).astype(np.int64))
        self._hour_snap = np.zeros((len(self.cut), self.n_items, HOURS), dtype=np.float32)
        self._dow_snap = np.zeros((len(self.cut), self.n_items, DAYS), dtype=np.float32)
        for k in range(1, len(self.cut)):
            a, b = self.cut[k - 1], self.cut[k]
            self._hour_snap[k] = self._hour_snap[k - 1] + self._counts(a, b, self.hour, HOURS)
            self._dow_snap[k] = self._dow_snap[k - 1] + self._counts(a, b, self.dow, DAYS)

    def __len__(self) -> int:
        return len(self.ts)

    def position(self, now_ns: int) -> int:
        """Number of events strictly before ``now``."""
        return int(np.searchsorted(self.ts, now_ns, side="left"))

    def _counts(self, a: int, b: int, key: np.ndarray, width: int) -> np.ndarray:
        flat = np.bincount(self.codes[a:b] * width + key[a:b], minlength=self.n_items * width)
        return flat.reshape(self.n_items, width).astype(np.float32)

    def calendar_counts(self, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(items x 24) hour counts and (items x 7) weekday counts of events before ``now``."""
        pos = self.position(now_ns)
        k = int(np.searchsorted(self.cut, pos, side="right") - 1)
        start = self.cut[k]
        return (self._hour_snap[k] + self._counts(start, pos, self.hour, HOURS),
                self._dow_snap[k] + self._counts(start, pos, self.dow, DAYS))

    def decayed_counts(self, now_ns: int, half_life_ns: float, window_ns: float) -> np.ndarray:
        """Per item, events in [now - window, now) weighted by 0.5 ** (age / half_life)."""
        hi = self.position(now_ns)
        lo = int(np.searchsorted(self.ts, now_ns - window_ns, side="left"))
        age = (now_ns - self.ts[lo:hi]).astype(np.float64)
        return np.bincount(self.codes[lo:hi], weights=np.exp2(-age / half_life_ns), minlength=self.n_items)

    def local_calendar(self, now_ns: int) -> tuple[int, int]:
        """Local hour and weekday of ``now``."""
        local = pd.Timestamp(now_ns, tz="UTC").tz_convert(self.timezone)
        return local.hour, local.dayofweek
