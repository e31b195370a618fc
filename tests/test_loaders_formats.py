"""MovieLens 100K / 1M and RecBole atomic loaders on small files written here, and on the real ML-100K."""

import pandas as pd
import pytest

from promptrec.data.loaders import load_dataset, load_movielens_1m, load_movielens_100k, load_recbole
from promptrec.data.problems import DataError

FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
FLAGS_SCIFI = "0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0"


def ml100k_folder(tmp_path, data_lines):
    (tmp_path / "u.item").write_bytes(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS_TOY}\n"
        f"2|Am\xe9lie (2001)|25-Apr-2001||http://y|{FLAGS_SCIFI}\n"
        f"3|unknown|||http://z|{FLAGS_SCIFI}\n".encode("latin-1"))
    (tmp_path / "u.data").write_text("".join(f"{l}\n" for l in data_lines))
    return tmp_path


def test_movielens_100k_small(tmp_path):
    folder = ml100k_folder(tmp_path, ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t3\t4\t881250000"])
    ds = load_movielens_100k(folder)
    assert ds.catalog["1"].categories == ("Animation", "Children's", "Comedy")
    assert ds.catalog["2"].title == "Am\xe9lie (2001)"
    assert ds.catalog["2"].release_time == pd.Timestamp("2001-04-25", tz="UTC")
    assert ds.catalog["3"].release_time is None
    assert list(ds.interactions.history("1")["rating"]) == [5, 3]
    assert ds.describe()["events"] == 3


def test_movielens_100k_unknown_item_and_bad_row(tmp_path):
    folder = ml100k_folder(tmp_path, ["1\t1\t5\t881250949", "1\t99\t3\t881250950"])
    with pytest.raises(DataError, match=r"u.data, row 2, column 'item_id'"):
        load_movielens_100k(folder)
    assert load_movielens_100k(folder, errors="drop").report.dropped_by_kind() == {"unknown_item": 1}
    (tmp_path / "u.data").write_text("1\t1\t5\n")
    with pytest.raises(DataError, match="expected 4 fields"):
        load_movielens_100k(folder)


def test_movielens_100k_missing_file(tmp_path):
    with pytest.raises(DataError, match="u.item"):
        load_movielens_100k(tmp_path)


def test_movielens_1m_small(tmp_path):
    (tmp_path / "movies.dat").write_text("1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                         "2::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n", encoding="latin-1")
    (tmp_path / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n2::2::4::978301968\n")
    ds = load_dataset(tmp_path)
    assert ds.name == "movielens-1m"
    assert ds.catalog["2"].title.startswith("Star Wars: Episode IV")
    assert ds.catalog["2"].categories == ("Action", "Sci-Fi") and ds.catalog["2"].release_year == 1977
    assert len(ds.interactions) == 3


def test_recbole_atomic_files(tmp_path):
    (tmp_path / "beauty.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "A1\tB1\t5.0\t1360000000\nA1\tB2\t4.0\t1360000100\nA2\tB1\t3.0\t1360000200\n")
    (tmp_path / "beauty.item").write_text(
        "item_id:token\ttitle:token\tcategories:token_seq\tprice:float\tbrand:token\n"
        "B1\tRose Lip Balm\tBeauty Skin_Care\t4.5\tAcme\nB2\tShea Butter\tBeauty\t7.0\tBeta\n")
    ds = load_recbole(tmp_path)
    assert ds.catalog["B1"].categories == ("Beauty", "Skin_Care")
    assert ds.catalog["B1"].attributes == {"price": 4.5, "brand": "Acme"}
    assert ds.interactions.frame["rating"].dtype.kind == "f"
    assert list(ds.interactions.history("A1")["item_id"]) == ["B1", "B2"]


def test_recbole_untyped_header_is_an_error(tmp_path):
    (tmp_path / "x.inter").write_text("user_id\titem_id:token\ttimestamp:float\nA\tB\t1\n")
    with pytest.raises(DataError, match="has no RecBole type"):
        load_recbole(tmp_path)


@pytest.mark.ml100k
def test_real_movielens_100k(ml100k_path):
    ds = load_dataset(ml100k_path, format="movielens-100k")
    d = ds.describe()
    assert (d["users"], d["items"], d["events"]) == (943, 1682, 100_000)
    assert d["time_range"][0].startswith("1997-09-20") and d["time_range"][1].startswith("1998-04-22")
    assert d["rows_dropped"] == {}
    assert 0.7 < d["share_in_same_second_ties"] < 0.8
    assert ds.catalog["1"].title == "Toy Story (1995)"
