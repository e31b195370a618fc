"""Event logs read in chunks through pyarrow: typed columns, the same log whatever the chunk size, bad rows
named by their row in the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptrec.data.loaders import load_dataset, load_events
from promptrec.data.problems import DataError

ROWS = 200_000


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "user_id": np.char.add("u", rng.integers(0, 20_000, ROWS).astype(str)),
        "item_id": np.char.add("p", rng.integers(0, 5_000, ROWS).astype(str)),
        "timestamp": 1_700_000_000 + rng.integers(0, 90 * 86_400, ROWS),
        "event_type": rng.choice(["view", "buy"], ROWS),
        "weight": rng.random(ROWS).round(3),
    }).drop_duplicates(["user_id", "item_id", "timestamp", "event_type"], ignore_index=True)
    folder = tmp_path_factory.mktemp("big")
    frame.to_csv(folder / "events.csv", index=False)
    frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="s", utc=True)).to_parquet(
        folder / "events.parquet", index=False)
    return folder, frame


def core(inter) -> pd.DataFrame:
    return inter.frame[["user_id", "item_id", "timestamp", "event_type", "weight"]].astype(
        {"user_id": str, "item_id": str, "event_type": str})


def test_parquet_log_has_no_object_column_and_equals_the_csv_log(log):
    folder, frame = log
    parquet = load_events(folder / "events.parquet")
    assert len(parquet) == len(frame)
    assert not [c for c, t in parquet.frame.dtypes.items() if t == object]
    for col in ("user_id", "item_id", "event_type"):
        dtype = parquet.frame[col].dtype
        assert isinstance(dtype, pd.CategoricalDtype) and dtype.categories.is_monotonic_increasing
    pd.testing.assert_frame_equal(core(parquet), core(load_events(folder / "events.csv")))
    assert set(parquet.users) == set(frame["user_id"]) and parquet.has_user(frame["user_id"].iloc[0])


@pytest.mark.parametrize("name", ["events.parquet", "events.csv"])
def test_small_chunks_give_the_same_log_as_one_chunk(log, name):
    folder, _ = log
    whole = load_events(folder / name, chunk_rows=10**7)
    pieces = load_events(folder / name, chunk_rows=7_000)
    pd.testing.assert_frame_equal(core(pieces), core(whole))
    np.testing.assert_array_equal(pieces.users, whole.users)


def _with_bad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.astype({"timestamp": object})
    bad.loc[150_000, "timestamp"] = "not a time"  # CSV line 150,002; Parquet row 150,001
    bad.loc[180_000] = bad.loc[3]  # repeats an event of the first chunk
    return bad


@pytest.mark.parametrize("fmt,first_row", [("csv", 2), ("parquet", 1)])
def test_a_bad_row_in_a_later_chunk_is_named_by_its_row(log, tmp_path, fmt, first_row):
    _, frame = log
    bad = _with_bad_rows(frame)
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        bad.to_csv(path, index=False)
    else:
        bad.astype({"timestamp": str}).to_parquet(path, index=False)
    with pytest.raises(DataError) as err:
        load_events(path, chunk_rows=10_000)
    msg = str(err.value)
    assert f"row {150_000 + first_row}, column 'timestamp'" in msg
    assert f"row {180_000 + first_row}: repeats an earlier event" in msg
    dropped = load_events(path, chunk_rows=10_000, errors="drop")
    assert len(dropped) == len(frame) - 2


def test_progress_bar_when_asked(log, capsys):
    folder, _ = log
    load_dataset(folder / "events.parquet", format="tabular", progress=True, errors="drop")
    assert "rows" in capsys.readouterr().err
    load_events(folder / "events.parquet")
    assert capsys.readouterr().err == ""


def test_events_without_an_id_are_refused_by_name_and_unknown_codes_stay_unknown():
    from promptrec.data.catalog import Catalog
    from promptrec.data.interactions import Interactions

    times = pd.to_datetime([1, 2, 3, 4], unit="s", utc=True)
    frame = pd.DataFrame({"user_id": ["a", None, "b", "b"], "item_id": ["x", "y", "z", "x"], "timestamp": times})
    with pytest.raises(ValueError, match=r"1 events have no user_id \(e.g. rows \[1\]\)"):
        Interactions(frame)
    with pytest.raises(ValueError, match="2 events have no item_id"):
        Interactions(frame.assign(user_id="a", item_id=["x", None, None, "x"]))
    catalog = Catalog(pd.DataFrame({"item_id": ["x", "y"], "title": ["X", "Y"]}))
    nothing = pd.Series(pd.Categorical([None, None], categories=pd.Index([], dtype="str")))
    assert catalog.codes_of(nothing).tolist() == [-1, -1]
    assert catalog.codes_of(pd.Series(pd.Categorical(["y", None, "q"]))).tolist() == [1, -1, -1]
