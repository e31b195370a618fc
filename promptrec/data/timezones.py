"""The time zone of a log whose rows carry their own offset from UTC (check-in files do): local hours and days
are read in one zone per dataset, so the offsets must be those of one zone."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

import numpy as np
import pandas as pd

from promptrec.data.validate import parse_timestamps

# checked first, so that a file that fits many zones gets the one people mean (the first that fits wins)
PREFERRED = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo",
             "America/Mexico_City", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Moscow", "Asia/Tokyo",
             "Asia/Shanghai", "Asia/Kolkata", "Asia/Singapore", "Australia/Sydney", "Pacific/Auckland")
REGIONS = ("Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/", "Pacific/")


@lru_cache(maxsize=1)
def _candidates() -> tuple[str, ...]:
    rest = sorted(z for z in zoneinfo.available_timezones() if z.startswith(REGIONS) and z not in PREFERRED)
    return PREFERRED + tuple(rest)


def fixed_zone(minutes: float) -> str | None:
    """The ``Etc/GMT`` zone of a whole-hour offset (minutes east of UTC), or None."""
    if minutes % 60 or abs(minutes) > 14 * 60:
        return None
    hours = int(minutes) // 60
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # Etc/GMT+5 is UTC-5 (POSIX sign)


def zone_for_offsets(utc: pd.Series, minutes: pd.Series, fit: float = 0.99) -> str | None:
    """The zone whose offset at the rows' UTC times (tz-aware times, or what the loader parses) is the rows'
    offset (minutes east of UTC), for at least ``fit`` of the rows (real files have a stray row or two).

    One offset (for that share of the rows): its fixed ``Etc/GMT`` zone when it is whole hours (which rule of
    daylight saving the place follows cannot be told from one season), else the first named zone that fits
    (India's +330 is Asia/Kolkata). Offsets that change (daylight saving): the first named zone, PREFERRED ones
    first, that has those offsets at those times. None when no zone fits (a log of several zones).
    """
    times = pd.Series(utc).reset_index(drop=True)
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = parse_timestamps(times)  # as the loader reads them (a bad one: NaT)
    offsets = pd.to_numeric(pd.Series(minutes).reset_index(drop=True), errors="coerce")
    rows = pd.DataFrame({"hour": times.dt.floor("h"), "minutes": offsets}).dropna()
    if rows.empty:
        return None
    pairs = rows.groupby(["hour", "minutes"]).size().reset_index(name="rows")
    need = fit * pairs["rows"].sum()
    by_offset = pairs.groupby("minutes")["rows"].sum()
    fixed = fixed_zone(float(by_offset.idxmax()))
    if fixed is not None and by_offset.max() >= need:
        return fixed
    hours = pd.DatetimeIndex(pairs["hour"])
    naive = hours.tz_localize(None)
    want, weight = pairs["minutes"].to_numpy(dtype=float), pairs["rows"].to_numpy()
    for zone in _candidates():
        offsets = (hours.tz_convert(zone).tz_localize(None) - naive).total_seconds().to_numpy() / 60
        if weight[offsets == want].sum() >= need:
            return zone
    return None
