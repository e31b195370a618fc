"""Events added to a fitted retriever after it was fitted (e.g. posted to ``promptrec serve``), per user.

The fitted log is a frame sorted by user, which is costly to insert into; live events sit
beside it, each user's kept in time order, and join the user's history at query time.

Memory per event stays small (a service takes events for weeks): times and item codes are packed
machine integers per user, the user and item ids are not stored again (the user is the key, the
item id comes from its code), and every other attribute (event type, device, any context field)
is one column of references to shared values, so a device name seen a thousand times is stored
once. About 150 bytes per event (measured with 20-character event ids and a device), the event id
the largest part.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MOSTLY_DISTINCT = 1_000  # past this many distinct values, a column whose values are mostly distinct (event ids)
#                         stops sharing them: the lookup table would cost more than it saves


class _Column:
    """One event attribute for every live event, repeated values shared (None where an event lacks it)."""

    def __init__(self, rows_before: int):
        self.values: list[Any] = [None] * rows_before
        self._shared: dict[Any, Any] | None = {}

    def extend(self, values: Any) -> None:
        shared = self._shared
        for v in values:
            if v is None or (isinstance(v, float) and v != v):
                self.values.append(None)
                continue
            v = v.item() if isinstance(v, np.generic) else v
            if shared is not None:
                try:
                    v = shared.setdefault(v, v)
                except TypeError:  # unhashable (a list in a context field): kept as is
                    pass
            self.values.append(v)
        if shared is not None and len(shared) > MOSTLY_DISTINCT and 2 * len(shared) > len(self.values):
            self._shared = None


@dataclass
class _UserEvents:
    times: array = field(default_factory=lambda: array("q"))  # UTC ns, oldest first
    codes: array = field(default_factory=lambda: array("i"))  # item codes
    rows: array = field(default_factory=lambda: array("i"))  # positions in the columns


class LiveHistories:
    """Per-user live events in time order (ties: arrival order), attributes stored column-wise.
    ``item_ids``: the catalogue's ids in code order (events come back with their item id)."""

    DERIVED = ("user_id", "item_id", "timestamp")  # kept as the key, the code and the time

    def __init__(self, item_ids: Any) -> None:
        self._item_ids = np.asarray(item_ids, dtype=object)
        self._users: dict[str, _UserEvents] = {}
        self._columns: dict[str, _Column] = {}
        self.count = 0

    def add(self, frame: pd.DataFrame, times: np.ndarray, codes: np.ndarray) -> None:
        """Add events: ``frame`` rows (``user_id`` and any attributes; their time and item are given by
        ``times``, UTC ns, and item ``codes``)."""
        start = self.count
        for name in frame.columns:
            if name in self.DERIVED:
                continue
            if name not in self._columns:
                self._columns[name] = _Column(start)
            self._columns[name].extend(frame[name].tolist())
        self.count += len(frame)
        for column in self._columns.values():  # attributes these events lack
            column.values.extend([None] * (self.count - len(column.values)))
        for row, user_id, t, c in zip(range(start, self.count), frame["user_id"].astype(str), times.tolist(),
                                      codes.tolist()):
            user = self._users.get(user_id)
            if user is None:
                user = self._users[user_id] = _UserEvents()
            at = bisect_right(user.times, t)
            user.times.insert(at, t)
            user.codes.insert(at, c)
            user.rows.insert(at, row)

    def __contains__(self, user_id: Any) -> bool:
        return str(user_id) in self._users

    def __len__(self) -> int:
        return self.count

    @property
    def users(self) -> list[str]:
        return list(self._users)

    def arrays(self, user_id: Any, before_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's live item codes and times strictly before ``before_ns``."""
        user = self._users.get(str(user_id))
        if user is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        stop = bisect_right(user.times, before_ns - 1)
        return np.array(user.codes[:stop], dtype=np.int64), np.array(user.times[:stop], dtype=np.int64)

    def frame(self, user_id: Any, before_ns: int | None = None) -> pd.DataFrame:
        """The user's live events (strictly before ``before_ns`` if given) as event rows."""
        user = self._users.get(str(user_id))
        if user is None:
            return pd.DataFrame()
        stop = len(user.times) if before_ns is None else bisect_right(user.times, before_ns - 1)
        return self._rows([(str(user_id), user, stop)])

    def all_frames(self) -> pd.DataFrame:
        """Every live event of every user."""
        return self._rows([(u, user, len(user.times)) for u, user in self._users.items()])

    def _rows(self, parts: list[tuple[str, _UserEvents, int]]) -> pd.DataFrame:
        rows = [r for _, user, stop in parts for r in user.rows[:stop]]
        if not rows:
            return pd.DataFrame()
        out = {"user_id": [u for u, _, stop in parts for _ in range(stop)],
               "item_id": self._item_ids[np.concatenate([np.asarray(user.codes[:stop], dtype=np.int64)
                                                         for _, user, stop in parts])],
               "timestamp": pd.to_datetime(np.concatenate([np.asarray(user.times[:stop], dtype=np.int64)
                                                           for _, user, stop in parts]), utc=True)}
        out |= {name: [c.values[r] for r in rows] for name, c in self._columns.items()}
        frame = pd.DataFrame(out)
        if "weight" in frame:
            frame["weight"] = frame["weight"].astype(float)
        return frame
