"""Events added to a fitted retriever after it was fitted (e.g. posted to ``promptrec serve``), per user.

The fitted log is a frame sorted by user, which is costly to insert into; live events sit
beside it, each user's kept in time order, and join the user's history at query time.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class _UserEvents:
    times: list[int] = field(default_factory=list)  # UTC ns, oldest first
    codes: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


class LiveHistories:
    """Per-user live events in time order (ties: arrival order)."""

    def __init__(self) -> None:
        self._users: dict[str, _UserEvents] = {}
        self.count = 0

    def add(self, rows: list[dict[str, Any]], times: np.ndarray, codes: np.ndarray) -> None:
        for row, t, c in zip(rows, times.tolist(), codes.tolist()):
            user = self._users.setdefault(str(row["user_id"]), _UserEvents())
            at = bisect_right(user.times, t)
            user.times.insert(at, t)
            user.codes.insert(at, c)
            user.rows.insert(at, row)
        self.count += len(rows)

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
        return np.asarray(user.codes[:stop], dtype=np.int64), np.asarray(user.times[:stop], dtype=np.int64)

    def frame(self, user_id: Any, before_ns: int | None = None) -> pd.DataFrame:
        """The user's live events (strictly before ``before_ns`` if given) as event rows."""
        user = self._users.get(str(user_id))
        if user is None:
            return pd.DataFrame()
        stop = len(user.times) if before_ns is None else bisect_right(user.times, before_ns - 1)
        return pd.DataFrame(user.rows[:stop])

    def all_frames(self) -> pd.DataFrame:
        """Every live event of every user."""
        return pd.DataFrame([row for user in self._users.values() for row in user.rows])
