"""Held-out splits: sizes, the strictly-before rule, and random (not id-ordered) ties."""

import numpy as np
import pandas as pd
import pytest

from promptrec.data.interactions import Interactions
from promptrec.data.splits import leave_last_out, make_split, session_split, sessionize, temporal_split

T0 = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def log(rows, seed=0):
    return Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), seed=seed)


def at(minutes):
    return T0 + pd.Timedelta(minutes=minutes)


def assert_no_leakage(split):
    for target in split.validation + split.test:
        hist = split.history(target)
        assert (hist["timestamp"] < target.now).all()
        assert len(hist) > 0
    first_now = {}
    for t in split.validation + split.test:
        first_now[t.user_id] = min(first_now.get(t.user_id, t.now), t.now)
    train = split.train.frame
    for user, now in first_now.items():
        assert (train.loc[train.user_id == user, "timestamp"] < now).all()


@pytest.mark.parametrize("name", ["leave-last-out", "temporal", "session"])
def test_every_split_on_demo_data_has_no_leakage(demo, name):
    split = make_split(demo.dataset.interactions, name)
    assert split.test and split.validation
    assert_no_leakage(split)


def test_leave_last_out_targets():
    inter = log([("a", "x", at(0)), ("a", "y", at(10)), ("a", "z", at(20)),
                 ("b", "x", at(0)), ("b", "y", at(5)),
                 ("c", "x", at(0))])
    split = leave_last_out(inter)
    assert [(t.user_id, t.item_id) for t in split.test] == [("a", "z"), ("b", "y")]
    assert [(t.user_id, t.item_id) for t in split.validation] == [("a", "y")]
    assert split.report["users_without_test"] == 1  # c has one event: no history to predict from
    assert sorted(map(tuple, split.train.frame[["user_id", "item_id"]].values)) == [("a", "x"), ("b", "x"), ("c", "x")]
    assert_no_leakage(split)


def test_same_second_events_are_not_history():
    inter = log([("a", "x", at(0)), ("a", "y", at(10)), ("a", "z", at(10))])
    split = leave_last_out(inter)
    target = split.test[0]
    assert list(split.history(target)["item_id"]) == ["x"]
    # the other same-second event is the validation target, with the same history
    (val,) = split.validation
    assert {val.item_id, target.item_id} == {"y", "z"} and val.now == target.now
    assert list(split.train.frame["item_id"]) == ["x"]


def test_ties_are_ordered_at_random_by_seed_not_by_item_id():
    rows = [("u", f"i{k:02d}", T0) for k in range(20)] + [("u", "first", at(-5))]
    orders = {tuple(log(rows, seed=s).history("u")["item_id"]) for s in range(5)}
    assert len(orders) == 5
    for order in orders:
        assert order[0] == "first"
        assert list(order[1:]) != sorted(order[1:])
    a, b = log(rows, seed=3), log(rows, seed=3)
    assert list(a.frame["item_id"]) == list(b.frame["item_id"])


def test_ml100k_style_ties_do_not_follow_item_ids(demo):
    """The tie order of a many-tie log is unrelated to item id order."""
    rows = [(f"u{u}", str(i), T0 + pd.Timedelta(seconds=u)) for u in range(50) for i in range(1, 6)]
    rows += [(f"u{u}", "0", T0 - pd.Timedelta(days=1)) for u in range(50)]
    split = leave_last_out(log(rows))
    last_items = [t.item_id for t in split.test]
    assert len(last_items) == 50
    assert len(set(last_items)) == 5 and last_items.count("5") < 25


def test_temporal_split_cuts_globally():
    rows = [(u, f"i{k}", at(10 * k + u_i)) for u_i, u in enumerate("abc") for k in range(10)]
    inter = log(rows)
    split = temporal_split(inter, test_start=at(70), valid_start=at(50))
    assert (split.train.frame["timestamp"] < at(50)).all()
    assert all(at(50) <= t.now < at(70) for t in split.validation)
    assert all(t.now >= at(70) for t in split.test)
    assert len(split.test) == 9 and len(split.validation) == 6
    assert_no_leakage(split)
    with pytest.raises(ValueError):
        temporal_split(inter, test_start=at(10), valid_start=at(50))


def test_temporal_split_in_days_counts_back_local_midnights_across_a_clock_change():
    """``test_days`` / ``valid_days``: whole local days back from the midnight after the last event, so one
    config measures any period; a day is 23 hours where New York springs forward (2024-03-10)."""
    zone = "America/New_York"
    days = pd.date_range("2024-03-01 09:00", "2024-03-20 09:00", freq="D", tz=zone)
    rows = [(u, f"i{d.day}", d + pd.Timedelta(minutes=k)) for k, u in enumerate("ab") for d in days]
    inter = Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), timezone=zone)
    split = temporal_split(inter, test_days=7, valid_days=5)
    cut = {k: pd.Timestamp(v).tz_convert(zone) for k, v in split.report.items() if k.endswith(("start", "end"))}
    assert cut == {"test_end": pd.Timestamp("2024-03-21", tz=zone), "test_start": pd.Timestamp("2024-03-14", tz=zone),
                   "valid_start": pd.Timestamp("2024-03-09", tz=zone)}  # local midnights, one 23-hour day between
    assert sorted({t.now.day for t in split.test}) == list(range(14, 21))
    assert sorted({t.now.day for t in split.validation}) == list(range(9, 14))
    assert_no_leakage(split)
    # the same days give the same split, in local days, on a log that is shifted by weeks: any later period
    later = Interactions(inter.frame.assign(timestamp=inter.frame["timestamp"] + pd.Timedelta(weeks=10)), timezone=zone)
    assert len(temporal_split(later, test_days=7, valid_days=5).test) == len(split.test)
    # an explicit end: the days count back from it
    earlier = temporal_split(inter, test_end="2024-03-10T00:00:00-05:00", test_days=3, valid_days=2)
    assert sorted({t.now.day for t in earlier.test}) == [7, 8, 9] and len(earlier.validation) == 4
    with pytest.raises(ValueError, match="not both"):
        temporal_split(inter, test_start=at(70), test_days=7)
    with pytest.raises(ValueError, match="whole number of days"):
        temporal_split(inter, test_days=1.5)


def test_nyc_split_in_days_is_the_issues_split_in_dates():
    """eval/configs/foursquare_nyc.yaml says its split in days, so that it measures a later file the same way;
    on the shared file it must be the issue's dates (training to Nov 30, validation to Dec 7, test to Dec 21)."""
    from pathlib import Path

    from promptrec.data.loaders.checkins import load_checkins

    path = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "foursquare-nyc" / "checkins.csv"
    if not path.exists():
        pytest.skip(f"the NYC check-ins are not at {path}")
    inter = load_checkins(path).interactions  # as the config reads it: the zone of the rows' own offsets
    assert inter.timezone == "Etc/GMT+5"
    dates = temporal_split(inter, valid_start="2012-11-30T00:00:00-05:00", test_start="2012-12-07T00:00:00-05:00",
                           test_end="2012-12-22T00:00:00-05:00")
    days = temporal_split(inter, test_days=15, valid_days=7)
    assert days.report == dates.report
    assert days.test == dates.test and days.validation == dates.validation and len(days.test) == 3883


def test_session_split():
    # user a: sessions at 0-2 min, 120-121 min, 300-302 min; user b: one session
    rows = [("a", "x", at(0)), ("a", "y", at(2)), ("a", "z", at(120)), ("a", "w", at(121)),
            ("a", "v", at(300)), ("a", "q", at(302)), ("b", "x", at(0)), ("b", "y", at(5))]
    inter = log(rows)
    assert list(sessionize(inter, "30min")) == [0, 0, 1, 1, 2, 2, 3, 3]
    split = session_split(inter, gap="30min")
    assert [t.item_id for t in split.test] == ["v", "q"]
    assert [t.item_id for t in split.validation] == ["z", "w"]
    assert split.report["users_with_one_session"] == 1
    assert list(split.train.frame.query("user_id == 'a'")["item_id"]) == ["x", "y"]
    assert_no_leakage(split)


def test_adding_future_events_changes_no_history(demo):
    inter = demo.dataset.interactions
    split = leave_last_out(inter)
    target = split.test[0]
    before = split.history(target)
    future = pd.DataFrame({"user_id": [target.user_id] * 3, "item_id": ["NEW0001"] * 3,
                           "timestamp": [target.now, target.now + pd.Timedelta(seconds=1), target.now + pd.Timedelta(days=3)]})
    grown = inter.append(Interactions(future))
    after = grown.history(target.user_id, before=target.now)
    pd.testing.assert_frame_equal(before.reset_index(drop=True)[["item_id", "timestamp"]],
                                  after.reset_index(drop=True)[["item_id", "timestamp"]])
    assert len(grown.before(target.now)) == len(inter.before(target.now))


def test_unknown_split_name(demo):
    with pytest.raises(ValueError, match="unknown split"):
        make_split(demo.dataset.interactions, "random")
