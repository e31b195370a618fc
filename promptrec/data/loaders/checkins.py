"""Check-in files (Foursquare NYC / TKY as used in next-POI work: GETNext, LLM4POI): one CSV of visits in
which every row also describes the place (category, coordinates).

    load_checkins("../shared/data/foursquare-nyc/checkins.csv")

Events: user_id, POI_id, UTC_time. Items: one per POI_id, titled by its category name
(``POI_catname``, also its category), with ``latitude`` / ``longitude`` attributes. The time zone
is the file's own: its ``timezone`` column gives each visit's offset from UTC in minutes, and the zone that has
those offsets at those times is the dataset's (:func:`rows_timezone`), unless ``timezone`` is given (e.g.
``America/New_York``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from promptrec.data.dataset import Dataset
from promptrec.data.domain import DOMAINS
from promptrec.data.interactions import Interactions
from promptrec.data.problems import DataError, Problem
from promptrec.data.timezones import fixed_zone, zone_for_offsets
from promptrec.data.loaders.tabular import load_events_with_items

COLUMNS = {"user_id": "user_id", "item_id": "POI_id", "timestamp": "UTC_time"}
ITEM_COLUMNS = {"title": "POI_catname", "categories": "POI_catname"}
ITEM_ATTRIBUTES = ("latitude", "longitude")
OFFSET_COLUMN = "timezone"  # each row's offset from UTC in minutes
REQUIRED = ("user_id", "POI_id", "UTC_time", "POI_catname", "latitude", "longitude")


def is_checkin_file(path: Path) -> bool:
    """A CSV whose header has the check-in columns."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().split(",")
    return all(c in header for c in REQUIRED)


def rows_timezone(utc: pd.Series, offsets: pd.Series | None, file: str) -> str:
    """The zone of the rows' ``timezone`` offsets (minutes from UTC) at their UTC times: a fixed-offset zone when
    the offset never changes (``Etc/GMT+5`` for New York in winter), the named zone that has those offsets at those
    times when it does (daylight saving: ``America/New_York``); UTC without offsets. Rows that fit no one zone
    (several cities) are read in their most common offset, with a warning."""
    minutes = pd.to_numeric(offsets, errors="coerce") if offsets is not None else pd.Series(dtype=float)
    if minutes.dropna().empty:
        return "UTC"
    zone = zone_for_offsets(utc, minutes)
    if zone is not None:
        return zone
    mode = float(minutes.dropna().mode().iloc[0])
    fixed = fixed_zone(mode)
    if fixed is None:
        raise DataError(Problem(file, "timezone", "bad_timezone",
                                f"the most common offset is {mode:g} minutes, and no time zone has the file's "
                                "offsets at its times.", "fix the column, or pass timezone= (an IANA name such as "
                                "'America/New_York')."))
    shown = sorted(minutes.dropna().unique())
    warnings.warn(f"{file}: the rows' offsets from UTC ({', '.join(f'{m:g}' for m in shown[:6])} minutes) fit no "
                  f"one time zone; hours are read at the most common offset ({fixed}). Split the file by place, or "
                  "pass timezone= to choose.", stacklevel=3)
    return fixed


def load_checkins(path: str | Path, *, timezone: str | None = None, **options: Any) -> Dataset:
    """Read the file once: events in UTC (``UTC_time`` is UTC even where a row's string has no zone), items from
    their first rows, then the dataset's zone (``timezone``, else the one of the rows' own offsets)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkins.csv"
    data = load_events_with_items(path, columns=COLUMNS, item_columns=ITEM_COLUMNS, item_attributes=ITEM_ATTRIBUTES,
                                  context_columns=(OFFSET_COLUMN,), timezone="UTC",
                                  name=options.pop("name", path.parent.name if path.name == "checkins.csv" else path.stem),
                                  **options)
    frame = data.interactions.frame
    zone = timezone or rows_timezone(frame["timestamp"], frame.get(OFFSET_COLUMN), str(path))
    events = Interactions(frame.drop(columns=[OFFSET_COLUMN], errors="ignore"), seed=data.interactions.seed,
                          timezone=zone, _sorted=True)
    data.catalog.domain = DOMAINS["places"]
    return replace(data, interactions=events)
