import json

import pandas as pd
import pytest

from promptrec.data.loaders import load_dataset, load_events, load_items, load_tabular
from promptrec.data.problems import DataError, LoadReport

ITEMS = "item_id,title,genre,year\ni1,Alien,Sci-Fi|Horror,1979-05-25\ni2,Heat,Crime,1995-12-15\ni3,Up,Animation,\n"


@pytest.fixture
def items_csv(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text(ITEMS)
    return p


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_with_column_mapping(tmp_path, items_csv):
    cat = load_items(items_csv, columns={"categories": "genre", "release_time": "year"})
    assert len(cat) == 3
    assert cat["i1"].categories == ("Sci-Fi", "Horror")
    assert cat["i1"].release_year == 1979
    assert cat["i3"].release_time is None
    ev = write(tmp_path, "ev.csv", "uid,iid,ts,dev\nu1,i1,1700000000,tv\nu1,i2,1700000100,mobile\nu2,i3,1700000050,tv\n")
    inter = load_events(ev, columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"}, catalog=cat)
    assert len(inter) == 3
    assert inter.context_columns == ["dev"]
    hist = inter.history("u1")
    assert list(hist["item_id"]) == ["i1", "i2"]
    assert str(hist["timestamp"].dt.tz) == "UTC"


def test_parquet_and_jsonl_give_the_same_events(tmp_path):
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"],
                          "timestamp": ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00+02:00", "2024-01-02T00:00:00Z"]})
    frame.to_parquet(tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")))
    a = load_events(tmp_path / "e.parquet")
    b = load_events(tmp_path / "e.jsonl")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    # +02:00 is 09:00 UTC, so y comes before x for user a
    assert list(a.history("a")["item_id"]) == ["y", "x"]


def test_naive_times_are_read_in_the_given_timezone(tmp_path):
    ev = write(tmp_path, "e.csv", "user_id,item_id,timestamp\nu,i,2024-07-01 18:00:00\n")
    inter = load_events(ev, timezone="Europe/Berlin")
    assert inter.frame["timestamp"].iloc[0] == pd.Timestamp("2024-07-01 16:00:00", tz="UTC")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nope.csv.*not found"):
        load_events(tmp_path / "nope.csv")


def test_missing_column_names_file_and_column(tmp_path):
    ev = write(tmp_path, "e.csv", "user,item_id,timestamp\nu,i,1\n")
    with pytest.raises(DataError) as err:
        load_events(ev)
    msg = str(err.value)
    assert "e.csv" in msg and "'user_id'" in msg and "columns=" in msg


def test_bad_timestamp_names_row_and_column(tmp_path):
    ev = write(tmp_path, "e.csv", "user_id,item_id,timestamp\nu,i,1700000000\nu,j,yesterday-ish\nu,k,1700000100\n")
    with pytest.raises(DataError) as err:
        load_events(ev)
    p = err.value.problems[0]
    assert (p.kind, p.rows, p.column) == ("bad_timestamp", (3,), "timestamp")
    assert "e.csv, row 3, column 'timestamp'" in str(err.value)


def test_drop_policy_counts_every_dropped_row(tmp_path, items_csv):
    cat = load_items(items_csv, columns={"categories": "genre", "release_time": "year"})
    ev = write(tmp_path, "e.csv",
               "user_id,item_id,timestamp\n"
               "u,i1,1700000000\n"
               "u,i1,1700000000\n"        # duplicate (line 3)
               "u,zzz,1700000001\n"       # unknown item (line 4)
               "u,i2,not a time\n"        # bad timestamp (line 5)
               ",i2,1700000003\n"         # missing user (line 6)
               "v,i3,1700000004\n")
    report = LoadReport()
    inter = load_events(ev, catalog=cat, errors="drop", report=report)
    assert len(inter) == 2
    assert report.rows_read == 6 and report.rows_dropped == 4
    kinds = {p.kind: p.rows for p in report.problems}
    assert kinds == {"missing_value": (6,), "bad_timestamp": (5,), "unknown_item": (4,), "duplicate_row": (3,)}
    assert "dropped 1" in report.summary()


def test_raise_policy_reports_all_problems_at_once(tmp_path, items_csv):
    cat = load_items(items_csv, columns={"categories": "genre", "release_time": "year"})
    ev = write(tmp_path, "e.csv", "user_id,item_id,timestamp\nu,i1,1\nu,i1,1\nu,nope,2\n")
    with pytest.raises(DataError) as err:
        load_events(ev, catalog=cat)
    kinds = [p.kind for p in err.value.problems]
    assert "duplicate_row" in kinds and "unknown_item" in kinds
    assert "errors='drop'" in str(err.value)


def test_empty_event_file_is_an_error(tmp_path):
    ev = write(tmp_path, "e.csv", "user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match="no usable events"):
        load_events(ev)


def test_bad_item_rows(tmp_path):
    it = write(tmp_path, "items.csv", "item_id,title,release_time\na,A,2001-01-01\na,A again,\nb,B,the nineties\n")
    with pytest.raises(DataError) as err:
        load_items(it)
    assert {p.kind for p in err.value.problems} >= {"duplicate_item", "bad_timestamp"}
    report = LoadReport()
    cat = load_items(it, errors="drop", report=report)
    assert list(cat.ids) == ["a"] and report.rows_dropped == 2


def test_unreadable_csv_is_a_clear_error(tmp_path):
    ev = write(tmp_path, "e.csv", 'user_id,item_id,timestamp\nu,"i,1\n')
    with pytest.raises(DataError, match="cannot be read"):
        load_events(ev)


def test_folder_of_events_and_items_loads_by_auto_format(tmp_path, items_csv):
    write(tmp_path, "events.csv", "user_id,item_id,timestamp\nu,i1,1700000000\nu,i2,1700000100\n")
    write(tmp_path, "items.csv", "item_id,title\ni1,Alien\ni2,Heat\n")
    ds = load_dataset(tmp_path)
    assert ds.describe()["events"] == 2 and len(ds.catalog) == 2


def test_load_tabular_reports_drops_across_files(tmp_path):
    ev = write(tmp_path, "e.csv", "user_id,item_id,timestamp\nu,i1,1\nu,ghost,2\n")
    it = write(tmp_path, "i.csv", "item_id,title\ni1,A\n")
    ds = load_tabular(ev, it, errors="drop")
    assert ds.report.dropped_by_kind() == {"unknown_item": 1}
