"""The retriever's view of the event log: events as item codes, sorted by time, for statistics 'before now'.

Every global statistic (trending, time-of-day affinity, first-seen time) is computed from
events strictly before the query's ``now``. Counts per item and local hour / weekday are
kept at checkpoints, so a query adds only the events since the last checkpoint.

With a ``resolution_ns`` (the retriever uses one hour), the statistics of everybody's events
(trending, time of day, area popularity) are those before the start of ``now``'s time slot:
still strictly the past, at most one slot staler, and the same for every query in the slot, so
signals compute them once per slot instead of once per query. First-seen times and each
user's own history stay exact.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions, epoch_ns

HOURS, DAYS = 24, 7
MEMO_BYTES = 256 * 2**20  # statistics of everybody's past kept between batches (oldest dropped first)
SNAPSHOT_BYTES = 2 * 10**8  # the checkpoints' counts take at most this much memory...
SNAPSHOT_BYTES_PER_EVENT = 16  # ...and at most this much per event


class TimeIndexedLog:
    """All known events of all users, as arrays sorted by time; :meth:`extend` adds live events."""

    def __init__(self, inter: Interactions, catalog: Catalog, *, checkpoints: int = 64, resolution_ns: int = 0,
                 codes: np.ndarray | None = None, calendar: tuple[np.ndarray, np.ndarray] | None = None):
        """``codes`` (each row's catalogue code, -1 where unknown) and ``calendar`` (each row's local hour and
        weekday) may be given when the caller has them already, in the frame's row order."""
        if codes is None:
            codes = catalog.codes_of(inter.frame["item_id"])
        known = codes >= 0
        self.dropped_unknown_items = int((~known).sum())
        self.n_items = len(catalog)
        self.timezone = inter.timezone
        self.checkpoints = checkpoints
        self.resolution_ns = int(resolution_ns)
        self._n = 0
        self._memo: OrderedDict[Any, Any] = OrderedDict()
        self._memo_bytes = 0  # the kept values' size, kept up to date (summing them on every insert was quadratic)
        self._cursor: tuple[int, np.ndarray, np.ndarray] | None = None  # the last calendar counts computed
        self._cols: dict[str, np.ndarray] = {}
        self.first_seen = np.full(self.n_items, np.iinfo(np.int64).max, dtype=np.int64)
        ts = inter._ts
        if calendar is not None:
            calendar = (calendar[0], calendar[1]) if known.all() else (calendar[0][known], calendar[1][known])
        self._rebuild(ts if known.all() else ts[known], codes if known.all() else codes[known], calendar)

    # arrays of the events so far, oldest first (views into growable buffers)
    ts = property(lambda self: self._cols["ts"][:self._n])
    codes = property(lambda self: self._cols["codes"][:self._n])  # int32
    hour = property(lambda self: self._cols["hour"][:self._n])
    dow = property(lambda self: self._cols["dow"][:self._n])
    # cumulative counts at the checkpoints (views into buffers allocated once per rebuild)
    _hour_snap = property(lambda self: self._snaps["hour"][:len(self.cut)])
    _dow_snap = property(lambda self: self._snaps["dow"][:len(self.cut)])

    def _calendar(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(self.timezone)
        # one byte each: an event's four columns take 14 bytes (time 8, item code 4, hour and weekday 1 each)
        return np.asarray(local.hour, dtype=np.int8), np.asarray(local.dayofweek, dtype=np.int8)

    def _rebuild(self, ts: np.ndarray, codes: np.ndarray,
                 calendar: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Sort everything by time and recompute the checkpoints (construction, and out-of-order events)."""
        self._forget()
        order = np.argsort(ts, kind="stable")
        ts, codes = ts[order].astype(np.int64), codes[order].astype(np.int32)
        if calendar is None:
            hour, dow = self._calendar(ts)
        else:
            hour, dow = calendar[0][order].astype(np.int8), calendar[1][order].astype(np.int8)
        del order
        self._n = len(ts)
        self._cols = {"ts": ts, "codes": codes, "hour": hour, "dow": dow}
        np.minimum.at(self.first_seen, codes, ts)
        # cumulative (item x hour) and (item x weekday) counts at checkpoints: at most SNAPSHOT_BYTES_PER_EVENT
        # per event and SNAPSHOT_BYTES in all (queries in time order start from the last counts computed instead)
        per_checkpoint = max(1, self.n_items * (HOURS + DAYS) * 4)
        room = min(SNAPSHOT_BYTES, SNAPSHOT_BYTES_PER_EVENT * self._n)
        self._budget = max(2, min(self.checkpoints, int(room // per_checkpoint)))
        self.cut = np.unique(np.linspace(0, self._n, self._budget).astype(np.int64))
        # room for an eighth more: live events add checkpoints in place (no copy of the whole stack per
        # checkpoint, whose churn fragmented a long-running server's heap), and when it is full every other
        # checkpoint goes, so a long-running server's counts take at most 1/8 more memory than at start
        capacity = len(self.cut) + max(4, len(self.cut) // 8)
        self._snaps = {"hour": np.zeros((capacity, self.n_items, HOURS), dtype=np.float32),
                       "dow": np.zeros((capacity, self.n_items, DAYS), dtype=np.float32)}
        for k in range(1, len(self.cut)):
            a, b = self.cut[k - 1], self.cut[k]
            self._hour_snap[k] = self._hour_snap[k - 1] + self._counts(a, b, self.hour, HOURS)
            self._dow_snap[k] = self._dow_snap[k - 1] + self._counts(a, b, self.dow, DAYS)
        self._spacing = max(1024, self._n // max(1, self._budget - 1))

    def extend(self, ts: np.ndarray, codes: np.ndarray) -> None:
        """Add events (UTC ns, item codes). Events no earlier than the last one are appended in
        amortised O(new events); a late one is inserted in place (O(log) + a shift of the later events,
        and an update of the checkpoints after it); a large late batch re-sorts the log instead."""
        ts, codes = np.asarray(ts, dtype=np.int64), np.asarray(codes, dtype=np.int32)
        if not len(ts):
            return
        self._forget()
        order = np.argsort(ts, kind="stable")
        ts, codes = ts[order], codes[order]
        late = int(np.searchsorted(ts, self.ts[-1], side="left")) if self._n else 0  # a prefix of the batch
        hour, dow = self._calendar(ts)
        if late > max(1000, self._n // 20):
            self._rebuild(np.concatenate([self.ts, ts]), np.concatenate([self.codes, codes]),
                          (np.concatenate([self.hour, hour]), np.concatenate([self.dow, dow])))
            return
        for i in range(late):
            self._insert(ts[i], codes[i], hour[i], dow[i])
        self._append({"ts": ts[late:], "codes": codes[late:], "hour": hour[late:], "dow": dow[late:]})
        np.minimum.at(self.first_seen, codes, ts)

    def _reserve(self, end: int) -> None:
        if end > len(self._cols["ts"]):  # grow every buffer geometrically
            cap = max(end, 2 * len(self._cols["ts"]), 1024)
            for key, buf in self._cols.items():
                grown = np.zeros(cap, dtype=buf.dtype)
                grown[:self._n] = buf[:self._n]
                self._cols[key] = grown

    def _insert(self, t: int, code: int, hour: int, dow: int) -> None:
        """One late event into its place in time (after events with the same time)."""
        pos = int(np.searchsorted(self.ts, t, side="right"))
        self._reserve(self._n + 1)
        for key, value in (("ts", t), ("codes", code), ("hour", hour), ("dow", dow)):
            col = self._cols[key]
            col[pos + 1:self._n + 1] = col[pos:self._n]
            col[pos] = value
        self._n += 1
        after = self.cut > pos  # checkpoints whose prefix now holds the event
        self.cut[after] += 1
        self._hour_snap[after, code, hour] += 1
        self._dow_snap[after, code, dow] += 1

    def _append(self, new: dict[str, np.ndarray]) -> None:
        if not len(new["ts"]):
            return
        end = self._n + len(new["ts"])
        self._reserve(end)
        for key, values in new.items():
            self._cols[key][self._n:end] = values
        self._n = end
        if self._n - self.cut[-1] >= self._spacing:  # a new checkpoint keeps calendar_counts cheap
            hours, days = self._tail_counts()
            k = len(self.cut)
            if k == len(self._snaps["hour"]):  # full: keep every other checkpoint (memory stays bounded)
                keep = np.r_[0:k - 1:2, k - 1]
                for buf in self._snaps.values():
                    for j, src in enumerate(keep):  # in place, front to back (src >= j): no temporary copy
                        buf[j] = buf[src]
                self.cut, k = self.cut[keep], len(keep)
                self._spacing *= 2
            self._snaps["hour"][k], self._snaps["dow"][k] = hours, days
            self.cut = np.append(self.cut, self._n)

    def _tail_counts(self) -> tuple[np.ndarray, np.ndarray]:
        a = self.cut[-1]
        return (self._hour_snap[-1] + self._counts(a, self._n, self.hour, HOURS),
                self._dow_snap[-1] + self._counts(a, self._n, self.dow, DAYS))

    def __len__(self) -> int:
        return self._n

    def position(self, now_ns: int) -> int:
        """Number of events strictly before ``now``."""
        return int(np.searchsorted(self.ts, now_ns, side="left"))

    def slot(self, now_ns: int) -> int:
        """The time everybody's statistics are taken at for ``now``: the start of its slot (``now`` itself
        without a resolution). Signals key their per-query caches by it."""
        res = self.resolution_ns
        return int(now_ns) - int(now_ns) % res if res > 0 else int(now_ns)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept under ``key`` for later batches: statistics of everybody's past at a time slot,
        which consecutive batches (in time order) share. Up to ``MEMO_BYTES`` of them are kept (the least
        recently used go first) and all are dropped when events are added. Callers must not modify the value."""
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = compute()
        self._memo[key] = value
        self._memo_bytes += _nbytes(value)
        while len(self._memo) > 1 and self._memo_bytes > MEMO_BYTES:
            self._memo_bytes -= _nbytes(self._memo.popitem(last=False)[1])
        return value

    def _forget(self) -> None:
        """Drop every kept statistic (events were added)."""
        self._memo.clear()
        self._memo_bytes = 0
        self._cursor = None

    def _counts(self, a: int, b: int, key: np.ndarray, width: int) -> np.ndarray:
        flat = np.bincount(self.codes[a:b].astype(np.int64) * width + key[a:b], minlength=self.n_items * width)
        return flat.reshape(self.n_items, width).astype(np.float32)

    def calendar_counts(self, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(items x 24) hour counts and (items x 7) weekday counts of events before ``now``'s slot."""
        pos = self.position(self.slot(now_ns))

        def compute() -> tuple[np.ndarray, np.ndarray]:
            k = int(np.searchsorted(self.cut, pos, side="right") - 1)
            start, base = self.cut[k], (self._hour_snap[k], self._dow_snap[k])
            if self._cursor is not None and start <= self._cursor[0] <= pos:  # queries in time order: from the last
                start, base = self._cursor[0], self._cursor[1:]
            hours, days = base[0].copy(), base[1].copy()
            codes = self.codes[start:pos]  # the events since then, added in place (whole counts: exact either way)
            np.add.at(hours, (codes, self.hour[start:pos]), 1.0)
            np.add.at(days, (codes, self.dow[start:pos]), 1.0)
            self._cursor = (pos, hours, days)
            return hours, days

        return self.memo(("calendar_counts", pos), compute)

    def calendar_totals(self, now_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sums of :meth:`calendar_counts`: events per hour (24), per weekday (7) and per item, once per slot.
        Taken as products with ones (a reduction over 24 or 7 columns is several times slower); whole counts,
        so the sums are exact (below 2**24 per cell) and equal the arrays' own sums."""
        pos = self.position(self.slot(now_ns))

        def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            hours, days = self.calendar_counts(now_ns)
            ones = np.ones(len(hours), dtype=np.float32)
            return ones @ hours, ones @ days, hours @ np.ones(HOURS, dtype=np.float32)

        return self.memo(("calendar_totals", pos), compute)

    def hours_near(self, now_ns: int, hour: int, bandwidth: float) -> np.ndarray:
        """Per item, events before ``now``'s slot at each local hour weighted by closeness to ``hour`` (Gaussian of
        the circular distance, ``bandwidth`` hours; float64), once per slot: the time-of-day lift and the habit
        prior both take it."""
        from promptrec.retriever.signals.base import hour_kernel

        pos = self.position(self.slot(now_ns))
        return self.memo(("hours_near", pos, hour, bandwidth), lambda: _rows_times(
            self.calendar_counts(now_ns)[0], hour_kernel(np.arange(HOURS), hour, bandwidth)))

    def decayed_counts(self, now_ns: int, half_life_ns: float, window_ns: float) -> np.ndarray:
        """Per item, events in [now - window, now) weighted by 0.5 ** (age / half_life), ``now`` taken at its slot."""
        now_ns = self.slot(now_ns)

        def compute() -> np.ndarray:
            hi = self.position(now_ns)
            lo = int(np.searchsorted(self.ts, now_ns - window_ns, side="left"))
            age = (now_ns - self.ts[lo:hi]).astype(np.float64)
            return np.bincount(self.codes[lo:hi], weights=np.exp2(-age / half_life_ns), minlength=self.n_items)

        return self.memo(("decayed_counts", now_ns, half_life_ns, window_ns), compute)

    def local_calendar(self, now_ns: int) -> tuple[int, int]:
        """Local hour and weekday of ``now``."""
        local = pd.Timestamp(now_ns, tz="UTC").tz_convert(self.timezone)
        return local.hour, local.dayofweek


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def _rows_times(matrix: np.ndarray, vector: np.ndarray, rows: int = 2048) -> np.ndarray:
    """``matrix @ vector`` in equal blocks of ``rows`` to ``2 * rows`` rows: a float32 matrix is cast to the float64
    vector's type block by block, a cached copy instead of the whole matrix's (3x faster at 200,000 items). Below
    ``2 * rows`` rows (the NYC and MovieLens catalogues) that is one block, the whole product; above, a row's sum
    can come out one unit in the last place apart from the whole product's (the BLAS kernel groups rows by
    position), the same on every call."""
    blocks = max(1, len(matrix) // rows)
    out = np.empty(len(matrix), dtype=np.result_type(matrix, vector))
    bounds = np.linspace(0, len(matrix), blocks + 1).astype(int)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        out[start:stop] = matrix[start:stop] @ vector
    return out
