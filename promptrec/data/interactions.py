"""The event log: a pandas frame sorted per user by time, with fast history access.

Same-second events are common (76% of MovieLens 100K events share their second with
another event of the same user). Their order is not knowable, so it is drawn at random
with a seed, never taken from item ids or file order, which would plant an artifact
that sequential models learn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.ids import ID_COLUMNS, align_categories, as_sorted_category, compact, is_sorted_category
from promptrec.data.order import invented_times, order_times
from promptrec.data.records import Event
from promptrec.data.repeats import hour_profile, repeat_rate

log = logging.getLogger(__name__)

CORE_COLUMNS = ["user_id", "item_id", "timestamp", "event_type", "weight"]
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3  # a shallow copy's new columns leave the original alone


def epoch_ns(timestamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch."""
    return timestamps.to_numpy(dtype="datetime64[ns]").view("int64")


def to_utc(now: Any) -> pd.Timestamp:
    """A tz-aware UTC timestamp from a string, datetime or Timestamp (naive means UTC is refused)."""
    ts = pd.Timestamp(now)
    if ts.tzinfo is None:
        raise ValueError(
            f"time {now!r} has no time zone; give one (e.g. '2024-05-01T18:00:00+02:00' or 'Z' for UTC)."
        )
    return ts.tz_convert("UTC")


def event_order(user_codes: np.ndarray, ts_ns: np.ndarray, seed: int) -> np.ndarray:
    """Row order of an event log: by user (codes of sorted categories order as the ids do), time, then a
    seeded random draw among same-time events."""
    tie = np.random.default_rng(seed).permutation(len(ts_ns))
    return np.lexsort((tie, ts_ns, user_codes))


class Interactions:
    """Events sorted by (user, time, seeded random tie order).

    ``frame`` has ``user_id``, ``item_id`` and ``event_type`` (categoricals of strings, categories sorted),
    ``timestamp`` (UTC), ``weight`` and any context columns (device, location...).
    ``timezone`` is the zone in which hour-of-day and weekday are read. ``times_known`` False: the timestamps
    are ordinal pseudo-times (:mod:`promptrec.data.order`) that carry each user's order only, not clock time.
    """

    def __init__(self, frame: pd.DataFrame, *, seed: int = 0, timezone: str = "UTC", _sorted: bool = False,
                 times_known: bool = True, _in_event_order: bool = False):
        missing = [c for c in ("user_id", "item_id", "timestamp") if c not in frame.columns]
        if missing:
            raise ValueError(f"Interactions frame lacks columns {missing}; it has {list(frame.columns)}.")
        self.seed = seed
        self.timezone = timezone
        self.times_known = bool(times_known)
        if not _sorted:
            frame = frame.copy(deep=not COPY_ON_WRITE)  # columns are replaced, not written into: the caller's stays
            frame["user_id"] = as_sorted_category(frame["user_id"])
            frame["item_id"] = as_sorted_category(frame["item_id"])
            _refuse_missing_ids(frame)
            if frame["timestamp"].dtype != UTC_NS:
                ts = pd.to_datetime(frame["timestamp"])
                if ts.dt.tz is None:
                    raise ValueError("Interactions timestamps must be tz-aware; localize them first (loaders do).")
                frame["timestamp"] = ts.dt.tz_convert("UTC").astype(UTC_NS)
            if "event_type" not in frame.columns:  # one category, a byte a row
                frame["event_type"] = pd.Categorical.from_codes(np.zeros(len(frame), np.int8),
                                                                categories=pd.Index(["interaction"], dtype="str"))
            if "weight" not in frame.columns:
                frame["weight"] = 1.0
            frame["event_type"] = as_sorted_category(frame["event_type"])
            frame["weight"] = frame["weight"].astype(float)
            if not _in_event_order:  # (a loader that sorted its arrays by event_order already)
                order = event_order(frame["user_id"].cat.codes.to_numpy(), epoch_ns(frame["timestamp"]), seed)
                frame = frame.iloc[order].reset_index(drop=True)
                del order
            columns = CORE_COLUMNS + [c for c in frame.columns if c not in CORE_COLUMNS]
            if list(frame.columns) != columns:
                frame = frame[columns]
            invented = invented_times(frame) if self.times_known else None
            if invented:
                log.warning("these times look invented (%s): they are read as each user's order only, and signals "
                            "that read the clock are left out.", invented)
                frame["timestamp"] = order_times(frame)
                self.times_known = False
        else:
            frame = _categorized(frame)
        self.frame = frame
        frame.attrs["times_known"] = self.times_known  # histories sliced from the frame carry it (prompts read it)
        users = frame["user_id"].cat.codes.to_numpy()
        change = np.flatnonzero(users[1:] != users[:-1]) + 1 if len(users) else np.array([], dtype=int)
        self._starts = np.concatenate([[0], change]).astype(np.int64) if len(users) else np.array([], np.int64)
        self._ends = np.concatenate([change, [len(users)]]).astype(np.int64) if len(users) else np.array([], np.int64)
        cats = frame["user_id"].cat.categories
        self._user_pos = cats.take(users[self._starts]) if len(users) else pd.Index([], dtype="str")
        self._ts = epoch_ns(frame["timestamp"])

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_events(cls, events: list[Event], *, seed: int = 0, timezone: str = "UTC",
                    times_known: bool = True) -> "Interactions":
        rows = [{"user_id": e.user_id, "item_id": e.item_id, "timestamp": e.timestamp,
                 "event_type": e.event_type, "weight": e.weight, **e.context} for e in events]
        return cls(pd.DataFrame(rows), seed=seed, timezone=timezone, times_known=times_known)

    def _subset(self, mask: np.ndarray) -> "Interactions":
        """Rows where mask is true, keeping the tie order already drawn."""
        frame = self.frame.loc[mask].reset_index(drop=True)
        for col in ID_COLUMNS:
            if col in frame.columns:
                frame[col] = compact(frame[col])
        return Interactions(frame, seed=self.seed,
                            timezone=self.timezone, _sorted=True, times_known=self.times_known)

    def require_times(self, what: str, fix: str = "Use split 'leave-last-out', or load data with timestamps.") -> None:
        """Refuse ``what`` (a split, a time window...) when the timestamps are only an order."""
        if not self.times_known:
            raise ValueError(f"{what} needs clock times, and this data has none: its events carry only each "
                             f"user's order (read from a sequence file). {fix}")

    def before(self, now: Any) -> "Interactions":
        """Every event strictly before ``now`` (events at ``now`` are not history)."""
        return self._subset(self._ts < to_utc(now).value)

    def between(self, start: Any, end: Any) -> "Interactions":
        """Events with start <= timestamp < end (``None``: no bound on that side)."""
        keep = np.ones(len(self._ts), bool)
        if start is not None:
            keep &= self._ts >= to_utc(start).value
        if end is not None:
            keep &= self._ts < to_utc(end).value
        return self._subset(keep)

    def for_users(self, user_ids: Any) -> "Interactions":
        return self._subset(self.frame["user_id"].isin([str(u) for u in user_ids]).to_numpy())

    def append(self, other: "Interactions") -> "Interactions":
        """A new log with both logs' events (ties re-drawn with this log's seed)."""
        return Interactions(pd.concat(align_categories([self.frame, other.frame]), ignore_index=True), seed=self.seed,
                            timezone=self.timezone, times_known=self.times_known and other.times_known)

    # -- access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def users(self) -> np.ndarray:
        return self._user_pos.to_numpy()

    @property
    def items(self) -> np.ndarray:
        return np.asarray(self.frame["item_id"].unique(), dtype=object)

    def has_user(self, user_id: Any) -> bool:
        return str(user_id) in self._user_pos

    def user_slice(self, user_id: Any) -> slice:
        if not hasattr(self, "_user_index"):
            self._user_index = {u: i for i, u in enumerate(self._user_pos)}
        pos = self._user_index.get(str(user_id), -1)
        if pos < 0:
            return slice(0, 0)
        return slice(int(self._starts[pos]), int(self._ends[pos]))

    def history(self, user_id: Any, before: Any = None) -> pd.DataFrame:
        """The user's events in time order; with ``before``, only those strictly earlier."""
        sl = self.user_slice(user_id)
        if before is not None:
            stop = sl.start + int(np.searchsorted(self._ts[sl], to_utc(before).value, side="left"))
            sl = slice(sl.start, stop)
        return self.frame.iloc[sl]

    def history_events(self, user_id: Any, before: Any = None) -> list[Event]:
        return list(_to_events(self.history(user_id, before)))

    def iter_events(self) -> Iterator[Event]:
        return _to_events(self.frame)

    @property
    def context_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in CORE_COLUMNS]

    def time_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        if not len(self):
            return None
        return self.frame["timestamp"].min(), self.frame["timestamp"].max()

    def describe(self) -> dict[str, Any]:
        lengths = self._ends - self._starts
        tr = self.time_range()
        ts = self.frame[["user_id", "timestamp"]]
        same_second = ts.duplicated(keep=False).mean() if len(ts) else 0.0
        return {
            "events": len(self),
            "users": len(self._user_pos),
            "items": int(self.frame["item_id"].nunique()),
            "time_range": None if tr is None else (str(tr[0]), str(tr[1])),
            "events_per_user": {
                "min": int(lengths.min()) if len(lengths) else 0,
                "median": float(np.median(lengths)) if len(lengths) else 0.0,
                "max": int(lengths.max()) if len(lengths) else 0,
            },
            "event_types": self.frame["event_type"].value_counts().to_dict(),
            "share_in_same_second_ties": round(float(same_second), 4),
            "context_columns": self.context_columns,
            "timezone": self.timezone,
            "times_known": self.times_known,
            "repeat_rate": round(repeat_rate(self.frame), 4),
            "hour_profile": hour_profile(self.frame, self.timezone),
        }


def _refuse_missing_ids(frame: pd.DataFrame) -> None:
    """A clear error for events without a user or item id (a missing id has no category: code -1)."""
    for col in ("user_id", "item_id"):
        missing = np.flatnonzero(frame[col].cat.codes.to_numpy() < 0)
        if len(missing):
            raise ValueError(f"{len(missing)} events have no {col} (e.g. rows {missing[:5].tolist()}): give them one "
                             "or drop them (load_events(..., errors='drop') drops them).")


def _categorized(frame: pd.DataFrame) -> pd.DataFrame:
    """A sorted frame whose id columns are sorted-string categoricals (rows untouched)."""
    todo = [c for c in ID_COLUMNS if c in frame.columns and not is_sorted_category(frame[c])]
    if not todo:
        return frame
    frame = frame.copy(deep=False)
    for col in todo:
        frame[col] = as_sorted_category(frame[col])
    return frame


def _to_events(frame: pd.DataFrame) -> Iterator[Event]:
    ctx_cols = [c for c in frame.columns if c not in CORE_COLUMNS]
    for d in frame.to_dict("records"):
        yield Event(d["user_id"], d["item_id"], d["timestamp"], d["event_type"], float(d["weight"]),
                    {c: d[c] for c in ctx_cols})
