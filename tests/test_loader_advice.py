"""Every loader error that suggests a fix: the test triggers it, follows the advice literally, and loads."""

import re

import pytest

from promptrec.data.loaders import load_checkins, load_dataset, load_events, load_events_with_items, load_items
from promptrec.data.problems import DataError

INTER = "user_id:token\titem_id:token\ttimestamp:float\n"
ITEM = "item_id:token\ttitle:token_seq\tcategories:token_seq\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def advice(exc_info) -> str:
    return str(exc_info.value)


def recbole(folder, name="shop", inter=None, item=None):
    write(folder / f"{name}.inter", inter or INTER + "u1\ti1\t1700000000\nu1\ti2\t1700000100\nu2\ti1\t1700000200\n")
    if item is not False:
        write(folder / f"{name}.item", item or ITEM + "i1\tTea Pot\tKitchen Tea\ni2\tCup\tKitchen\n")
    return folder


def test_several_inter_files_pass_name(tmp_path):
    recbole(tmp_path, "shop")
    recbole(tmp_path, "books")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "pass name= one of ['books', 'shop']" in advice(e)
    ds = load_dataset(tmp_path, name="shop")
    assert ds.name == "shop" and len(ds.interactions.frame) == 3


def test_a_train_valid_test_set_loads_as_one_log(tmp_path):
    write(tmp_path / "shop.item", ITEM + "i1\tTea Pot\tKitchen\ni2\tCup\tKitchen\ni3\tSpoon\tKitchen\n")
    for k, role in enumerate(["train", "valid", "test"]):
        write(tmp_path / f"shop.{role}.inter", INTER + f"u1\ti{k + 1}\t{1700000000 + k}\nu2\ti{k + 1}\t{1700000100 + k}\n")
    ds = load_dataset(tmp_path)
    assert ds.name == "shop" and len(ds.interactions.frame) == 6
    assert [f.rsplit("/", 1)[-1] for f in ds.report.files] == ["shop.item", "shop.train.inter", "shop.valid.inter",
                                                               "shop.test.inter"]
    write(tmp_path / "other.inter", INTER + "u1\ti1\t1\n")  # a second dataset in the folder: by name
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "pass name= one of ['other', 'shop']" in advice(e)
    assert len(load_dataset(tmp_path, name="shop").interactions.frame) == 6


def test_a_missing_inter_column_map_it_with_columns(tmp_path):
    recbole(tmp_path, inter="user_id:token\titem_id:token\ttime:float\nu1\ti1\t1700000000\nu1\ti2\t1700000100\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "columns={'timestamp': '<your column>'}" in advice(e)
    ds = load_dataset(tmp_path, columns={"timestamp": "time"})
    assert len(ds.interactions.frame) == 2


def test_a_missing_item_column_map_it_with_item_columns(tmp_path):
    recbole(tmp_path, item="id:token\ttitle:token_seq\ni1\tTea Pot\ni2\tCup\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "item_columns={'item_id': '<your column>'}" in advice(e)
    assert load_dataset(tmp_path, item_columns={"item_id": "id"}).catalog["i1"].title == "Tea Pot"


def test_an_untyped_recbole_header_write_name_type(tmp_path):
    recbole(tmp_path, inter="user_id\titem_id\ttimestamp\nu1\ti1\t1\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "write headers as name:type" in advice(e)
    recbole(tmp_path, inter=INTER + "u1\ti1\t1\n")
    assert len(load_dataset(tmp_path).interactions.frame) == 1


def test_recbole_typed_headers_in_load_items(tmp_path):
    path = write(tmp_path / "shop.item", ITEM + "i1\tTea Pot\tKitchen Tea\ni2\tCup\tKitchen\n")
    catalog = load_items(path)
    assert catalog["i1"].title == "Tea Pot" and catalog["i1"].categories == ("Kitchen", "Tea")
    csv = write(tmp_path / "items.csv", "item_id:token,title:token_seq\ni1,Tea Pot\n")  # typed header in a CSV
    assert load_items(csv)["i1"].title == "Tea Pot"


def test_bad_timestamps_set_timestamp_unit(tmp_path):
    recbole(tmp_path, inter=INTER + "u1\ti1\t1700000000000\nu1\ti2\t1700000100000\n")  # milliseconds
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "set timestamp_unit" in advice(e)
    assert load_dataset(tmp_path, timestamp_unit="ms").interactions.frame["timestamp"].dt.year.min() == 2023
    events = write(tmp_path / "t" / "events.csv", "user_id,item_id,timestamp\nu1,i1,1700000000000\n")
    with pytest.raises(DataError):
        load_events(events)
    assert len(load_events(events, timestamp_unit="ms").frame) == 1


def test_repeated_rows_pass_errors_drop(tmp_path):
    recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu1\ti1\t1\nu1\ti2\t2\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "pass errors='drop'" in advice(e)
    assert len(load_dataset(tmp_path, errors="drop").interactions.frame) == 2


def test_unknown_item_remove_the_event_and_empty_user_give_one(tmp_path):
    recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu1\ti9\t2\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "remove the event" in advice(e)
    recbole(tmp_path, inter=INTER + "u1\ti1\t1\n\ti2\t2\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "give every event a user_id" in advice(e)
    recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\ti2\t2\n")
    assert len(load_dataset(tmp_path).interactions.frame) == 2


def tabular_folder(folder, events="user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\n",
                   items="item_id,title\ni1,Tea Pot\ni2,Cup\n"):
    write(folder / "events.csv", events)
    write(folder / "items.csv", items)
    return folder


def test_tabular_folder_missing_columns_event_columns_and_item_columns(tmp_path):
    tabular_folder(tmp_path, events="user,item_id,timestamp\nu1,i1,1\n", items="item_id,name\ni1,Tea Pot\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert "item_columns={'title': '<your column>'}" in advice(e)
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path, item_columns={"title": "name"})
    assert "event_columns={'user_id': '<your column>'}" in advice(e)
    ds = load_dataset(tmp_path, item_columns={"title": "name"}, event_columns={"user_id": "user"})
    assert ds.catalog["i1"].title == "Tea Pot"


def test_load_items_missing_column_map_it_with_columns(tmp_path):
    path = write(tmp_path / "items.csv", "item_id,name\ni1,Tea Pot\n")
    with pytest.raises(DataError) as e:
        load_items(path)
    assert "columns={'title': '<your column>'}" in advice(e)
    assert load_items(path, columns={"title": "name"})["i1"].title == "Tea Pot"


def test_unknown_mapping_keys_use_the_listed_ones(tmp_path):
    path = write(tmp_path / "items.csv", "item_id,name\ni1,Tea Pot\n")
    with pytest.raises(ValueError, match=r"use \['item_id', 'title'") as e:
        load_items(path, columns={"name": "name"})
    assert "title" in str(e.value)
    assert load_items(path, columns={"title": "name"})["i1"].title == "Tea Pot"


def test_one_table_missing_columns_columns_and_item_columns(tmp_path):
    path = write(tmp_path / "visits.csv", "user,place,time,kind\nu1,p1,1,Cafe\nu1,p2,2,Bar\n")
    with pytest.raises(DataError) as e:
        load_events_with_items(path, item_columns={"title": "kind"})
    assert "columns={'user_id': '<your column>'}" in advice(e)
    with pytest.raises(DataError) as e:
        load_events_with_items(path, columns={"user_id": "user", "item_id": "place", "timestamp": "time"},
                               item_columns={"title": "name"})
    assert "item_columns={'title': '<your column>'}" in advice(e)
    ds = load_events_with_items(path, columns={"user_id": "user", "item_id": "place", "timestamp": "time"},
                                item_columns={"title": "kind"})
    assert ds.catalog["p1"].title == "Cafe"


def test_unknown_table_format_pass_fmt(tmp_path):
    path = write(tmp_path / "events.dat", "user_id,item_id,timestamp\nu1,i1,1\n")
    with pytest.raises(DataError) as e:
        load_events(path)
    assert "pass fmt=" in advice(e)
    assert len(load_events(path, fmt="csv").frame) == 1


def test_unknown_folder_pass_format(tmp_path):
    recbole(tmp_path / "data", name="shop")
    (tmp_path / "data" / "shop.inter").rename(tmp_path / "data" / "shop.interactions")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "data")
    assert "pass format=" in advice(e)
    (tmp_path / "data" / "shop.interactions").rename(tmp_path / "data" / "shop.inter")  # a .inter file, as it says
    assert len(load_dataset(tmp_path / "data", format="recbole").interactions.frame) == 3


def test_a_folder_without_tables_put_events_and_items(tmp_path):
    write(tmp_path / "events.csv", "user_id,item_id,timestamp\nu1,i1,1\n")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path, format="tabular")
    assert "put events.csv/.parquet/.jsonl and items.* in the folder" in advice(e)
    write(tmp_path / "items.csv", "item_id,title\ni1,Tea Pot\n")
    assert len(load_dataset(tmp_path, format="tabular").interactions.frame) == 1


def test_bad_release_time_use_iso_dates(tmp_path):
    path = write(tmp_path / "items.csv", "item_id,title,release_time\ni1,Tea Pot,someday\n")
    with pytest.raises(DataError) as e:
        load_items(path)
    assert "use ISO dates" in advice(e)
    write(path, "item_id,title,release_time\ni1,Tea Pot,1995-01-01\n")
    assert load_items(path)["i1"].release_time.year == 1995


def test_bad_weight_make_it_numeric(tmp_path):
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp,weight\nu1,i1,1,heavy\n")
    with pytest.raises(DataError) as e:
        load_events(path)
    assert "make weight numeric, or leave the column out" in advice(e)
    write(path, "user_id,item_id,timestamp\nu1,i1,1\n")
    assert len(load_events(path).frame) == 1


def test_checkins_whose_offsets_fit_no_zone_pass_timezone(tmp_path):
    header = "user_id,POI_id,POI_catname,latitude,longitude,timezone,UTC_time\n"
    rows = "".join(f"u1,p{k},Cafe,40.7,-74.0,7,2012-04-0{k + 1} 12:00:00\n" for k in range(3))
    path = write(tmp_path / "checkins.csv", header + rows)
    with pytest.raises(DataError) as e:
        load_checkins(path)
    assert re.search(r"pass timezone=", advice(e))
    assert load_checkins(path, timezone="America/New_York").interactions.timezone == "America/New_York"
