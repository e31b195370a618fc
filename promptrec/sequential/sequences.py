"""Users' event sequences as the padded tensors SASRec reads.

Item ``code`` c is token c + 1 (0 pads). With time, every position also carries the gap since
the previous event (log-scale buckets), its local hour and weekday, and the *next* step's gap,
hour and weekday: at training time those of the event to predict, at query time those of
``now``. That is how the model is told when it is being asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promptrec.data.times import local_hour_dow

MINUTE_NS = 60 * 10**9
GAP_BUCKETS = 26  # 0: no previous event; 1 + floor(log2(1 + minutes)), capped (2**24 minutes ~ 32 years)


def gap_buckets(gaps_ns: np.ndarray) -> np.ndarray:
    """Log2-minute buckets of time gaps (0 is kept for 'no previous event')."""
    minutes = np.maximum(np.asarray(gaps_ns, dtype=np.float64), 0) / MINUTE_NS
    return np.minimum(1 + np.floor(np.log2(1 + minutes)).astype(np.int64), GAP_BUCKETS - 1)


@dataclass
class Sequence:
    """One user's events in time order."""

    codes: np.ndarray  # item codes
    times: np.ndarray  # ns
    hours: np.ndarray  # local hour of each event
    dows: np.ndarray  # local weekday of each event


@dataclass
class Batch:
    """Padded model input (left-padded to ``max_len``); ``targets`` only for training."""

    items: np.ndarray  # (B, L) tokens, 0 = padding
    gaps: np.ndarray  # (B, L) gap bucket since the previous event
    hours: np.ndarray
    dows: np.ndarray
    next_gaps: np.ndarray  # (B, L) gap bucket from this event to the next step
    next_hours: np.ndarray
    next_dows: np.ndarray
    targets: np.ndarray | None = None  # (B, L) tokens to predict, 0 = no loss


def user_sequences(users: np.ndarray, codes: np.ndarray, times: np.ndarray, timezone: str) -> list[Sequence]:
    """Split arrays sorted by user, then time, into one :class:`Sequence` per user."""
    if not len(users):
        return []
    hours, dows = local_hour_dow(times, timezone)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    bounds = np.r_[starts, len(users)]
    return [Sequence(codes[a:b], times[a:b], hours[a:b], dows[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _window(seq: Sequence, start: int, stop: int, max_len: int, next_time: int, next_hour: int, next_dow: int,
            with_targets: bool) -> tuple[np.ndarray, ...]:
    """Features of events [start, stop) left-padded to max_len; the step after the last is given."""
    n = stop - start
    sl = slice(start, stop)
    prev = np.r_[seq.times[start - 1] if start > 0 else seq.times[start], seq.times[sl][:-1]]
    gaps = gap_buckets(seq.times[sl] - prev)
    if start == 0:
        gaps[0] = 0
    nxt_times = np.r_[seq.times[start + 1:stop], next_time]
    nxt_hours = np.r_[seq.hours[start + 1:stop], next_hour]
    nxt_dows = np.r_[seq.dows[start + 1:stop], next_dow]
    cols = [seq.codes[sl] + 1, gaps, seq.hours[sl], seq.dows[sl], gap_buckets(nxt_times - seq.times[sl]),
            nxt_hours, nxt_dows]
    if with_targets:
        cols.append(np.r_[seq.codes[start + 1:stop] + 1, 0])  # filled in by the caller for the last step
    out = []
    for c in cols:
        row = np.zeros(max_len, dtype=np.int64)
        row[max_len - n:] = c
        out.append(row)
    return tuple(out)


def training_windows(seqs: list[Sequence], max_len: int) -> Batch:
    """Every event but each user's first is a target once: sequences cut into windows of ``max_len``
    inputs from the end (the most recent window first), each position predicting the next event."""
    rows = []
    for s in seqs:
        end = len(s.codes)
        while end >= 2:
            start = max(0, end - 1 - max_len)
            stop = end - 1  # inputs [start, stop), the target of the last input is event stop
            row = _window(s, start, stop, max_len, int(s.times[stop]), int(s.hours[stop]), int(s.dows[stop]), True)
            row[-1][-1] = s.codes[stop] + 1
            rows.append(row)
            end = start + 1  # the next window predicts events up to ``start``
    if not rows:
        raise ValueError("no user has two events: a sequential model has nothing to learn from.")
    cols = [np.stack(c) for c in zip(*rows)]
    return Batch(*cols[:7], targets=cols[7])


def query_batch(seqs: list[Sequence], max_len: int, now_ns: np.ndarray, now_hours: np.ndarray,
                now_dows: np.ndarray) -> Batch:
    """The last ``max_len`` events of each sequence, asking for the step at ``now``. An empty sequence
    gives an all-padding row (the caller treats its scores as uninformative)."""
    rows = []
    for s, t, h, d in zip(seqs, now_ns, now_hours, now_dows):
        n = len(s.codes)
        if n == 0:
            rows.append(tuple(np.zeros(max_len, dtype=np.int64) for _ in range(7)))
            continue
        rows.append(_window(s, max(0, n - max_len), n, max_len, int(t), int(h), int(d), False))
    return Batch(*[np.stack(c) for c in zip(*rows)])
