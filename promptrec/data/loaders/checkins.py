"""Check-in files (Foursquare NYC / TKY as used in next-POI work: GETNext, LLM4POI): one CSV of visits in
which every row also describes the place (category, coordinates).

    load_checkins("../shared/data/foursquare-nyc/checkins.csv")

Events: user_id, POI_id, UTC_time. Items: one per POI_id, titled by its category name
(``POI_catname``, also its category), with ``latitude`` / ``longitude`` attributes. The time zone
is the file's own: its ``timezone`` column gives each visit's offset from UTC in minutes; the
most common offset becomes a fixed-offset zone (``Etc/GMT+5`` for New York in winter), unless
``timezone`` is given (e.g. ``America/New_York``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from promptrec.data.dataset import Dataset
from promptrec.data.problems import DataError, Problem, reading
from promptrec.data.loaders.tabular import load_events_with_items

COLUMNS = {"user_id": "user_id", "item_id": "POI_id", "timestamp": "UTC_time"}
ITEM_COLUMNS = {"title": "POI_catname", "categories": "POI_catname"}
ITEM_ATTRIBUTES = ("latitude", "longitude")
REQUIRED = ("user_id", "POI_id", "UTC_time", "POI_catname", "latitude", "longitude")


def is_checkin_file(path: Path) -> bool:
    """A CSV whose header has the check-in columns."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().split(",")
    return all(c in header for c in REQUIRED)


def file_timezone(path: Path) -> str:
    """Fixed-offset zone of the file's most common ``timezone`` offset (minutes from UTC); UTC without one."""
    with reading(str(path), "a check-in CSV"):
        offsets = pd.read_csv(path, usecols=lambda c: c == "timezone", dtype=str)
    if "timezone" not in offsets or offsets["timezone"].dropna().empty:
        return "UTC"
    minutes = pd.to_numeric(offsets["timezone"], errors="coerce").dropna()
    mode = float(minutes.mode().iloc[0]) if len(minutes) else float("nan")
    if not (mode == mode and mode % 60 == 0 and abs(mode) <= 14 * 60):
        raise DataError(Problem(str(path), "timezone", "bad_timezone",
                                f"the most common offset is {mode:g} minutes, not a whole number of hours within "
                                "UTC-14..UTC+14.", "fix the column, or pass timezone= (an IANA name such as "
                                "'America/New_York')."))
    hours = int(mode) // 60
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # Etc/GMT+5 is UTC-5 (POSIX sign)


def load_checkins(path: str | Path, *, timezone: str | None = None, **options: Any) -> Dataset:
    path = Path(path)
    if path.is_dir():
        path = path / "checkins.csv"
    return load_events_with_items(path, columns=COLUMNS, item_columns=ITEM_COLUMNS, item_attributes=ITEM_ATTRIBUTES,
                                  context_columns=(), timezone=timezone or file_timezone(path),
                                  name=options.pop("name", path.parent.name if path.name == "checkins.csv" else path.stem),
                                  **options)
