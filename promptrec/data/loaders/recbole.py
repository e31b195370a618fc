"""RecBole atomic files (``<name>.inter`` and ``<name>.item``), as used by the Amazon benchmarks.

Headers are typed, e.g. ``user_id:token  item_id:token  rating:float  timestamp:float``;
``token_seq`` fields hold several tokens separated by ``seq_separator`` (a space by default).
Sequence files (``user_id:token  item_id_list:token_seq  item_id:token``: the history, oldest first, and the
next item) have no times: each user's rows are joined into one ordered history with ordinal pseudo-times and
the log is marked ``times_known=False`` (:mod:`promptrec.data.order`).
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
from promptrec.data.loaders.sequences import merge_sequence, sequence_dataset
from promptrec.data.validate import clean_events, clean_items

TITLE_FIELDS = ("title", "movie_title", "item_name", "name")
CATEGORY_FIELDS = ("categories", "genre", "genres", "class", "category")
RELEASE_FIELDS = ("release_year", "release_date", "year")
KNOWN_TYPES = {"token", "token_seq", "float", "float_seq"}
LIST_SUFFIX = "_list"  # RecBole sequence files: item_id_list:token_seq holds the history before item_id


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
    atomic = [read_atomic(path) for path in inter_paths]
    list_field = f"{(columns or {}).get('item_id', 'item_id')}{LIST_SUFFIX}"
    if any(list_field in raw.columns for raw, _ in atomic):  # sequence files: histories without times
        seqs = read_sequence_rows(inter_paths, atomic, columns, seq_separator)
        report.files += [str(p) for p in inter_paths]
        report.rows_read += sum(len(raw) for raw, _ in atomic)
        return sequence_dataset(name, seqs, catalog, report, str(folder), seed=seed, timezone=timezone)
    frames = [_read_events(path, read, columns, report, errors, catalog, timezone, timestamp_unit, timestamp_format)
              for path, read in zip(inter_paths, atomic)]
    events = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if catalog is None:  # no .item file: a bare catalogue of the ids seen
        ids = events["item_id"].unique()
        catalog = Catalog(pd.DataFrame({"item_id": ids, "title": ids}), items_from_events=True)
    return Dataset(name, catalog, Interactions(events, seed=seed, timezone=timezone), report, source=str(folder))


def _read_events(path: Path, read: tuple[pd.DataFrame, dict[str, str]], columns: dict[str, str] | None,
                 report: LoadReport, errors: ErrorPolicy, catalog: Catalog | None, timezone: str, unit: str,
                 fmt: str | None) -> pd.DataFrame:
    """One .inter file's events (read by :func:`read_atomic`), fields renamed by ``columns``, floats as numbers."""
    raw, types = read
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


def read_sequence_rows(paths: list[Path], atomic: list[tuple[pd.DataFrame, dict[str, str]]],
                       columns: dict[str, str] | None, separator: str) -> dict[str, list[str]]:
    """Each user's ordered items from sequence rows (history + next item), joined over rows and files in order
    (train, valid, test): a row repeats or continues what the earlier ones gave (RecBole writes one row per
    user per role, or one per prefix)."""
    user_f, item_f = (columns or {}).get("user_id", "user_id"), (columns or {}).get("item_id", "item_id")
    list_f = item_f + LIST_SUFFIX
    out: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for path, (raw, _) in zip(paths, atomic):
        missing = [f for f in (user_f, list_f, item_f) if f not in raw.columns]
        if missing:
            raise DataError(Problem(str(path), None, "not_sequence_file", f"lacks the field(s) {missing} of a "
                                    f"sequence file (it has {list(raw.columns)}).", f"give every .inter file of the "
                                    f"dataset the fields {user_f}:token, {list_f}:token_seq and {item_f}:token, or "
                                    "none of them the list field (an atomic file with timestamps)."))
        for row, (user, history, nxt) in enumerate(zip(raw[user_f], raw[list_f], raw[item_f]), start=2):
            seq = [t for t in history.split(separator) if t] + [nxt.strip()]
            if not user.strip() or not seq[-1]:
                raise DataError(Problem(str(path), None, "bad_sequence_row", "the row has no user id or no next "
                                        "item.", f"fill {user_f} and {item_f} on every row.", (row,), 1))
            user = user.strip()
            merged = seq if user not in out else merge_sequence(out[user], seq)
            if merged is None:
                raise DataError(Problem(str(path), list_f, "sequence_mismatch", f"user {user!r}'s row neither "
                                        f"repeats nor continues its earlier row ({where[user]}).", "each row of "
                                        "a user must be a window of one ordered history (RecBole's train / valid "
                                        "/ test rows are); check that the files belong together.", (row,), 1))
            out[user], where[user] = merged, f"{path.name} row {row}"
    return out
