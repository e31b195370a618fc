"""eval/history_span.py compares on the targets every cut of the log scores; load_dataset's since/until window."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location("history_span",
                                               Path(__file__).resolve().parents[1] / "eval" / "history_span.py")
span = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(span)


def test_compare_uses_the_common_targets_and_the_full_logs_paired_lead():
    full = {("u", "a", i): 0 for i in range(40)} | {("v", "b", 99): 50}  # v has no history in the short log
    short = {("u", "a", i): (0 if i < 20 else 30) for i in range(40)}  # half of the common targets missed
    got = span.compare({"all": {"p": full}, "1 week": {"p": short}}, "all", seed=0, n_boot=200)
    assert got["common_targets"] == 40
    assert got["rows"]["all"]["p"]["HR@10"] == 1.0 and got["rows"]["1 week"]["p"]["HR@10"] == 0.5
    lead = got["paired_lead_of_full_log"]["p"]["1 week"]["HR@10"]
    assert lead["lead"] == pytest.approx(0.5) and lead["beyond"]


def test_load_dataset_keeps_a_window_of_the_log(tmp_path):
    from promptrec.data.demo import generate_demo
    from promptrec.data.loaders import load_dataset

    ds = generate_demo().dataset
    items = ds.catalog.frame.reset_index()
    items.assign(categories=items["categories"].map("|".join)).to_csv(tmp_path / "items.csv", index=False)
    ds.interactions.frame.to_csv(tmp_path / "events.csv", index=False)
    since, until = pd.Timestamp("2024-02-01", tz="America/New_York"), pd.Timestamp("2024-03-01", tz="America/New_York")
    window = load_dataset(tmp_path, since=str(since), until=str(until), timezone="America/New_York")
    ts = window.interactions.frame["timestamp"]
    assert ts.min() >= since and ts.max() < until and 0 < len(ts) < len(ds.interactions)
    assert len(window.catalog) == len(ds.catalog)  # the catalogue stays whole
    with pytest.raises(ValueError, match="no events in"):
        load_dataset(tmp_path, since="2030-01-01T00:00:00Z", timezone="America/New_York")
