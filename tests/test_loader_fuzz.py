"""Hypothesis feeds every loader damaged and random files: each failure is a DataError naming the file (and,
for bad rows, the row and column), never another exception; ``errors="drop"`` keeps every valid row."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from promptrec.data.loaders import load_dataset
from promptrec.data.problems import DataError

EXAMPLES = int(os.environ.get("PROMPTREC_FUZZ_EXAMPLES", 60))  # raise it for a longer hunt (random seeds then)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 60, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROW_KINDS = {"missing_value", "bad_timestamp", "bad_value", "unknown_item", "duplicate_row", "duplicate_item"}
T0 = 1_700_000_000

# -- valid data, written in each format ---------------------------------------------------------

text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12)
ids = st.text("abcdefghij0123456789", min_size=1, max_size=6)


@st.composite
def valid_data(draw):
    """Items (id, title, category, lat, lon) and unique events (user, item, epoch seconds)."""
    item_ids = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    items = [{"item_id": i, "title": draw(text) or "t", "category": draw(st.sampled_from(["Bar", "Gym", "Cafe"])),
              "lat": draw(st.floats(-80, 80)), "lon": draw(st.floats(-170, 170))} for i in item_ids]
    keys = draw(st.lists(st.tuples(ids, st.sampled_from(item_ids), st.integers(0, 10**6)), min_size=1, max_size=15,
                         unique_by=lambda k: (k[0], k[1], k[2])))
    events = [{"user_id": u, "item_id": i, "timestamp": T0 + t} for u, i, t in keys]
    return items, events


def iso(ts: int) -> str:
    return pd.Timestamp(ts, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S+00:00")


def write_tabular(folder: Path, items, events, ext: str) -> Path:
    ev = pd.DataFrame(events).astype({"timestamp": str}) if events else pd.DataFrame(columns=["user_id", "item_id", "timestamp"])
    it = pd.DataFrame(items)[["item_id", "title", "category"]].rename(columns={"category": "categories"})
    for frame, name in ((ev, "events"), (it, "items")):
        path = folder / f"{name}.{ext}"
        if ext == "csv":
            frame.to_csv(path, index=False)
        elif ext == "tsv":
            frame.to_csv(path, index=False, sep="\t")
        elif ext == "jsonl":
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")))
        else:
            frame.astype(str).to_parquet(path)
    return folder


def write_movielens(folder: Path, items, events) -> Path:
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_text("".join(f"{i['item_id']}|{i['title'].replace('|', '/')}|01-Jan-1995||http://x|{flags}\n"
                                           for i in items), encoding="latin-1", errors="replace")
    (folder / "u.data").write_text("".join(f"{e['user_id']}\t{e['item_id']}\t4\t{e['timestamp']}\n" for e in events))
    return folder


def write_recbole(folder: Path, items, events) -> Path:
    (folder / "x.item").write_text("item_id:token\ttitle:token\tgenre:token_seq\n" + "".join(
        f"{i['item_id']}\t{i['title'].replace(chr(9), ' ').replace(chr(10), ' ')}\t{i['category']}\n" for i in items))
    (folder / "x.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{e['user_id']}\t{e['item_id']}\t4\t{e['timestamp']}\n" for e in events))
    return folder


def write_checkins(folder: Path, items, events) -> Path:
    by_id = {i["item_id"]: i for i in items}
    rows = [{"user_id": e["user_id"], "POI_id": e["item_id"], "POI_catname": by_id[e["item_id"]]["category"],
             "latitude": by_id[e["item_id"]]["lat"], "longitude": by_id[e["item_id"]]["lon"], "timezone": -300,
             "UTC_time": iso(e["timestamp"]) if isinstance(e["timestamp"], int) else e["timestamp"]} for e in events]
    pd.DataFrame(rows, columns=["user_id", "POI_id", "POI_catname", "latitude", "longitude", "timezone", "UTC_time"]
                 ).to_csv(folder / "checkins.csv", index=False)
    return folder / "checkins.csv"


WRITERS = {"csv": lambda f, i, e: write_tabular(f, i, e, "csv"), "tsv": lambda f, i, e: write_tabular(f, i, e, "tsv"),
           "jsonl": lambda f, i, e: write_tabular(f, i, e, "jsonl"),
           "parquet": lambda f, i, e: write_tabular(f, i, e, "parquet"),
           "movielens-100k": write_movielens, "recbole": write_recbole, "checkins": write_checkins}


class Folder:
    """A fresh temporary folder per example (Hypothesis runs many examples in one test call)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="promptrec-fuzz-"))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def load_or_data_error(path: Path, errors: str):
    """The loaded dataset, or the DataError; any other exception fails the test."""
    try:
        return load_dataset(path, errors=errors)
    except DataError as exc:
        files = {str(f) for f in path.parent.glob("*")} | {str(f) for f in path.glob("*")} | {str(path)}
        for p in exc.problems:
            assert p.file in files, f"problem names {p.file!r}, not one of the files: {exc}"
            if p.kind in ROW_KINDS:
                assert p.rows and p.count >= 1, f"row problem without rows: {p}"
            assert p.fix, f"problem without a fix: {p}"
        return exc


# -- damage ------------------------------------------------------------------------------------

damage_op = st.one_of(
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from([b",", b"\t", b"\n", b'"', b"|", b"::", b"\r\n",
                                                                   b"\xff\xfe", b"\x00", b"NaN", b"-1e400", b"{"])),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("dup_line"), st.floats(0, 1), st.just(0)),
)


def damage(data: bytes, ops) -> bytes:
    for kind, where, arg in ops:
        at = int(where * len(data))
        if kind == "delete":
            data = data[:at] + data[at + arg:]
        elif kind == "insert":
            data = data[:at] + arg + data[at:]
        elif kind == "truncate":
            data = data[:at]
        else:
            lines = data.split(b"\n")
            n = int(where * len(lines)) % max(1, len(lines))
            data = b"\n".join(lines[:n + 1] + lines[n:])
    return data


@pytest.mark.parametrize("fmt", list(WRITERS))
@FUZZ
@given(dataset=valid_data(), ops=st.lists(damage_op, min_size=1, max_size=4), which=st.integers(0, 10),
       errors=st.sampled_from(["raise", "drop"]))
def test_damaged_files_give_a_dataset_or_a_data_error(fmt, dataset, ops, which, errors):
    items, events = dataset
    with Folder() as folder:
        path = WRITERS[fmt](folder, items, events)
        files = sorted(f for f in folder.iterdir())
        target = files[which % len(files)]
        target.write_bytes(damage(target.read_bytes(), ops))
        load_or_data_error(path, errors)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "movielens-100k", "recbole", "checkins"])
@FUZZ
@given(blob=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_give_a_data_error(fmt, blob):
    with Folder() as folder:
        path = WRITERS[fmt](folder, [{"item_id": "a", "title": "t", "category": "Bar", "lat": 1.0, "lon": 2.0}],
                            [{"user_id": "u", "item_id": "a", "timestamp": T0}])
        target = sorted(folder.iterdir())[-1] if fmt != "checkins" else path
        target.write_bytes(blob)
        result = load_or_data_error(path, "drop")
        assert isinstance(result, DataError) or len(result.interactions) >= 1


# -- drop keeps every valid row -------------------------------------------------------------------

BAD_ROWS = {  # how each kind of bad row is written; which formats can carry it
    "empty user": (lambda e: {**e, "user_id": ""}, {"csv", "jsonl", "movielens-100k", "recbole", "checkins"}),
    "bad time": (lambda e: {**e, "timestamp": "yesterday-ish"}, {"csv", "jsonl", "movielens-100k", "recbole", "checkins"}),
    "unknown item": (lambda e: {**e, "item_id": "zz-not-an-item"}, {"csv", "jsonl", "movielens-100k", "recbole"}),
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "movielens-100k", "recbole", "checkins"])
@FUZZ
@given(dataset=valid_data(), bad=st.lists(st.tuples(st.sampled_from(sorted(BAD_ROWS)), st.integers(0, 100)),
                                           min_size=1, max_size=5))
def test_drop_keeps_every_valid_row_and_counts_every_bad_one(fmt, dataset, bad):
    items, events = dataset
    kinds = [k for k, _ in bad if fmt in BAD_ROWS[k][1]]
    assume(kinds)
    rows = list(events)
    for n, (kind, at) in enumerate(bad):
        if fmt in BAD_ROWS[kind][1]:
            broken = BAD_ROWS[kind][0]({**events[at % len(events)], "user_id": f"bad{n}"} if kind != "empty user"
                                       else events[at % len(events)])
            rows.insert(at % (len(rows) + 1), broken)
    with Folder() as folder:
        ds = load_dataset(WRITERS[fmt](folder, items, rows), errors="drop")
    kept = {(r.user_id, r.item_id, int(r.timestamp.timestamp()))
            for r in ds.interactions.frame[["user_id", "item_id", "timestamp"]].itertuples()}
    assert kept == {(e["user_id"], e["item_id"], e["timestamp"]) for e in events}
    assert ds.report.rows_dropped == len(kinds) and sum(ds.report.dropped_by_kind().values()) == len(kinds)
