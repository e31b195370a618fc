"""Live events added to a fitted retriever count exactly like events that were in its log from the start."""

import numpy as np
import pandas as pd
import pytest

from promptrec.data.interactions import Interactions
from promptrec.data.splits import leave_last_out
from promptrec.index.item_index import ItemIndex
from promptrec.retriever.event_log import TimeIndexedLog
from promptrec.retriever.retriever import TimeAwareRetriever


@pytest.fixture(scope="module")
def setup(demo, tmp_path_factory):
    ds = demo.dataset
    index = ItemIndex.build(ds.catalog, "demo", root=tmp_path_factory.mktemp("idx"))
    split = leave_last_out(ds.interactions)
    return ds, index, split


def live_events(ds, split, n=60, seed=3):
    """New events after the log's end, for existing users and one new user, on popular and unseen items."""
    rng = np.random.default_rng(seed)
    end = split.full.time_range()[1]
    users = list(rng.choice(split.full.users, 5, replace=False)) + ["new-user"]
    items = rng.choice(ds.catalog.ids, n)
    times = end + pd.to_timedelta(np.sort(rng.choice(np.arange(1, 20 * 24 * 60), n, replace=False)), unit="min")
    return pd.DataFrame({"user_id": rng.choice(users, n), "item_id": items, "timestamp": times,
                         "event_type": "click", "weight": 1.0, "device": "mobile"})


def fit(ds, index, split, log):
    return TimeAwareRetriever(weights={"content": 1.0, "transition": 0.7, "trending": 0.8, "time_context": 0.6,
                                       "freshness": 0.3}).fit(split.train, ds.catalog, index, log=log)


def test_live_events_equal_events_in_the_log(setup):
    ds, index, split = setup
    events = live_events(ds, split)
    live = fit(ds, index, split, split.full)
    for chunk in np.array_split(np.arange(len(events)), 4):  # several posts, in time order
        live.add_events(events.iloc[chunk])
    refit = fit(ds, index, split, split.full.append(Interactions(events, timezone=split.full.timezone)))
    end = events["timestamp"].max()
    for user in list(events["user_id"].unique()):
        for now in (events["timestamp"].iloc[10], events["timestamp"].iloc[40], end + pd.Timedelta(hours=1)):
            a, b = live.retrieve(user, now, k=30), refit.retrieve(user, now, k=30)
            assert [c.item_id for c in a] == [c.item_id for c in b]
            assert np.allclose([c.score for c in a], [c.score for c in b], atol=1e-6)
    assert live.has_user("new-user") and not split.full.has_user("new-user")
    hist = live.history("new-user")
    assert list(hist["item_id"]) == list(events.loc[events["user_id"] == "new-user", "item_id"])
    assert (hist["device"] == "mobile").all()


def test_an_event_changes_the_next_recommendation_but_not_the_past(setup):
    ds, index, split = setup
    r = fit(ds, index, split, split.full)
    user = split.test[0].user_id
    now = split.full.time_range()[1] + pd.Timedelta(days=2)
    before = r.retrieve(user, now, k=10)
    clicked = before[0].item_id
    r.add_events(pd.DataFrame({"user_id": [user], "item_id": [clicked], "timestamp": [now - pd.Timedelta(hours=1)]}))
    after = r.retrieve(user, now, k=10)
    assert clicked not in [c.item_id for c in after]  # seen now
    assert [c.item_id for c in r.retrieve(user, now - pd.Timedelta(hours=2), k=10)] != [c.item_id for c in after]
    assert clicked in [c.item_id for c in r.retrieve(user, now - pd.Timedelta(hours=2), k=10)]  # the past is as it was
    with pytest.raises(ValueError, match="no time zone .*row 1"):
        r.add_events(pd.DataFrame({"user_id": [user, user], "item_id": [clicked, clicked],
                                   "timestamp": ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00"]}))
    with pytest.raises(KeyError, match="not in the catalogue"):
        r.add_events(pd.DataFrame({"user_id": [user], "item_id": ["no-such-item"], "timestamp": [now]}))


def test_log_extend_out_of_order_and_checkpoints(demo):
    ds = demo.dataset
    inter = ds.interactions
    frame = inter.frame
    cut = len(frame) // 8  # the rest arrives later: enough checkpoints to fill the room and thin
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    first, rest = frame.iloc[order[:cut]], frame.iloc[order[cut:]]
    full = TimeIndexedLog(inter, ds.catalog, checkpoints=8)
    grown = TimeIndexedLog(Interactions(first, timezone=inter.timezone), ds.catalog, checkpoints=8)
    capacity, spacing = len(grown._snaps["hour"]), grown._spacing
    codes = ds.catalog.codes(rest["item_id"].to_numpy())
    ts = rest["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    for a in range(0, len(rest), 97):  # appends in time order, many checkpoints added and thinned
        grown.extend(ts[a:a + 97], codes[a:a + 97])
    early = TimeIndexedLog(Interactions(frame.iloc[order[1:]], timezone=inter.timezone), ds.catalog, checkpoints=8)
    e0 = frame.iloc[order[:1]]
    early.extend(e0["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64"),
                 ds.catalog.codes(e0["item_id"]))  # earlier than everything: re-sorted
    shuffled = TimeIndexedLog(Interactions(first, timezone=inter.timezone), ds.catalog, checkpoints=8)
    chunks = np.random.default_rng(0).permutation(np.arange(0, len(rest), 50))
    for a in chunks:  # chunks in random order: most events arrive late and are inserted in place
        shuffled.extend(ts[a:a + 50], codes[a:a + 50])
    for log in (grown, early, shuffled):
        assert len(log) == len(full)
        assert np.array_equal(log.first_seen, full.first_seen)
        for q in np.linspace(full.ts[0], full.ts[-1] + 1, 9).astype(np.int64):
            for x, y in zip(log.calendar_counts(q), full.calendar_counts(q)):
                assert np.allclose(x, y)
            assert np.allclose(log.decayed_counts(q, 7 * 86400e9, 35 * 86400e9),
                               full.decayed_counts(q, 7 * 86400e9, 35 * 86400e9))
    # checkpoints were thinned in place: the counts' memory is what it was at construction
    assert grown._spacing > spacing and len(grown._snaps["hour"]) == capacity


def test_hours_near_is_the_whole_product_computed_a_block_of_rows_at_a_time():
    from promptrec.retriever.event_log import _rows_times
    from promptrec.retriever.signals.base import hour_kernel

    kernel = hour_kernel(np.arange(24), 8, 1.0)
    for n in (100, 4095, 5000, 3 * 2048 + 3):
        counts = np.random.default_rng(n).poisson(0.3, size=(n, 24)).astype(np.float32)
        got, whole = _rows_times(counts, kernel), counts @ kernel
        assert got.dtype == np.float64
        if n < 2 * 2048:  # one block: the whole product itself
            assert np.array_equal(got, whole)
        np.testing.assert_allclose(got, whole, rtol=1e-14, atol=0)
        assert np.array_equal(_rows_times(counts, kernel), got)
