"""Jinja filters that describe times relative to ``now``, in the time zone the timestamps carry.

Timestamps reach templates already converted to the display time zone, so "evening" and
"Sunday" are the user's local evening and Sunday. Calendar words ("yesterday", "2 days
ago") count calendar days in that zone; short gaps count minutes and hours.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from promptrec.data.order import steps_back_word as steps_back
from promptrec.data.times import PARTS_OF_DAY, part_of_hour, slot_name  # noqa: F401 (PARTS_OF_DAY: old path)

SEASONS_NORTH = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
                 6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}
OPPOSITE = {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}


def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone; promptrec only renders tz-aware times.")
    return ts


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def duration(delta: pd.Timedelta | Any) -> str:
    """A rounded-down human duration: '45 seconds', '5 minutes', '3 hours', '2 days', '3 weeks', '4 months', '2 years'."""
    seconds = int(pd.Timedelta(delta).total_seconds())
    if seconds < 0:
        raise ValueError(f"negative duration {delta}")
    for size, unit in ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"),
                       (3600, "hour"), (60, "minute")):
        if seconds >= size * (2 if unit in ("month", "year") else 1):
            return _plural(seconds // size, unit)
    return _plural(seconds, "second")


def ago(value: Any, now: Any) -> str:
    """'just now', '12 minutes ago', '3 hours ago', 'yesterday', '4 days ago', '2 weeks ago', '3 months ago'.

    Minutes under an hour; hours on the same calendar day (or under 6 hours); then calendar days
    up to 13, weeks up to 7, months up to a year, then years."""
    ts, now = _ts(value), _ts(now).tz_convert(_ts(value).tz)
    delta = now - ts
    if delta < pd.Timedelta(0):
        raise ValueError(f"{ts} is after now ({now}): history must lie before the time of the prediction.")
    if delta < pd.Timedelta(minutes=1):
        return "just now"
    if delta < pd.Timedelta(hours=1):
        return f"{_plural(int(delta.total_seconds() // 60), 'minute')} ago"
    days = (now.normalize() - ts.normalize()).days  # calendar days in the local zone
    if days == 0 or delta < pd.Timedelta(hours=6):
        return f"{_plural(int(delta.total_seconds() // 3600), 'hour')} ago"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 56:
        return f"{_plural(days // 7, 'week')} ago"
    if days < 365:
        return f"{max(2, round(days / 30.44))} months ago"
    return f"{_plural(days // 365, 'year')} ago"


def weekday(value: Any) -> str:
    return _ts(value).day_name()


def part_of_day(value: Any) -> str:
    """morning (5-12), afternoon (12-17), evening (17-21), night (21-5), in local time."""
    return part_of_hour(_ts(value).hour)


def slot(value: Any) -> str:
    """The time's slot of the week in local time ('weekday evenings'), in the words of the evidence's usual time."""
    ts = _ts(value)
    return slot_name(ts.hour, ts.dayofweek)


def when(value: Any, now: Any) -> str:
    """'3 days ago, Sunday evening': relative time plus local weekday and part of day."""
    return f"{ago(value, now)}, {weekday(value)} {part_of_day(value)}"


def date(value: Any, fmt: str = "%Y-%m-%d") -> str:
    return _ts(value).strftime(fmt)


def clock(value: Any) -> str:
    return _ts(value).strftime("%H:%M")


def season(value: Any, hemisphere: str = "north") -> str:
    name = SEASONS_NORTH[_ts(value).month]
    if hemisphere not in ("north", "south"):
        raise ValueError("hemisphere must be 'north' or 'south'")
    return name if hemisphere == "north" else OPPOSITE[name]


def gap(value: Any, previous: Any | None) -> str:
    """Time since the previous event: 'first', 'same minute', '5 minutes later', '2 days later'."""
    if previous is None:
        return "first"
    delta = _ts(value) - _ts(previous)
    if delta < pd.Timedelta(minutes=1):
        return "same minute"
    return f"{duration(delta)} later"


FILTERS = {"ago": ago, "when": when, "weekday": weekday, "part_of_day": part_of_day, "slot": slot, "date": date,
           "clock": clock, "season": season, "gap": gap, "duration": duration, "steps_back": steps_back}
