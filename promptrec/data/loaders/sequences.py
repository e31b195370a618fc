"""Plain sequence files: one line per user, the user id and the items in order (oldest first), no times.

    u1<TAB>i3 i7 i2          # tab-separated
    u1,i3 i7 i2              # or comma-separated (items separated by spaces or commas)

A header line (``user_id<TAB>item_ids``) is recognised by its first field (user, user_id, userid, uid).
The events get ordinal pseudo-times and the log is marked ``times_known=False`` (:mod:`promptrec.data.order`).
:func:`merge_sequence` also joins the overlapping rows RecBole sequence files give one user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.interactions import Interactions
from promptrec.data.loaders.tabular import load_items
from promptrec.data.order import sequence_events
from promptrec.data.problems import DataError, ErrorPolicy, LoadReport, Problem, missing_file

HEADER_USER_FIELDS = ("user", "user_id", "userid", "uid", "user_id:token")
SEQUENCE_SUFFIXES = (".txt", ".tsv", ".csv")
ITEM_SPLIT = re.compile(r"[,\s]+")


@dataclass
class Sequences:
    """Each user's items in order, and the line each user came from (for error messages)."""

    file: str
    items: dict[str, list[str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _fields(line: str) -> list[str]:
    """The user id and the item list of a line: split at its first tab, else its first comma."""
    sep = "\t" if "\t" in line else ","
    user, _, rest = line.partition(sep)
    return [user.strip(), rest.strip()] if _ else [line.strip()]


def read_sequences(path: str | Path, what: str = "items oldest first") -> Sequences:
    """Read a sequence file; every line must be ``user<TAB or comma>item item ...`` and every user appear once
    (``what``: what the items are, for error messages)."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(str(path), "file of one line per user", f"give a file with one line per user: user id, "
                           f"then {what}.")
    out = Sequences(str(path))
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = _fields(line.rstrip("\n"))
            if number == 1 and parts[0].lower() in HEADER_USER_FIELDS:
                continue
            items = [i for i in ITEM_SPLIT.split(parts[1]) if i] if len(parts) == 2 else []
            if not parts[0] or not items:
                raise DataError(Problem(
                    str(path), None, "bad_sequence_line", f"line {number} ({line.strip()[:60]!r}) is not a user id "
                    "followed by items.", "write each line as user<TAB>item item ... (or user,item item ...), "
                    f"{what}; remove users without items.", (number,), 1))
            if parts[0] in out.items:
                raise DataError(Problem(
                    str(path), None, "repeated_user", f"user {parts[0]!r} is on line {out.lines[parts[0]]} and "
                    f"again on line {number}.", "give each user one line with the whole ordered list.", (number,), 1))
            out.items[parts[0]] = items
            out.lines[parts[0]] = number
    if not out.items:
        raise DataError(Problem(str(path), None, "empty", "the file has no lines of a user and items.",
                                f"write one line per user: user id, then {what}."))
    return out


def is_sequence_file(path: Path) -> bool:
    """Whether ``path`` looks like a sequence file: each of its first lines has two fields (user, items) and in at
    least one the items field holds several items (a tabular event file has more fields, one item each)."""
    if not path.is_file() or path.suffix.lower() not in SEQUENCE_SUFFIXES:
        return False
    with path.open(encoding="utf-8", errors="replace") as fh:
        lines = [ln.rstrip("\n") for ln, _ in zip(fh, range(20)) if ln.strip()]
    if lines and _fields(lines[0])[0].lower() in HEADER_USER_FIELDS:
        lines = lines[1:]
    fields = [_fields(ln) for ln in lines]
    if not fields or any(len(f) != 2 or "\t" in f[1] for f in fields):
        return False
    if all("\t" in ln for ln in lines):  # user<TAB>items: items separated by spaces or commas
        return any(ITEM_SPLIT.search(f[1]) for f in fields)
    if any("," in f[1] for f in fields):
        return False  # a comma file with more than two columns
    return any(" " in f[1] for f in fields)


def merge_sequence(current: list[str], rows: list[str]) -> list[str] | None:
    """``current`` extended by the row ``rows`` (an overlapping window of the same user's sequence): unchanged
    when the row lies inside it, else continued where the row's start overlaps its end; None when they do not
    overlap at all."""
    if rows[: len(current)] == current:
        return list(rows)
    n = len(rows)
    if any(current[i:i + n] == rows for i in range(len(current) - n + 1)):
        return current
    for k in range(min(len(current), n) - 1, 0, -1):
        if current[-k:] == rows[:k]:
            return current + rows[k:]
    return None


def sequence_dataset(name: str, sequences: dict[str, list[str]], catalog: Catalog | None, report: LoadReport,
                     source: str, *, seed: int = 0, timezone: str = "UTC") -> Dataset:
    """A dataset of ordered histories without times (``times_known=False``); a bare catalogue of the ids seen
    when ``catalog`` is None."""
    events = sequence_events(sequences)
    if catalog is None:
        ids = events["item_id"].unique()
        catalog = Catalog(pd.DataFrame({"item_id": ids, "title": ids}), items_from_events=True)
    else:
        unknown = sorted(set(events["item_id"]) - set(catalog.frame.index))
        if unknown:
            raise DataError(Problem(source, "item_id", "unknown_item", f"{len(unknown)} items of the sequences are "
                                    f"not in the item file (e.g. {unknown[:3]}).",
                                    "add them to the item file, or load without it."))
    report.rows_kept += len(events)
    inter = Interactions(events, seed=seed, timezone=timezone, times_known=False)
    return Dataset(name, catalog, inter, report, source=source)


def load_sequences(path: str | Path, *, items: str | Path | None = None, item_columns: dict[str, str] | None = None,
                   errors: ErrorPolicy = "raise", seed: int = 0, timezone: str = "UTC") -> Dataset:
    """Load a plain sequence file (one line per user, items oldest first) and optionally an item table
    (``items``: a CSV/TSV/Parquet/JSONL with item_id and title, read by :func:`load_items`; ``errors`` applies to
    its rows: a malformed sequence line is always an error, as dropping it would drop a whole user)."""
    seqs = read_sequences(path)
    report = LoadReport(files=[seqs.file], rows_read=sum(len(v) for v in seqs.items.values()))
    catalog = None if items is None else load_items(items, columns=item_columns, report=report, errors=errors,
                                                    timezone=timezone, _param="item_columns")
    return sequence_dataset(Path(path).stem, seqs.items, catalog, report, str(path), seed=seed, timezone=timezone)
