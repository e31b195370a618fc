"""Local calendar fields of UTC nanosecond times, read in a dataset's time zone, and the words for parts of the day
and slots of the week that prompts and the retriever's evidence share."""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTS_OF_DAY = ((5, "morning"), (12, "afternoon"), (17, "evening"), (21, "night"))


def local_hour_dow(times_ns: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Local hour of day and weekday (0 = Monday) of UTC nanosecond times."""
    local = pd.DatetimeIndex(np.asarray(times_ns, dtype=np.int64).astype("datetime64[ns]")).tz_localize("UTC")
    local = local.tz_convert(timezone)
    return np.asarray(local.hour, dtype=np.int64), np.asarray(local.dayofweek, dtype=np.int64)


def part_of_hour(hour: int) -> str:
    """morning (5-12), afternoon (12-17), evening (17-21), night (21-5)."""
    name = "night"
    for start, label in PARTS_OF_DAY:
        if hour >= start:
            name = label
    return name


def slot_name(hour: int, day_of_week: int) -> str:
    """'weekday mornings', 'weekend nights': the slot of a week an hour and a day (Monday = 0) fall in."""
    return ("weekend " if day_of_week >= 5 else "weekday ") + part_of_hour(hour) + "s"
