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
        name, _, ftype = col.rpartition(":")
        if ftype not in KNOWN_TYPES:
            raise DataError(Problem(str(path), col, "bad_header", f"header field '{col}' has no RecBole type.",
                                    "write headers as name:type with type token, token_seq, float or float_seq."))
        types[name] = ftype
        renamed[col] = name
    return frame.rename(columns=renamed), types


SPLIT_ROLES = ("train", "valid", "test")


def _inter_files(folder: Path, name: str | None) -> tuple[str, list[Path]]:
    """The dataset name and its interaction files: ``<name>.inter``, or ``<name>.train/.valid/.test.inter``."""
    inters = sorted(folder.glob("*.inter"))
    split_sets = {p.name[: -len(f".{r}.inter")] for p in inters for r in SPLIT_ROLES if p.name.endswith(f".{r}.inter")}
    split_sets = {b for b in split_sets if all((folder / f"{b}.{r}.inter").exists() for r in SPLIT_ROLES)}
    in_sets = {f"{b}.{r}" for b in split_sets for r in SPLIT_ROLES}
    choices = sorted(split_sets | {p.stem for p in inters if p.stem not in in_sets})
    if name is None and len(choices) == 1:
        name = choices[0]
    if name is None:
        raise missing_file(str(folder), "exactly one dataset's .inter file(s)",
                           f"found {[p.name for p in inters]}; pass name= one of {choices}.")
    if (folder / f"{name}.inter").exists():
        return name, [folder / f"{name}.inter"]
    if name in split_sets:
        return name, [folder / f"{name}.{r}.inter" for r in SPLIT_ROLES]
    raise missing_file(str(folder / f"{name}.inter"), "RecBole interaction file",
                       f"the folder has {[p.name for p in inters]}; pass name= one of {choices}.")


def load_recbole(folder: str | Path, name: str | None = None, *, columns: dict[str, str] | None = None,
                 item_columns: dict[str, str] | None = None, errors: ErrorPolicy = "raise", seed: int = 0,
                 timezone: str = "UTC", seq_separator: str = " ", timestamp_unit: str = "s",
                 timestamp_format: str | None = None) -> Dataset:
    """Load ``folder/<name>.inter`` and, if present, ``folder/<name>.item``.

    ``name`` picks the dataset when the folder holds several. A dataset split by role into
    ``<name>.train.inter``, ``<name>.valid.inter`` and ``<name>.test.inter`` is loaded as one log of all
    three files' events (promptrec splits it again by time; which file each event came from is not kept as an
    event column, which the retriever would read as context, but ``report`` lists the rows read per file).
    ``columns`` maps user_id / item_id / timestamp (and event_type, weight) to the .inter fields,
    ``item_columns`` maps item_id / title / description / categories / release_time to the .item fields
    (by default the first of the usual names: title, movie_title, item_name, ...). Item text is cleaned at load
    (HTML entities decoded, whitespace collapsed)."""
    folder = Path(folder)
    name, inter_paths = _inter_files(folder, name)
    report = LoadReport()
    item_path = folder / f"{name}.item"
    catalog = None
    if item_path.exists():
        raw, types = read_atomic(item_path)
        mapped = {**{"item_id": "item_id"}, **(item_columns or {})}
        unknown = sorted(set(mapped) - {"item_id", "title", "description", "categories", "release_time"})
        if unknown:
            raise ValueError(f"unknown item_columns keys {unknown}; use item_id, title, description, categories, "
                             "release_time.")
        require_columns(str(item_path), list(raw.columns), mapped, "item_columns")
        items = pd.DataFrame({"item_id": raw[mapped["item_id"]]})
        title = mapped.get("title") or next((f for f in TITLE_FIELDS if f in raw.columns), None)
        items["title"] = raw[title] if title else raw[mapped["item_id"]]
        if "description" in mapped:
            items["description"] = raw[mapped["description"]]
        cat = mapped.get("categories") or next((f for f in CATEGORY_FIELDS if f in raw.columns), None)
        if cat:
            sep = seq_separator if types[cat] == "token_seq" else "\x00"
            items["categories"] = [tuple(t for t in v.split(sep) if t) for v in raw[cat]]
        rel = mapped.get("release_time") or next((f for f in RELEASE_FIELDS if f in raw.columns), None)
        if rel:
            items["release_time"] = raw[rel].map(lambda v: f"{v}-01-01" if v.isdigit() and len(v) == 4 else v)
        used = {mapped["item_id"], title, cat, rel, mapped.get("description")}
        for col in raw.columns:
            if col not in used:
                items[col] = pd.to_numeric(raw[col], errors="coerce") if types[col] == "float" else raw[col]
        catalog = Catalog(clean_items(items, file=str(item_path), row_numbers=np.arange(len(raw)) + 2,
                                      report=report, errors=errors, timezone=timezone))
    frames = [_read_events(path, columns, report, errors, catalog, timezone, timestamp_unit, timestamp_format)
              for path in inter_paths]
    events = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if catalog is None:  # no .item file: a bare catalogue of the ids seen
        ids = events["item_id"].unique()
        catalog = Catalog(pd.DataFrame({"item_id": ids, "title": ids}), items_from_events=True)
    return Dataset(name, catalog, Interactions(events, seed=seed, timezone=timezone), report, source=str(folder))


def _read_events(path: Path, columns: dict[str, str] | None, report: LoadReport, errors: ErrorPolicy,
                 catalog: Catalog | None, timezone: str, unit: str, fmt: str | None) -> pd.DataFrame:
    """One .inter file's events, fields renamed by ``columns``, floats as numbers."""
    raw, types = read_atomic(path)
    fields = ("user_id", "item_id", "timestamp", "event_type", "weight")
    unknown = sorted(set(columns or {}) - set(fields))
    if unknown:
        raise ValueError(f"unknown columns keys {unknown}; use {list(fields)}.")
    mapping = {k: (columns or {}).get(k, k) for k in fields[:3]} | {
        k: v for k, v in (columns or {}).items() if k in fields[3:]}
    require_columns(str(path), list(raw.columns), mapping, "columns")
    renamed = {v: k for k, v in mapping.items()}
    raw = raw.drop(columns=[c for c in fields if c in raw.columns and mapping.get(c, c) != c
                            and c not in mapping.values()])  # a same-named field another one replaces
    types = {renamed.get(c, c): t for c, t in types.items()}
    raw = raw.rename(columns=renamed)
    events = clean_events(raw, file=str(path), row_numbers=np.arange(len(raw)) + 2, report=report, errors=errors,
                          known_items=None if catalog is None else catalog.frame.index, timezone=timezone,
                          timestamp_unit=unit, timestamp_format=fmt)
    for col in events.columns:
        if types.get(col) == "float" and col not in ("timestamp", "weight"):
            events[col] = pd.to_numeric(events[col], errors="coerce")
    return events
