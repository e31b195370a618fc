"""Event logs read in chunks through pyarrow: explicit types, bounded memory, optional progress.

CSV / TSV files stream through pyarrow's CSV reader with every column read as text; Parquet files batch by
batch with their own types (integers, timestamps). Each chunk is checked as a whole file would be
(:func:`promptrec.data.validate.check_events`) and its ids are coded against one dictionary grown chunk by
chunk, so the finished log holds integer codes (a categorical), not a string object per row. Checks that
span the file (unknown items, repeated events) run once at the end on the codes. A CSV file pyarrow's strict
parser refuses (ragged rows, repeated header names...) is read whole by pandas instead, so what it gives,
rows or errors, is as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from promptrec.data.ids import from_codes
from promptrec.data.interactions import event_order
from promptrec.data.problems import ErrorPolicy, LoadReport, Problem, RowChecker, merge_problems, reading
from promptrec.data.validate import (CHECK_ORDER, check_events, duplicate_key, flag_duplicates, flag_unknown_items,
                                     no_events)

CHUNK_ROWS = 1_000_000
LARGE_BYTES = 64 << 20  # progress=None shows a bar from this file size on
CSV_FORMATS = ("csv", "tsv", "txt")
RECBOLE_SUFFIXES = ("inter", "item", "user")
STREAMED = CSV_FORMATS + RECBOLE_SUFFIXES + ("parquet",)


class _UsePandas(Exception):
    """pyarrow's CSV reader refused the file; pandas reads it (as before the streaming reader)."""


def show_progress(path: Path, progress: bool | None) -> bool:
    """Whether to draw a bar: as asked, or (None) for files of at least :data:`LARGE_BYTES`."""
    if progress is None:
        try:
            return path.stat().st_size >= LARGE_BYTES
        except OSError:
            return False
    return bool(progress)


def _bar(path: Path, total: int, unit: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000,
                desc=f"reading {path.name}", disable=not show, file=sys.stderr, leave=False)


def _csv_chunks(path: Path, fmt: str, chunk_rows: int, show: bool) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="," if fmt in ("csv", "txt") else "\t",
                               quote_char=False if fmt in RECBOLE_SUFFIXES else '"')
    try:
        with pa.OSFile(str(path)) as head:
            sample = head.read(1 << 20)
            if head.tell() < head.size():  # a whole number of lines for the header's look
                sample = sample[:sample.rfind(b"\n") + 1]
        names = pacsv.open_csv(pa.BufferReader(sample), parse_options=parse,
                               read_options=pacsv.ReadOptions(block_size=max(len(sample), 1))).schema.names
    except pa.ArrowException as exc:
        raise _UsePandas from exc
    if len(set(names)) < len(names) or not all(names):
        raise _UsePandas  # pandas names such columns (a.1, Unnamed: 0)
    row_bytes = max(len(sample) / max(sample.count(b"\n"), 1), 1.0)
    block = int(min(max(chunk_rows * row_bytes, 1 << 14), 1 << 30))
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    try:
        with pa.OSFile(str(path)) as stream, _bar(path, path.stat().st_size, "B", show) as bar:
            reader = pacsv.open_csv(stream, parse_options=parse, convert_options=convert,
                                    read_options=pacsv.ReadOptions(block_size=block))
            done, empty = 0, True
            for batch in reader:
                bar.update(stream.tell() - done)
                done = stream.tell()
                if batch.num_rows:
                    empty = False
                    yield batch.to_pandas()
            if empty:
                yield reader.schema.empty_table().to_pandas()
    except pa.ArrowException as exc:
        raise _UsePandas from exc


def _parquet_chunks(path: Path, chunk_rows: int, show: bool) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    with _bar(path, pf.metadata.num_rows, "rows", show) as bar:
        empty = True
        for batch in pf.iter_batches(batch_size=chunk_rows):
            bar.update(batch.num_rows)
            if batch.num_rows:
                empty = False
                yield batch.to_pandas().reset_index(drop=True)
        if empty:
            yield pf.schema_arrow.empty_table().to_pandas().reset_index(drop=True)


def raw_chunks(path: Path, fmt: str, chunk_rows: int, show: bool) -> tuple[Iterator[pd.DataFrame], int]:
    """The file's rows as raw frames of at most about ``chunk_rows`` rows, and the number a person gives
    the first row (2 in text files: line 1 is the header)."""
    if fmt == "parquet":
        return _parquet_chunks(path, chunk_rows, show), 1
    return _csv_chunks(path, fmt, chunk_rows, show), 2


class IdCodes:
    """One dictionary of strings grown chunk by chunk: equal strings get equal codes in every chunk."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._index = pd.Index([], dtype=object)

    def encode(self, values: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(values)  # -1: missing
        uniques = np.asarray(uniques, dtype=object)
        pos = self._index.get_indexer(uniques)
        new = pos < 0
        if new.any():
            pos[new] = len(self._index) + np.arange(int(new.sum()))
            self._parts.append(uniques[new])
            self._index = pd.Index(np.concatenate(self._parts), dtype=object)
        pos = np.append(pos, -1)  # local code -1 picks the last slot: missing stays missing
        return pos[local].astype(np.int32)

    @property
    def categories(self) -> np.ndarray:
        return self._index.to_numpy(dtype=object)


def _hash(keys: list[np.ndarray]) -> np.ndarray:
    h = np.zeros(len(keys[0]), np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h ^= np.asarray(k).astype(np.int64).view(np.uint64)
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(31)
    return h


def first_repeats(keys: list[np.ndarray]) -> np.ndarray:
    """True for each row whose key values all equal an earlier row's. A 64-bit hash, sorted in place, finds
    the few candidate rows; pandas compares their values exactly."""
    n = len(keys[0])
    out = np.zeros(n, bool)
    if n < 2:
        return out
    h = _hash(keys)
    h.sort()
    twice = np.unique(h[1:][h[1:] == h[:-1]])
    del h
    if not len(twice):
        return out
    candidates = np.flatnonzero(np.isin(_hash(keys), twice))
    sub = pd.DataFrame({i: np.asarray(k)[candidates] for i, k in enumerate(keys)})
    out[candidates] = sub.duplicated(keep="first").to_numpy()
    return out


class EventChunks:
    """Checked chunks of one event file, kept as codes and numbers until :meth:`finish` builds the frame."""

    def __init__(self, file: str, first_row: int, errors: ErrorPolicy, *, timestamp_unit: str = "s",
                 timestamp_format: str | None = None, timezone: str = "UTC"):
        if errors not in ("raise", "drop"):
            raise ValueError(f"errors must be 'raise' or 'drop', not {errors!r}")
        self.file, self.first_row, self.errors = file, first_row, errors
        self.parse = dict(timestamp_unit=timestamp_unit, timestamp_format=timestamp_format, timezone=timezone)
        self.ids = {c: IdCodes() for c in ("user_id", "item_id", "event_type")}
        self.cols: dict[str, list] = {}
        self.bad: list[np.ndarray] = []
        self.problems: list[Problem] = []
        self.rows = 0
        self.columns: list[str] = []

    def add(self, raw: pd.DataFrame) -> None:
        """Check one raw chunk (promptrec column names; rows following the previous chunk's)."""
        if not self.columns:
            self.columns = list(raw.columns)
        start = self.first_row + self.rows
        check = RowChecker(self.file, range(start, start + len(raw)), self.errors)
        frame = check_events(raw.reset_index(drop=True), check, **self.parse)
        for col in frame.columns:
            if col in self.ids:
                value = self.ids[col].encode(frame[col])
            elif col == "timestamp":
                value = frame[col].to_numpy(dtype="datetime64[ns]").view(np.int64)
            elif col == "weight":
                value = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                value = frame[col]
            self.cols.setdefault(col, []).append(value)
        self.bad.append(check.bad)
        self.problems.extend(check.problems)
        self.rows += len(frame)

    def finish(self, report: LoadReport, known_items: pd.Index | None = None, seed: int | None = None) -> pd.DataFrame:
        """The clean events (ids as sorted categoricals); raises or drops and reports as ``errors`` says. With
        ``seed``, rows come in :func:`~promptrec.data.interactions.event_order` (sorted here, one column at a
        time, so the log is never held twice)."""
        n = self.rows
        check = RowChecker(self.file, range(self.first_row, self.first_row + n), self.errors)
        check.bad = np.concatenate(self.bad) if self.bad else np.zeros(0, bool)
        check.problems = merge_problems(self.problems, CHECK_ORDER)
        joined = {}
        for col in list(self.cols):  # one column at a time: the chunks of the others are not copied meanwhile
            parts = self.cols.pop(col)
            joined[col] = np.concatenate(parts) if isinstance(parts[0], np.ndarray) else _concat(parts)
            del parts
        if known_items is not None:
            known = np.append(pd.Index(self.ids["item_id"].categories).isin(known_items), False)
            flag_unknown_items(check, ~known[joined["item_id"]])
        key = duplicate_key(self.columns)
        flag_duplicates(check, first_repeats([joined[c] for c in key]), key)
        kept = check.settle(report)
        if not kept:
            raise no_events(self.file)
        keep = ~check.bad if check.bad.any() else None
        for col in self.columns:
            values = joined[col]
            if keep is not None:
                values = values[keep] if isinstance(values, np.ndarray) else values[keep].reset_index(drop=True)
            joined[col] = from_codes(values, self.ids[col].categories) if col in self.ids else values
        order = None if seed is None else event_order(joined["user_id"].codes, joined["timestamp"], seed)
        out = {}
        for col in self.columns:
            values = joined.pop(col)
            if order is not None:
                values = values.take(order)
                if isinstance(values, pd.Series):
                    values = values.reset_index(drop=True)
            out[col] = pd.to_datetime(values, unit="ns", utc=True) if col == "timestamp" else values
        return pd.DataFrame(out, copy=False)


def pa_release() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _concat(parts: list[pd.Series]) -> pd.Series:
    """A context column's chunks as one column; categoricals (Parquet dictionaries) stay categorical."""
    if len(parts) > 1 and all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
        return pd.Series(union_categoricals(parts, ignore_order=True), name=parts[0].name)
    return pd.concat(parts, ignore_index=True)


def read_event_chunks(path: Path, fmt: str, prepare: Callable[[pd.DataFrame], pd.DataFrame], *,
                      errors: ErrorPolicy, chunk_rows: int = CHUNK_ROWS, progress: bool | None = False,
                      pandas_reader: Callable[[], tuple[pd.DataFrame, np.ndarray]],
                      restart: Callable[[], None] | None = None, **parse) -> EventChunks:
    """The checked chunks of a CSV / TSV / Parquet event file (call :meth:`EventChunks.finish` for the frame).
    ``prepare`` turns a raw chunk into events with promptrec's column names (and checks the columns);
    ``pandas_reader`` reads the whole file (as text, with row numbers) when pyarrow's CSV parser will not,
    after ``restart`` has reset whatever ``prepare`` collected."""
    if fmt not in STREAMED:
        raw, rows = pandas_reader()
        return _one_chunk(path, raw, rows, prepare, errors, parse)
    events = EventChunks(str(path), 1 if fmt == "parquet" else 2, errors, **parse)
    try:
        chunks = raw_chunks(path, fmt, max(int(chunk_rows), 1), show_progress(path, progress))[0]
        while True:
            with reading(str(path), fmt):  # a parser's failure names the file; prepare's own errors stay as they are
                raw = next(chunks, None)
            if raw is None:
                pa_release()  # the reader's buffers: the checks that span the file need the room
                return events
            events.add(prepare(raw))
    except _UsePandas:
        if restart is not None:
            restart()
        raw, rows = pandas_reader()
        return _one_chunk(path, raw, rows, prepare, errors, parse)


def _one_chunk(path: Path, raw: pd.DataFrame, rows: np.ndarray, prepare: Callable[[pd.DataFrame], pd.DataFrame],
               errors: ErrorPolicy, parse: dict) -> EventChunks:
    events = EventChunks(str(path), int(rows[0]) if len(rows) else 1, errors, **parse)
    events.add(prepare(raw))
    return events
