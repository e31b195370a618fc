"""Compact memory changes nothing: the top 20 of the default retriever on a check-in fixture equals the
reference written by the code before them (tests/data/rankings_top20.json).

The reference is made by running this file as a script (``python tests/test_same_rankings.py``) on the commit
to compare against. It covers both candidate modes (every item, candidate pools), queries in time order and
out of it (the log's cached counts, checkpoints), and live events added after the fit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from checkin_data import make_checkins  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "rankings_top20.json"


def rankings(root: Path) -> dict[str, list[list[str]]]:
    """Top 20 per (mode, request) on a fixed check-in fixture."""
    from promptrec import load_dataset
    from promptrec.data.splits import make_split
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    path = root / "checkins.csv"
    make_checkins(n_users=60, days=42, seed=11).to_csv(path, index=False)
    ds = load_dataset(path)
    split = make_split(ds.interactions, "leave-last-out")
    index = ItemIndex.build(ds.catalog, "rankings", root=root / "indexes")
    users = sorted(ds.interactions.frame["user_id"].unique())
    start, end = ds.interactions.time_range()
    nows = [start + (end - start) * f for f in (0.9, 0.3, 0.6, 1.0)]  # out of time order on purpose
    nows[-1] += pd.Timedelta(hours=2)
    out: dict[str, list[list[str]]] = {}
    for mode, pool in (("every item", None), ("pooled", "on")):
        model = TimeAwareRetriever(pool=pool).fit(split.train, ds.catalog, index, log=split.full)
        requests = [(u, now) for now in nows for u in users[::3]]
        for (u, now) in requests[: len(requests) // 2]:  # one at a time, times jumping back and forth
            out.setdefault(mode, []).append([c.item_id for c in model.retrieve(u, now, k=20)])
        out[mode] += [[c.item_id for c in cands] for cands in model.retrieve_many(requests, k=20)]
        rng = np.random.default_rng(0)
        later = end + pd.Timedelta(hours=1)
        items = ds.catalog.ids
        live = pd.DataFrame({"user_id": [users[i % len(users)] for i in range(300)],
                             "item_id": [items[j] for j in rng.integers(0, len(items), 300)],
                             "timestamp": [later + pd.Timedelta(minutes=int(m)) for m in rng.integers(-600, 600, 300)]})
        model.add_events(live)
        after = later + pd.Timedelta(hours=12)
        out[mode] += [[c.item_id for c in cands] for cands in model.retrieve_many([(u, after) for u in users], k=20)]
    return out


def test_top20_equals_the_reference(tmp_path):
    expected = json.loads(REFERENCE.read_text())
    got = rankings(tmp_path)
    for mode in expected:
        assert len(got[mode]) == len(expected[mode])
        differ = [i for i, (a, b) in enumerate(zip(got[mode], expected[mode])) if a != b]
        assert not differ, f"{mode}: {len(differ)} of {len(got[mode])} top-20 lists changed (first: {differ[0]})"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        REFERENCE.parent.mkdir(exist_ok=True)
        result = rankings(Path(tmp))
    REFERENCE.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {REFERENCE}: {sum(map(len, result.values()))} top-20 lists")
