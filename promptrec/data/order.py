"""Histories without timestamps: each user's ordered item list as events with ordinal pseudo-times.

The event log needs times to sort and split, so a sequence gets pseudo-times one day apart, aligned at their
end: every user's last event is at :data:`ORDER_END`, the one before it a day earlier, and so on. Aligning the
ends makes the usual protocol of sequence benchmarks fall out of the time rules: with leave-last-out, every
user's test item is at ``ORDER_END``, every validation item a step before, and every other user's training
history before that (a day apart, so statistics taken at the start of ``now``'s hour still see all of it). The
log is marked ``times_known=False``: nothing that reads clock time (hour, weekday, days ago) may use the times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from promptrec.data.ids import id_codes

ORDER_END = pd.Timestamp("2000-01-01T00:00:00Z")  # every user's last event; earlier ones a STEP apart
STEP = pd.Timedelta(days=1)


def sequence_events(sequences: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Events (user_id, item_id, timestamp) of each user's items, oldest first, with end-aligned pseudo-times."""
    frame = pd.DataFrame({"user_id": [str(u) for u, seq in sequences.items() for _ in seq],
                          "item_id": [str(i) for seq in sequences.values() for i in seq]})
    frame["timestamp"] = order_times(frame)
    return frame


def steps_back_word(steps: int) -> str:
    """'most recent', '2nd most recent', '3rd most recent', '11th most recent': a history entry's place."""
    if steps < 1:
        raise ValueError(f"steps={steps}: 1 is the most recent entry.")
    if steps == 1:
        return "most recent"
    suffix = "th" if 10 <= steps % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(steps % 10, "th")
    return f"{steps}{suffix} most recent"


MIN_GAPS_TO_JUDGE = 100  # fewer consecutive pairs than this are too few to call a log's times invented


def invented_times(frame: pd.DataFrame) -> str | None:
    """Why the times of a log sorted by (user, time) look made up, or None: every event at the same time of day and
    every user's consecutive events exactly one interval apart (e.g. histories given a day each, in order)."""
    users = id_codes(frame["user_id"])
    ns = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    gaps = np.diff(ns)[users[1:] == users[:-1]]
    if gaps.size < MIN_GAPS_TO_JUDGE or gaps[0] <= 0 or np.any(gaps != gaps[0]):
        return None
    day = pd.Timedelta(days=1).value
    if np.any(ns % day != ns[0] % day):
        return None
    at = pd.Timestamp(int(ns[0]), tz="UTC").strftime("%H:%M:%S")
    step = pd.Timedelta(int(gaps[0]))
    apart = f"{step.days} day{'s' * (step.days != 1)}" if step == pd.Timedelta(days=step.days) else str(step)
    return f"every event at {at} UTC and each user's events exactly {apart} apart"


def order_times(frame: pd.DataFrame) -> pd.Series:
    """End-aligned pseudo-times (as :func:`sequence_events` gives) for a log sorted by (user, time)."""
    position = frame.groupby("user_id", sort=False, observed=True).cumcount().to_numpy()
    size = frame.groupby("user_id", sort=False, observed=True)["user_id"].transform("size").to_numpy()
    offsets = pd.to_timedelta((size - 1 - position).astype(np.int64) * STEP.value, unit="ns")
    return pd.Series(ORDER_END - offsets, index=frame.index)
