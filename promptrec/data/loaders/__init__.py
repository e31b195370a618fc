"""Loaders for every supported format, behind one front door: :func:`load_dataset`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from promptrec.data.context_columns import declare_context
from promptrec.data.dataset import Dataset
from promptrec.data.domain import Domain
from promptrec.data.loaders.checkins import is_checkin_file, load_checkins
from promptrec.data.loaders.movielens import load_movielens_1m, load_movielens_100k
from promptrec.data.loaders.recbole import load_recbole
from promptrec.data.loaders.sequences import is_sequence_file, load_sequences
from promptrec.data.loaders.tabular import load_events, load_events_with_items, load_items, load_tabular
from promptrec.data.problems import missing_file

FORMATS = ("auto", "demo", "movielens-100k", "movielens-1m", "recbole", "tabular", "checkins", "sequences")


def detect_format(path: Path) -> str:
    if is_checkin_file(path) or (path.is_dir() and is_checkin_file(path / "checkins.csv")):
        return "checkins"
    if is_sequence_file(path):  # one line per user: user id, then the items in order
        return "sequences"
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".parquet", ".jsonl"):
        return "tabular"
    if path.is_dir():
        if (path / "u.data").exists():
            return "movielens-100k"
        if (path / "ratings.dat").exists():
            return "movielens-1m"
        if any(path.glob("*.inter")):
            return "recbole"
        if (path / "events.csv").exists() or any(path.glob("events.*")):
            return "tabular"
    raise missing_file(str(path), "a dataset folder of a known format",
                       "pass format= (--format on the command line: movielens-100k, movielens-1m, recbole, "
                       "tabular, checkins, sequences) or a folder "
                       "with u.data, ratings.dat, a .inter file, events.* + items.*, or a check-in CSV.")


def load_dataset(path: str | Path | None = None, format: str = "auto", *, since: Any = None, until: Any = None,
                 domain: Domain | str | dict | None = None, context: Sequence[str] = (), **options: Any) -> Dataset:
    """Load a dataset by folder and format; ``format='demo'`` (or no path) gives the embedded demo data.
    ``since`` / ``until`` keep the events in [since, until) (a window of a longer log, as if it began or ended
    there; the catalogue is unchanged: what is recommendable at ``now`` still follows the events before it).
    ``domain``: the words prompts use (a preset such as ``"products"`` or ``{did, will, history}``); default:
    the format's own (MovieLens: movies, check-ins: places), else generic ("interacted with").
    ``context``: extra event columns to use as context (weather, channel...; promptrec.data.context_columns).
    ``progress=True`` draws a bar while a CSV / Parquet event file is read (None: for large files only)."""
    chosen = None if domain is None else Domain.of(domain)  # checked before the (maybe long) load
    ds = _load_format(path, format, **options)
    if chosen is not None:
        ds.catalog.domain = chosen
    if context:
        declare_context(ds.interactions, [context] if isinstance(context, str) else context)
    if since is None and until is None:
        return ds
    ds.interactions.require_times("since / until (a window of time)",
                                  "Leave since / until out (every event is kept), or load data with timestamps.")
    window = ds.interactions.between(since, until)
    if not len(window):
        span = ds.interactions.time_range()
        raise ValueError(f"no events in [{since}, {until}): the data runs from {span[0]} to {span[1]}.")
    return dataclasses.replace(ds, interactions=window)


def _load_format(path: str | Path | None, format: str, **options: Any) -> Dataset:
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}.")
    progress = options.pop("progress", False)  # a bar while reading; only the tabular loaders stream
    if path is None or format == "demo":
        from promptrec.data.demo import generate_demo

        return generate_demo(**options).dataset
    path = Path(path)
    if not path.exists():
        raise missing_file(str(path), "dataset path", "check the path (MovieLens 100K lives in ../shared/data/ml-100k).")
    fmt = detect_format(path) if format == "auto" else format
    if fmt in ("tabular", "checkins"):
        options["progress"] = progress
    if fmt == "movielens-100k":
        return load_movielens_100k(path, **options)
    if fmt == "movielens-1m":
        return load_movielens_1m(path, **options)
    if fmt == "recbole":
        return load_recbole(path, **options)
    if fmt == "checkins":
        return load_checkins(path, **options)
    if fmt == "sequences":
        return load_sequences(path, **options)
    if path.is_file():  # one table with events and the items described on each row
        return load_events_with_items(path, **options)
    folder = path if path.is_dir() else path.parent
    events = next(iter(sorted(folder.glob("events.*"))), None)
    items = next(iter(sorted(folder.glob("items.*"))), None)
    if events is None or items is None:
        raise missing_file(str(folder), "events.* and items.* tables",
                           "put events.csv/.parquet/.jsonl and items.* in the folder, or call load_tabular().")
    return load_tabular(events, items, name=folder.name, **options)


__all__ = ["FORMATS", "load_dataset", "load_events", "load_events_with_items", "load_checkins", "load_items", "load_movielens_100k",
           "load_movielens_1m", "load_recbole", "load_sequences", "load_tabular", "detect_format"]
