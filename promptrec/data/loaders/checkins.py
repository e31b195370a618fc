"""Check-in files (Foursquare NYC / TKY as used in next-POI work: GETNext, LLM4POI): one CSV of visits in
which every row also describes the place (category, coordinates).

    load_checkins("../shared/data/foursquare-nyc/checkins.csv")

Events: user_id, POI_id, UTC_time. Items: one per POI_id, titled by its category name
(``POI_catname``, also its category), with ``latitude`` / ``longitude`` attributes. The time zone
is the file's own: its ``timezone`` column gives each visit's offset from UTC in minutes, and the zone that has
those offsets at those times is the dataset's (:func:`file_timezone`), unless ``timezone`` is given (e.g.
``America/New_York``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from promptrec.data.dataset import Dataset
from promptrec.data.problems import DataError, Problem, reading
from promptrec.data.timezones import fixed_zone, zone_for_offsets
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
    """The zone of the file's per-row ``timezone`` offsets (minutes from UTC) at their ``UTC_time``: a fixed-offset
    zone when the offset never changes (``Etc/GMT+5`` for New York in winter), the named zone that has those
    offsets at those times when it does (daylight saving: ``America/New_York``); UTC without the column. A file
    that fits no one zone (several cities) is read in its most common offset, with a warning."""
    with reading(str(path), "a check-in CSV"):
        rows = pd.read_csv(path, usecols=lambda c: c in ("timezone", "UTC_time"), dtype=str)
    if "timezone" not in rows or rows["timezone"].dropna().empty:
        return "UTC"
    minutes = pd.to_numeric(rows["timezone"], errors="coerce")
    zone = zone_for_offsets(rows["UTC_time"], minutes) if "UTC_time" in rows else None
    if zone is not None:
        return zone
    mode = float(minutes.dropna().mode().iloc[0]) if minutes.notna().any() else float("nan")
    fixed = fixed_zone(mode) if mode == mode else None
    if fixed is None:
        raise DataError(Problem(str(path), "timezone", "bad_timezone",
                                f"the most common offset is {mode:g} minutes, and no time zone has the file's "
                                "offsets at its times.", "fix the column, or pass timezone= (an IANA name such as "
                                "'America/New_York')."))
    offsets = sorted(minutes.dropna().unique())
    warnings.warn(f"{path}: the rows' offsets from UTC ({', '.join(f'{m:g}' for m in offsets[:6])} minutes) fit no "
                  f"one time zone; hours are read at the most common offset ({fixed}). Split the file by place, or "
                  "pass timezone= to choose.", stacklevel=2)
    return fixed


def load_checkins(path: str | Path, *, timezone: str | None = None, **options: Any) -> Dataset:
    path = Path(path)
    if path.is_dir():
        path = path / "checkins.csv"
    return load_events_with_items(path, columns=COLUMNS, item_columns=ITEM_COLUMNS, item_attributes=ITEM_ATTRIBUTES,
                                  context_columns=(), timezone=timezone or file_timezone(path),
                                  name=options.pop("name", path.parent.name if path.name == "checkins.csv" else path.stem),
                                  **options)
