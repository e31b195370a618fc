"""Histories whose times carry no information (every event at one time, or one day apart at the same hour): no
numpy RuntimeWarning anywhere in fitting, tuning and scoring, and one warning in words from the time signal."""

import dataclasses
import logging
import warnings

import pandas as pd
import pytest

from promptrec.data.catalog import Catalog
from promptrec.data.demo import generate_demo
from promptrec.data.interactions import Interactions
from promptrec.retriever.fitting import fit_retriever
from promptrec.retriever.retriever import TimeAwareRetriever

START = pd.Timestamp("2024-01-01 12:00", tz="UTC")


@pytest.fixture(scope="module")
def demo():
    ds = generate_demo(n_users=60, mean_events=20).dataset
    frame = ds.catalog.frame.reset_index()
    frame["categories"] = [()] * len(frame)  # a catalogue without categories (a RecBole .inter alone)
    return dataclasses.replace(ds, catalog=Catalog(frame))


def with_times(ds, mode):
    frame = ds.interactions.frame.copy().sort_values(["user_id", "timestamp"])
    if mode == "constant":
        frame["timestamp"] = START
    else:  # one day apart per user, in order, always at noon
        frame["timestamp"] = START + pd.to_timedelta(frame.groupby("user_id").cumcount(), unit="D")
    return dataclasses.replace(ds, interactions=Interactions(frame, timezone="UTC"))


def explained(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "no information" in r.getMessage()]


def test_constant_times_one_warning_and_no_runtime_warning(demo, caplog):
    ds = with_times(demo, "constant")
    with warnings.catch_warnings(), caplog.at_level("WARNING"):
        warnings.simplefilter("error", RuntimeWarning)
        model = TimeAwareRetriever().fit(ds.interactions, ds.catalog)
        users = ds.interactions.frame["user_id"].unique()[:10]
        model.retrieve_many([(u, "2024-06-01T12:00:00Z") for u in users], k=10)
    said = explained(caplog)
    assert len(said) == 1 and "time_context" in said[0] and "same local hour" in said[0]
    assert not model.signals["time_context"].use_hour and not model.signals["time_context"].use_day


def test_times_a_day_apart_are_read_as_an_order_and_the_clock_signals_left_out(demo, caplog):
    with warnings.catch_warnings(), caplog.at_level("WARNING"):
        warnings.simplefilter("error", RuntimeWarning)
        ds = with_times(demo, "daily")  # 60 users' events one day apart, always at noon: invented
        model = fit_retriever(ds, index=None)
        users = ds.interactions.frame["user_id"].unique()[:10]
        model.retrieve_many([(u, "2024-06-01T12:00:00Z") for u in users], k=10)
    said = [r.getMessage() for r in caplog.records if "look invented" in r.getMessage()]
    assert len(said) == 1 and "12:00:00 UTC" in said[0] and "exactly 1 day apart" in said[0]
    assert ds.interactions.times_known is False
    assert not {"time_context", "freshness", "habit"} & set(model.signals)
    ordered = ds.interactions.frame.groupby("user_id")["item_id"].apply(list)
    given = demo.interactions.frame.sort_values(["user_id", "timestamp"]).groupby("user_id")["item_id"].apply(list)
    assert ordered.equals(given)  # each user's order is kept


def test_irregular_real_times_are_not_called_invented(demo, caplog):
    with caplog.at_level("WARNING"):
        Interactions(demo.interactions.frame.copy(), timezone="UTC")
    assert not [r for r in caplog.records if "look invented" in r.getMessage()]


def test_the_choice_survives_save_and_load(demo, tmp_path):
    ds = with_times(demo, "constant")
    model = TimeAwareRetriever(signals=["time_context", "trending"]).fit(ds.interactions, ds.catalog)
    loaded = TimeAwareRetriever.load(model.save(tmp_path / "r"))
    assert not loaded.signals["time_context"].use_hour and not loaded.signals["time_context"].use_day
