"""load_dataset's since/until window: the events inside it, the whole catalogue, an empty window refused."""

import pandas as pd
import pytest


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
