"""Generic CSV / TSV / Parquet / JSONL loaders with a column mapping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.interactions import Interactions
from promptrec.data.loaders.event_chunks import CHUNK_ROWS, EventChunks, read_event_chunks
from promptrec.data.problems import (DataError, ErrorPolicy, LoadReport, Problem, missing_file, reading,
                                     require_columns)
from promptrec.data.validate import clean_items

EVENT_FIELDS = ("user_id", "item_id", "timestamp")
ITEM_FIELDS = ("item_id", "title")
OPTIONAL_EVENT_FIELDS = ("event_type", "weight")
OPTIONAL_ITEM_FIELDS = ("description", "categories", "release_time")


RECBOLE_SUFFIXES = ("inter", "item", "user")  # RecBole atomic files: tab-separated, typed header
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def strip_typed_header(frame: pd.DataFrame) -> pd.DataFrame:
    """A RecBole typed header (``item_id:token  title:token_seq``) read as plain names; each field's type is kept
    in ``frame.attrs["field_types"]``. Other headers are left as they are."""
    parts = [str(c).rpartition(":") for c in frame.columns]
    if not len(parts) or not all(sep and t in RECBOLE_TYPES and name for name, sep, t in parts):
        return frame
    out = frame.rename(columns={c: name for c, (name, _, _) in zip(frame.columns, parts)})
    out.attrs["field_types"] = {name: t for name, _, t in parts}
    return out


def read_table(path: str | Path, fmt: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table as strings; returns the frame and the row number of each row as shown in the file.
    RecBole typed headers (``name:type``) are read as plain names in every text format, and ``.inter`` /
    ``.item`` / ``.user`` files as RecBole atomic files (tab-separated)."""
    path = Path(path)
    if not path.exists():
        raise missing_file(str(path), "file", "check the path.")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    with reading(str(path), fmt):
        if fmt in ("csv", "tsv", "txt") + RECBOLE_SUFFIXES:
            sep = "," if fmt in ("csv", "txt") else "\t"
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[],
                                quoting=3 if fmt in RECBOLE_SUFFIXES else 0)
            return strip_typed_header(frame), np.arange(len(frame)) + 2  # line 1 is the header
        if fmt in ("jsonl", "ndjson", "json"):
            frame = pd.read_json(path, lines=fmt != "json", dtype=False)
            return frame, np.arange(len(frame)) + 1
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            return frame, np.arange(len(frame)) + 1
    raise DataError(Problem(str(path), None, "unknown_format", f"unknown table format '{fmt}'.",
                            "use .csv, .tsv, .parquet, .jsonl or a RecBole .inter/.item file, or pass fmt= "
                            "('csv', 'tsv', 'parquet', 'jsonl', 'item', 'inter')."))


def _rename(frame: pd.DataFrame, file: str, required: tuple[str, ...], optional: tuple[str, ...],
            columns: dict[str, str] | None, param: str = "columns") -> pd.DataFrame:
    columns = columns or {}
    unknown = sorted(set(columns) - set(required + optional))
    if unknown:
        raise ValueError(f"unknown column mapping keys {unknown} in {param}=; use {list(required + optional)}.")
    mapping = {name: columns.get(name, name) for name in required + optional}
    needed = {k: mapping[k] for k in required} | {k: v for k, v in columns.items() if k in optional}
    require_columns(file, list(frame.columns), needed, param)
    rename = {v: k for k, v in mapping.items() if v in frame.columns}
    return frame.rename(columns=rename)


def load_items(path: str | Path, *, columns: dict[str, str] | None = None, fmt: str | None = None,
               errors: ErrorPolicy = "raise", report: LoadReport | None = None,
               category_separator: str | None = None, timezone: str = "UTC", _param: str = "columns") -> Catalog:
    """Items from a table with at least item_id and title (other columns become attributes). Categories are
    split on ``category_separator`` (default "|", or a space for a RecBole ``token_seq`` field)."""
    report = report if report is not None else LoadReport()
    raw, rows = read_table(path, fmt)
    types = raw.attrs.get("field_types", {})
    source = (columns or {}).get("categories", "categories")
    raw = _rename(raw, str(path), ITEM_FIELDS, OPTIONAL_ITEM_FIELDS, columns, _param)
    if "categories" in raw.columns:
        sep = category_separator or (" " if types.get(source) == "token_seq" else "|")
        raw["categories"] = [_split(v, sep) for v in raw["categories"]]
    clean = clean_items(raw.astype({"item_id": str}), file=str(path), row_numbers=rows, report=report,
                        errors=errors, timezone=timezone)
    return Catalog(clean)


def _event_chunks(path: str | Path, fmt: str | None, prepare: Callable[[pd.DataFrame], pd.DataFrame], *,
                  errors: ErrorPolicy, chunk_rows: int, progress: bool | None,
                  restart: Callable[[], None] | None = None, **parse: Any) -> EventChunks:
    path = Path(path)
    if not path.exists():
        raise missing_file(str(path), "file", "check the path.")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    return read_event_chunks(path, fmt, lambda raw: prepare(strip_typed_header(raw)), errors=errors,
                             chunk_rows=chunk_rows, progress=progress,
                             pandas_reader=lambda: read_table(path, fmt), restart=restart, **parse)


def load_events(path: str | Path, *, columns: dict[str, str] | None = None, fmt: str | None = None,
                catalog: Catalog | None = None, errors: ErrorPolicy = "raise", report: LoadReport | None = None,
                timestamp_unit: str = "s", timestamp_format: str | None = None, timezone: str = "UTC",
                seed: int = 0, chunk_rows: int = CHUNK_ROWS, progress: bool | None = False,
                _param: str = "columns") -> Interactions:
    """Events from a table with at least user_id, item_id and timestamp (other columns become context).

    CSV / TSV / Parquet files are read through pyarrow ``chunk_rows`` rows at a time (about that many for
    text files), so memory follows the clean log, not the file's text; ``progress`` draws a bar on stderr
    (None: only for files of 64 MB or more)."""
    report = report if report is not None else LoadReport()
    chunks = _event_chunks(path, fmt, lambda raw: _rename(raw, str(path), EVENT_FIELDS, OPTIONAL_EVENT_FIELDS,
                                                          columns, _param),
                           errors=errors, chunk_rows=chunk_rows, progress=progress, timestamp_unit=timestamp_unit,
                           timestamp_format=timestamp_format, timezone=timezone)
    return Interactions(chunks.finish(report, None if catalog is None else catalog.frame.index, seed=seed),
                        seed=seed, timezone=timezone, _in_event_order=True)


def load_tabular(events: str | Path, items: str | Path, *, event_columns: dict[str, str] | None = None,
                 item_columns: dict[str, str] | None = None, name: str | None = None, **options: Any) -> Dataset:
    """A dataset from an event table and an item table of any supported format."""
    report = LoadReport()
    errors = options.pop("errors", "raise")
    seed = options.pop("seed", 0)
    timezone = options.pop("timezone", "UTC")
    catalog = load_items(items, columns=item_columns, errors=errors, report=report, timezone=timezone,
                         _param="item_columns")
    inter = load_events(events, columns=event_columns, catalog=catalog, errors=errors, report=report,
                        seed=seed, timezone=timezone, _param="event_columns", **options)
    return Dataset(name or Path(events).stem, catalog, inter, report, source=str(events))


def _split(value: Any, sep: str) -> tuple[str, ...]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(v) for v in value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ()
    return tuple(v.strip() for v in str(value).split(sep) if v.strip())


def load_events_with_items(path: str | Path, *, columns: dict[str, str] | None = None,
                           item_columns: dict[str, str] | None = None, item_attributes: tuple[str, ...] = (),
                           context_columns: tuple[str, ...] | None = None, fmt: str | None = None,
                           errors: ErrorPolicy = "raise", timezone: str = "UTC", seed: int = 0,
                           timestamp_unit: str = "s", timestamp_format: str | None = None,
                           name: str | None = None, category_separator: str = "|", chunk_rows: int = CHUNK_ROWS,
                           progress: bool | None = False) -> Dataset:
    """A dataset from one table that holds the events and what describes their items (a check-in file: the
    place's category and coordinates on every row).

    ``columns`` maps user_id / item_id / timestamp (and event_type, weight) to the file's columns;
    ``item_columns`` maps title / description / categories / release_time (title defaults to the item id);
    ``item_attributes`` are further item columns (numbers where they parse: coordinates). Each item is
    described by its first row. The catalogue is marked as built from events: an item exists from its
    first event on (nobody can be recommended a place before anyone has been there). ``context_columns``
    are the remaining columns kept as event context (default: all of them).
    """
    report = LoadReport()
    file = str(path)
    event_map = {k: (columns or {}).get(k, k) for k in EVENT_FIELDS} | {
        k: v for k, v in (columns or {}).items() if k in OPTIONAL_EVENT_FIELDS}
    item_map = {"item_id": event_map["item_id"], "title": event_map["item_id"], **(item_columns or {})}
    unknown = sorted(set(item_map) - set(ITEM_FIELDS + OPTIONAL_ITEM_FIELDS))
    if unknown:
        raise ValueError(f"unknown item column mapping keys {unknown}; use {list(ITEM_FIELDS + OPTIONAL_ITEM_FIELDS)}.")
    described = (set(item_map.values()) | set(item_attributes)) - set(event_map.values())
    item_rows = _FirstRows(event_map["item_id"], list(dict.fromkeys([*item_map.values(), *item_attributes])))

    def prepare(raw: pd.DataFrame) -> pd.DataFrame:
        require_columns(file, list(raw.columns), event_map, "columns")
        require_columns(file, list(raw.columns), {k: v for k, v in item_map.items() if k != "item_id"}, "item_columns")
        require_columns(file, list(raw.columns), {a: a for a in item_attributes}, None)
        item_rows.add(raw)
        keep_context = [c for c in raw.columns if c not in described and c not in event_map.values()
                        and (context_columns is None or c in context_columns)]
        return raw[list(event_map.values()) + keep_context].rename(columns={v: k for k, v in event_map.items()})

    chunks = _event_chunks(path, fmt, prepare, errors=errors, chunk_rows=chunk_rows, progress=progress,
                           restart=item_rows.reset,
                           timestamp_unit=timestamp_unit, timestamp_format=timestamp_format, timezone=timezone)
    first, rows = item_rows.frame(), item_rows.row_numbers(chunks.first_row)
    items = pd.DataFrame({k: first[v].to_numpy() for k, v in item_map.items()})
    for a in item_attributes:
        values = first[a]
        numbers = pd.to_numeric(values, errors="coerce")
        items[a] = (numbers if numbers.notna().sum() >= values.astype(str).str.strip().ne("").sum() else values).to_numpy()
    if "categories" in items.columns:
        items["categories"] = [_split(v, category_separator) for v in items["categories"]]
    catalog = Catalog(clean_items(items.astype({"item_id": str}), file=file, row_numbers=rows, report=report,
                                  errors=errors, timezone=timezone), items_from_events=True)
    inter = Interactions(chunks.finish(report, catalog.frame.index, seed=seed), seed=seed, timezone=timezone,
                         _in_event_order=True)
    return Dataset(name or Path(path).stem, catalog, inter, report, source=file)


class _FirstRows:
    """The first row of each item (its item columns), collected chunk by chunk."""

    def __init__(self, key: str, columns: list[str]):
        self.key, self.columns = key, columns
        self.reset()

    def reset(self) -> None:
        self.seen = pd.Index([], dtype=object)
        self.parts: list[pd.DataFrame] = []
        self.positions: list[np.ndarray] = []
        self.rows = 0

    def add(self, raw: pd.DataFrame) -> None:
        ids = raw[self.key].astype(str).str.strip()
        first = ~ids.duplicated().to_numpy()
        first[first] = ~ids[first].isin(self.seen).to_numpy()
        if first.any():
            self.seen = self.seen.append(pd.Index(ids[first].to_numpy(dtype=object)))
            self.parts.append(raw.loc[first, self.columns].reset_index(drop=True))
            self.positions.append(self.rows + np.flatnonzero(first))
        self.rows += len(raw)

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=self.columns)

    def row_numbers(self, first_row: int) -> np.ndarray:
        return first_row + (np.concatenate(self.positions) if self.positions else np.zeros(0, np.int64))
