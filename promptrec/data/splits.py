"""Held-out splits in time: leave-last-out, a global temporal cut, and last-session.

The rule for every split: a held-out event's prediction time ``now`` is its timestamp,
and its history is the user's events *strictly before* ``now``; events in the same second
are not history. Training events of a user with a held-out event all lie strictly
before that user's first held-out ``now``.

Per-user splits (leave-last-out, session) keep other users' events in training even when
they come after a given ``now``: that is the standard protocol, and statistics that
depend on time (trending, time-of-day) must still be computed from events before
``now`` (see :meth:`Split.visible`). The temporal split has no such caveat: everything in
training precedes every held-out event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from promptrec.context import Context
from promptrec.data.interactions import Interactions, epoch_ns, to_utc


@dataclass(frozen=True)
class HeldOut:
    """One event to predict: the user, the true item, the time of the prediction and its context (the
    held-out event's own device, location and other context columns: the scene the request comes from)."""

    user_id: str
    item_id: str
    now: pd.Timestamp
    context: Context | None = field(default=None, compare=False, hash=False)


@dataclass
class Split:
    name: str
    train: Interactions
    validation: list[HeldOut]
    test: list[HeldOut]
    full: Interactions
    report: dict[str, Any] = field(default_factory=dict)

    def history(self, target: HeldOut) -> pd.DataFrame:
        """The target user's events strictly before its ``now``."""
        return self.full.history(target.user_id, before=target.now)

    def visible(self, now: Any) -> Interactions:
        """Every user's events strictly before ``now``: all a model may know at that time."""
        return self.full.before(now)

    def describe(self) -> dict[str, Any]:
        return {"split": self.name, "train_events": len(self.train), "validation_targets": len(self.validation),
                "test_targets": len(self.test), **self.report}


def _target_rows(inter: Interactions, rows: np.ndarray) -> list[HeldOut]:
    f = inter.frame
    scene = f[inter.context_columns].iloc[rows].to_dict("records") if inter.context_columns else [{}] * len(rows)
    return [HeldOut(u, i, t, Context.from_event(t, c) if c else None)
            for u, i, t, c in zip(f["user_id"].iloc[rows].to_numpy(), f["item_id"].iloc[rows].to_numpy(),
                                  f["timestamp"].iloc[rows], scene)]


def _has_history(inter: Interactions, rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether each held-out row has at least one event of its user strictly earlier."""
    return inter._ts[starts] < inter._ts[rows]


def leave_last_out(inter: Interactions) -> Split:
    """Per user: the last event is the test target, the one before it the validation target.

    Training keeps each user's events strictly before the validation ``now`` (events in the
    validation event's second that were drawn before it are left out and counted).
    """
    starts, ends = inter._starts, inter._ends
    lengths = ends - starts
    ts = inter._ts
    test_rows, val_rows = ends - 1, ends - 2
    has_val = (lengths >= 3) & (ts[starts] < ts[np.maximum(val_rows, starts)])
    has_test = (lengths >= 2) & _has_history(inter, test_rows, starts)
    # train cut per user: before the validation now if there is one, else before the test now
    cut = np.where(has_val, ts[np.maximum(val_rows, 0)], np.where(has_test, ts[test_rows], np.iinfo(np.int64).max))
    per_row_cut = np.repeat(cut, lengths)
    keep = ts < per_row_cut
    train = inter._subset(keep)
    held_or_train = np.zeros(len(inter), bool)
    held_or_train[keep] = True
    held_or_train[test_rows[has_test]] = True
    held_or_train[val_rows[has_val]] = True
    return Split(
        "leave-last-out", train, _target_rows(inter, val_rows[has_val]), _target_rows(inter, test_rows[has_test]),
        inter,
        {"users": len(starts), "users_without_test": int((~has_test).sum()),
         "users_without_validation": int((~has_val).sum()),
         "events_left_out_same_second_as_target": int((~held_or_train).sum())},
    )


def temporal_split(inter: Interactions, test_start: Any = None, *, valid_start: Any = None, test_end: Any = None,
                   test_fraction: float = 0.1, valid_fraction: float = 0.1, test_days: int | None = None,
                   valid_days: int | None = None) -> Split:
    """Global cut: train before ``valid_start``, validation in [valid_start, test_start), test from ``test_start``.

    Cut times are given as times, as whole days counted back at local midnights (``test_days``: the test
    period ends at ``test_end``, else at the midnight after the last event; ``valid_days``: validation ends where
    the test begins), or default to quantiles of event time (the last ``test_fraction`` of events are test).
    Days make one config measure any period the same way: ``test_days: 15, valid_days: 7`` is the NYC
    check-ins' split on that file and the last three weeks of a later one.
    Every held-out event needs an earlier event of its user to be a target.
    """
    inter.require_times("split 'temporal' (a global cut in time)")
    ts = inter._ts
    if not len(ts):
        raise ValueError("a temporal split needs events; the log is empty.")
    t_end = to_utc(test_end).value if test_end is not None else np.iinfo(np.int64).max
    if test_days is not None:
        if test_start is not None:
            raise ValueError("give test_start or test_days, not both.")
        end = (to_utc(test_end) if test_end is not None
               else _local_midnight_after(int(ts.max()), inter.timezone))
        t_end, t_test = end.value, _days_before(end, test_days, "test_days", inter.timezone).value
    else:
        t_test = to_utc(test_start).value if test_start is not None else int(np.quantile(ts, 1 - test_fraction))
    if valid_days is not None:
        if valid_start is not None:
            raise ValueError("give valid_start or valid_days, not both.")
        t_val = _days_before(pd.Timestamp(t_test, tz="UTC"), valid_days, "valid_days", inter.timezone).value
    else:
        t_val = (to_utc(valid_start).value if valid_start is not None
                 else int(np.quantile(ts, max(0.0, 1 - test_fraction - valid_fraction))))
    if not t_val <= t_test < t_end:
        raise ValueError("need valid_start <= test_start < test_end.")
    user_start = np.repeat(ts[inter._starts], inter._ends - inter._starts)
    with_history = user_start < ts
    val_mask = (ts >= t_val) & (ts < t_test) & with_history
    test_mask = (ts >= t_test) & (ts < t_end) & with_history
    held = (ts >= t_val) & (ts < t_end)
    return Split(
        "temporal", inter._subset(ts < t_val), _target_rows(inter, np.flatnonzero(val_mask)),
        _target_rows(inter, np.flatnonzero(test_mask)), inter,
        {"valid_start": str(pd.Timestamp(t_val, tz="UTC")), "test_start": str(pd.Timestamp(t_test, tz="UTC")),
         "test_end": None if t_end == np.iinfo(np.int64).max else str(pd.Timestamp(t_end, tz="UTC")),
         "held_out_without_history": int((held & ~with_history).sum())},
    )


def _local_midnight_after(t_ns: int, timezone: str) -> pd.Timestamp:
    """The first local midnight after ``t_ns`` (UTC nanoseconds): the end of the last event's day."""
    return (pd.Timestamp(t_ns, tz="UTC").tz_convert(timezone).normalize() + pd.DateOffset(days=1)).tz_convert("UTC")


def _days_before(t: pd.Timestamp, days: Any, key: str, timezone: str) -> pd.Timestamp:
    """``days`` whole local days before ``t`` (a day is 23 or 25 hours across a clock change)."""
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"{key}={days!r}: a whole number of days >= 1.")
    return (t.tz_convert(timezone) - pd.DateOffset(days=int(days))).tz_convert("UTC")


def sessionize(inter: Interactions, gap: str | pd.Timedelta = "30min") -> np.ndarray:
    """Session number of every event: a new session starts after ``gap`` of inactivity (per user)."""
    gap_ns = pd.Timedelta(gap).value
    ts = inter._ts
    new = np.ones(len(ts), bool)
    new[1:] = np.diff(ts) > gap_ns
    new[inter._starts] = True
    return np.cumsum(new) - 1


def session_split(inter: Interactions, gap: str | pd.Timedelta = "30min") -> Split:
    """Per user: every event of the last session is a test target, of the one before a validation target.

    Users need at least two sessions (three for validation); training keeps each user's
    events strictly before the first held-out session.
    """
    inter.require_times("split 'session' (sessions cut at gaps in time)")
    session = sessionize(inter, gap)
    ts = inter._ts
    first_session = session[inter._starts]
    last_session = session[inter._ends - 1]
    n_sessions = last_session - first_session + 1
    lengths = inter._ends - inter._starts
    user_last = np.repeat(last_session, lengths)
    user_n = np.repeat(n_sessions, lengths)
    test_mask = (session == user_last) & (user_n >= 2)
    val_mask = (session == user_last - 1) & (user_n >= 3)
    held = test_mask | val_mask
    # each user's cut: the time of its first held-out event
    first_held = pd.Series(np.where(held, ts, np.iinfo(np.int64).max)).groupby(np.repeat(np.arange(len(lengths)), lengths)).transform("min").to_numpy()
    train_mask = ts < first_held
    return Split(
        "session", inter._subset(train_mask), _target_rows(inter, np.flatnonzero(val_mask)),
        _target_rows(inter, np.flatnonzero(test_mask)), inter,
        {"gap": str(pd.Timedelta(gap)), "sessions": int(session[-1] + 1) if len(session) else 0,
         "users_with_one_session": int((n_sessions < 2).sum()),
         "events_left_out_same_second_as_target": int((~train_mask & ~held).sum())},
    )


SPLITS = {"leave-last-out": leave_last_out, "temporal": temporal_split, "session": session_split}


def make_split(inter: Interactions, name: str = "leave-last-out", **options: Any) -> Split:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose one of {sorted(SPLITS)}.")
    return SPLITS[name](inter, **options)
