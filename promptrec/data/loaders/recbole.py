"""RecBole atomic files (``<name>.inter`` and ``<name>.item``), as used by the Amazon benchmarks.

Headers are typed, e.g. ``user_id:token  item_id:token  rating:float  timestamp:float``;
``token_seq`` fields hold several tokens separated by ``seq_separator`` (a space by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.interactions import Interactions
from promptrec.data.problems import (DataError, ErrorPolicy, LoadReport, Problem, missing_file, reading,
                                     require_columns)
from promptrec.data.validate import clean_events, clean_items

TITLE_FIELDS = ("title", "movie_title", "item_name", "name")
CATEGORY_FIELDS = ("categories", "genre", "genres", "class", "category")
RELEASE_FIELDS = ("release_year", "release_date", "year")
KNOWN_TYPES = {"token", "token_seq", "float", "float_seq"}


def read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A RecBole atomic file as strings, with the type of each field."""
    if not path.exists():
        raise missing_file(str(path), "RecBole atomic file", "check the folder and the dataset name.")
    with reading(str(path), "a RecBole atomic file (tab-separated, typed header)"):
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[], quoting=3)
    types: dict[str, str] = {}
    renamed = {}
    for col in frame.columns:
        name, _, ftype = col.partition(":")
        if ftype not in KNOWN_TYPES:
            raise DataError(Problem(str(path), col, "bad_header", f"header field '{col}' has no RecBole type.",
                                    "write headers as name:type with type token, token_seq, float or float_seq."))
        types[name] = ftype
        renamed[col] = name
    return frame.rename(columns=renamed), types


def load_recbole(folder: str | Path, name: str | None = None, *, errors: ErrorPolicy = "raise", seed: int = 0,
                 timezone: str = "UTC", seq_separator: str = " ") -> Dataset:
    """Load ``folder/<name>.inter`` and, if present, ``folder/<name>.item``."""
    folder = Path(folder)
    if name is None:
        inters = sorted(folder.glob("*.inter"))
        if len(inters) != 1:
            raise missing_file(str(folder), "exactly one .inter file",
                               f"found {[p.name for p in inters]}; pass the dataset name.")
        name = inters[0].stem
    report = LoadReport()
    item_path = folder / f"{name}.item"
    catalog = None
    if item_path.exists():
        raw, types = read_atomic(item_path)
        require_columns(str(item_path), list(raw.columns), {"item_id": "item_id"})
        items = pd.DataFrame({"item_id": raw["item_id"]})
        title = next((f for f in TITLE_FIELDS if f in raw.columns), None)
        items["title"] = raw[title] if title else raw["item_id"]
        cat = next((f for f in CATEGORY_FIELDS if f in raw.columns), None)
        if cat:
            sep = seq_separator if types[cat] == "token_seq" else "\x00"
            items["categories"] = [tuple(t for t in v.split(sep) if t) for v in raw[cat]]
        rel = next((f for f in RELEASE_FIELDS if f in raw.columns), None)
        if rel:
            items["release_time"] = raw[rel].map(lambda v: f"{v}-01-01" if v.isdigit() and len(v) == 4 else v)
        used = {"item_id", title, cat, rel}
        for col in raw.columns:
            if col not in used:
                items[col] = pd.to_numeric(raw[col], errors="coerce") if types[col] == "float" else raw[col]
        catalog = Catalog(clean_items(items, file=str(item_path), row_numbers=np.arange(len(raw)) + 2,
                                      report=report, errors=errors, timezone=timezone))
    inter_path = folder / f"{name}.inter"
    raw, types = read_atomic(inter_path)
    require_columns(str(inter_path), list(raw.columns),
                    {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp"})
    events = clean_events(raw, file=str(inter_path), row_numbers=np.arange(len(raw)) + 2, report=report,
                          errors=errors, known_items=None if catalog is None else catalog.frame.index,
                          timezone=timezone)
    for col in events.columns:
        if types.get(col) == "float" and col not in ("timestamp",):
            events[col] = pd.to_numeric(events[col], errors="coerce")
    if catalog is None:  # no .item file: a bare catalogue of the ids seen
        ids = events["item_id"].unique()
        catalog = Catalog(pd.DataFrame({"item_id": ids, "title": ids}), items_from_events=True)
    return Dataset(name, catalog, Interactions(events, seed=seed, timezone=timezone), report, source=str(folder))
