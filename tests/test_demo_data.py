"""The demo data is seeded and carries the time effects it documents."""

import numpy as np
import pandas as pd

from promptrec.data.demo import generate_demo


def test_demo_is_reproducible_and_sized():
    a = generate_demo(n_users=60, seed=1).dataset
    b = generate_demo(n_users=60, seed=1).dataset
    pd.testing.assert_frame_equal(a.interactions.frame, b.interactions.frame)
    c = generate_demo(n_users=60, seed=2).dataset
    assert not a.interactions.frame["item_id"].equals(c.interactions.frame["item_id"])


def test_demo_catalog_is_meaningful(demo):
    cat = demo.dataset.catalog
    assert 250 <= len(cat) <= 400
    assert len(cat.categories()) == 8
    assert (cat.frame["description"].str.len() > 30).all()
    assert cat.frame["title"].nunique() == len(cat)


def test_nothing_is_watched_before_release(demo):
    ds = demo.dataset
    rel = ds.interactions.frame["item_id"].map(ds.catalog.frame["release_time"])
    assert (ds.interactions.frame["timestamp"] >= rel).all()


def test_planted_hour_of_day_effect_is_in_the_events(demo):
    ds = demo.dataset
    f = ds.interactions.frame
    hour = f["timestamp"].dt.tz_convert(ds.interactions.timezone).dt.hour
    cat = f["item_id"].map(ds.catalog.frame["categories"].str[0])
    share = lambda c, hours: (cat[hour.isin(hours)] == c).mean()
    assert share("News", [6, 7, 8, 9]) > 2 * share("News", [19, 20, 21, 22])
    assert share("Thriller", [22, 23, 0, 1]) > 2.5 * share("Thriller", [6, 7, 8, 9])
    assert share("Tech", [10, 11, 12, 13, 14, 15]) > 2 * share("Tech", [19, 20, 21, 22])


def test_planted_weekend_and_burst_effects(demo):
    ds, truth = demo.dataset, demo.truth
    f = ds.interactions.frame
    weekend = f["timestamp"].dt.tz_convert(ds.interactions.timezone).dt.dayofweek >= 5
    cat = f["item_id"].map(ds.catalog.frame["categories"].str[0])
    assert (cat[weekend] == "Travel").mean() > 1.5 * (cat[~weekend] == "Travel").mean()
    lifts = []
    for item, start, end in truth.bursts:
        during = f["timestamp"].between(start, end, inclusive="left")
        span = (end - start) / (f["timestamp"].max() - f["timestamp"].min())
        lifts.append(((f["item_id"] == item) & during).sum() / max(1, (f["item_id"] == item).sum()) / span)
    assert np.median(lifts) > 2


def test_series_are_followed(demo):
    f = demo.dataset.interactions.frame
    nxt = f.groupby("user_id")["item_id"].shift(-1)
    follows = [(a, b) for a, b in zip(f["item_id"], nxt) if a in demo.truth.series_next]
    hit = np.mean([demo.truth.series_next[a] == b for a, b in follows])
    assert hit > 0.2
