"""Fitting statistics on Ray: shards of whole users add up to the single-process statistics, exactly, on a real
two-node loopback Ray cluster reading Parquet; a retriever given them ranks like one fitted in one process."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import promptrec
from promptrec.retriever.ray_fit import apply_statistics, read_log
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.retriever.statistics import EventStatistics, merge

sys.path.insert(0, str(Path(__file__).parent))
from checkin_data import make_checkins  # noqa: E402

SIGNALS = ["transition", "audience", "trending", "time_context"]
DRIVER = """
import pickle
from promptrec.retriever.ray_fit import shard_statistics_on_ray, statistics_on_ray
catalog = pickle.load(open("{catalog}", "rb"))
parts = shard_statistics_on_ray("{log}", catalog, "{tz}", address="{address}", shards=4)
merged = statistics_on_ray("{log}", catalog, "{tz}", address="{address}", shards=3)
pickle.dump((parts, merged), open("{out}", "wb"))
"""


@pytest.fixture(scope="module")
def checkins(tmp_path_factory):
    """Check-ins where a tenth of the events have a twin at the same time (another place): same-time events of a
    user, whose order the transition pairs depend on."""
    raw = make_checkins(n_users=40, days=21, seed=7)
    twins = raw.iloc[::10].copy()
    twins["POI_id"] = raw["POI_id"].sample(len(twins), random_state=1, replace=True).to_numpy()
    path = tmp_path_factory.mktemp("checkins") / "checkins.csv"
    pd.concat([raw, twins], ignore_index=True).to_csv(path, index=False)
    ds = promptrec.load_dataset(path)
    assert ds.interactions.frame.duplicated(["user_id", "timestamp"]).sum() > 50
    return ds


def test_shards_of_users_merge_to_the_whole_log(checkins):
    inter, catalog = checkins.interactions, checkins.catalog
    whole = EventStatistics.of_log(inter, catalog, window=4)
    users = inter.users
    halves = [EventStatistics.of_log(inter.for_users(users[i::2]), catalog, window=4) for i in (0, 1)]
    assert whole.same_as(merge(*halves)) == [] and whole.same_as(merge(*halves[::-1])) == []
    assert whole.item_events.sum() == len(inter) == whole.user_items.sum() == whole.item_hour.sum()
    assert len(whole.step_pairs) == 4 and whole.step_pairs[0].sum() == len(inter) - len(users)
    with pytest.raises(ValueError, match="share users"):
        merge(whole, halves[0])
    # pairs weighted by the time between their events: the same up to the order of float additions
    timed = [EventStatistics.of_log(x, catalog, pair_half_life_hours=2.0)
             for x in (inter, inter.for_users(users[::2]), inter.for_users(users[1::2]))]
    merged = merge(timed[1], timed[2])
    assert set(timed[0].same_as(merged)) <= {"step_pairs"}
    assert all(abs(a - b).max() < 1e-9 for a, b in zip(timed[0].step_pairs, merged.step_pairs))
    # the retriever's own log counts the same items, hours and first-seen times
    log = TimeAwareRetriever(signals=["trending"]).fit(inter, catalog).log
    assert np.array_equal(log.first_seen, whole.first_seen)
    assert np.array_equal(log._hour_snap[-1], whole.item_hour) and np.array_equal(log._dow_snap[-1], whole.item_weekday)


def test_statistics_on_a_two_node_ray_cluster_equal_the_single_process_fit(checkins, ray_cluster, tmp_path):
    address, env = ray_cluster
    inter, catalog = checkins.interactions, checkins.catalog
    events = inter.frame[["user_id", "item_id", "timestamp"]].astype({"user_id": str, "item_id": str})
    stray = events.iloc[:3].assign(item_id="not-in-the-catalogue")  # dropped, as a fit drops them
    (tmp_path / "log").mkdir()
    events.iloc[:2000].to_parquet(tmp_path / "log" / "part-0.parquet", row_group_size=700)
    pd.concat([events.iloc[2000:], stray]).to_parquet(tmp_path / "log" / "part-1.parquet", row_group_size=700)
    with open(tmp_path / "catalog.pkl", "wb") as f:
        pickle.dump(catalog, f)

    # the driver is a process of its own holding the cluster's token, as a user runs it
    driver = DRIVER.format(catalog=tmp_path / "catalog.pkl", log=tmp_path / "log", tz=inter.timezone,
                           address=address, out=tmp_path / "parts.pkl")
    proc = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts, merged = pickle.loads((tmp_path / "parts.pkl").read_bytes())
    assert sum(p.events for p in parts) == len(inter) and len(parts) == 4
    on_ray = EventStatistics.empty(len(catalog), timezone=inter.timezone)
    for p in parts:
        on_ray = merge(on_ray, p.stats)
    single = EventStatistics.of_log(inter, catalog)
    assert single.same_as(on_ray) == [] and single.same_as(merged) == []
    assert all((a != b).nnz == 0 for a, b in zip(single.step_pairs, on_ray.step_pairs))
    assert len({p.node for p in parts}) == 2, [p.node for p in parts]  # both nodes reduced shards

    # a retriever given the statistics ranks like one fitted in one process, after save and load
    fitted = TimeAwareRetriever(signals=SIGNALS, repeats="allow").fit(inter, catalog)
    given = TimeAwareRetriever(signals=SIGNALS, repeats="allow").fit(inter, catalog)
    given.signals["transition"].matrix = None
    given.signals["audience"].users = given.signals["audience"].events_per_user = None
    apply_statistics(given, on_ray)
    assert (given.signals["transition"].matrix != fitted.signals["transition"].matrix).nnz == 0
    assert np.array_equal(given.signals["audience"].users, fitted.signals["audience"].users)
    loaded = TimeAwareRetriever.load(given.save(tmp_path / "retriever"))
    now = inter.time_range()[1] + pd.Timedelta(hours=1)
    for user in inter.users[:5]:
        a, b = fitted.retrieve(user, now, k=20), loaded.retrieve(user, now, k=20)
        assert [c.item_id for c in a] == [c.item_id for c in b] and len(a) == 20
        assert [c.score for c in a] == pytest.approx([c.score for c in b])


# -- a whole retriever fitted from statistics ------------------------------------------------------------------
WHOLE_DRIVER = """
import pickle
import numpy as np
from promptrec.retriever.ray_fit import fit_retriever_on_ray

class Vectors:  # the item vectors of an ItemIndex (all that a fit reads from one)
    def __init__(self, ids, vectors):
        self.pos, self.x = {{i: k for k, i in enumerate(ids)}}, vectors
    def __contains__(self, item):
        return item in self.pos
    def vectors(self, ids):
        return self.x[[self.pos[i] for i in ids]]

def fitted(r):
    return {{"signals": {{n: (s.state(), s.params) for n, s in r.signals.items()}}, "pool": r.pool.state(),
            "fitted_on": r.fitted_on, "weights": r.weights, "context_columns": r.context_columns,
            "release_ns": r.release_ns}}

log, catalog, vectors = pickle.load(open("{inputs}", "rb"))
index = Vectors(list(catalog.ids), vectors)
given = fit_retriever_on_ray("{parquet}", catalog, index, timezone=log.timezone, log=log, address="{address}",
                             shards=3, pool="on", context=["weather"])
read = fit_retriever_on_ray("{parquet}", catalog, index, timezone=log.timezone, address="{address}", shards=2,
                            pool="on", context=["weather"])  # the log read from the Parquet here
pickle.dump((fitted(given), fitted(read)), open("{out}", "wb"))
given.save("{saved}")
"""


class Vectors:
    """The item vectors of an ItemIndex (all that a fit reads from one)."""

    def __init__(self, ids, vectors):
        self.pos, self.x = {i: k for k, i in enumerate(ids)}, vectors

    def __contains__(self, item):
        return item in self.pos

    def vectors(self, ids):
        return self.x[[self.pos[i] for i in ids]]


@pytest.fixture(scope="module")
def scene_log(checkins):
    """The check-ins (same-time twins included) with a device and a declared weather column (some missing), and
    unit item vectors: every default signal (content, place, device, context-weather, returns...) is fitted."""
    from promptrec.data.context_columns import declare_context
    from promptrec.data.interactions import Interactions

    inter, catalog = checkins.interactions, checkins.catalog
    rng = np.random.default_rng(3)
    frame = inter.frame.assign(device=rng.choice(["phone", "tv", None], len(inter.frame)),
                               weather=rng.choice(["rain", "sun", "snow", None], len(inter.frame)))
    log = declare_context(Interactions(frame, timezone=inter.timezone, _sorted=True), ["weather"])
    x = rng.normal(size=(len(catalog), 8)).astype(np.float32)
    return log, catalog, x / np.linalg.norm(x, axis=1, keepdims=True)


def same_state(a, b) -> bool:
    import scipy.sparse as sp

    if sp.issparse(a) or sp.issparse(b):
        return sp.issparse(a) and sp.issparse(b) and a.shape == b.shape and a.dtype == b.dtype and (a != b).nnz == 0
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def assert_same_fit(single, signals, pool, fitted_on, weights, context_columns, release_ns):
    """Every signal's state and params, the pool's state and the retriever's fitted facts equal ``single``'s."""
    assert list(signals) == list(single.signals)
    for name, (state, params) in signals.items():
        mine = single.signals[name].state()
        assert mine.keys() == state.keys(), name
        assert all(same_state(mine[k], state[k]) for k in mine), (name, [k for k in mine if not same_state(mine[k], state[k])])
        assert params == single.signals[name].params, name
    assert pool.keys() == single.pool.state().keys() and all(same_state(v, single.pool.state()[k]) for k, v in pool.items())
    assert fitted_on == single.fitted_on and weights == single.weights and context_columns == single.context_columns
    assert same_state(release_ns, single.release_ns)


def test_a_retriever_fitted_from_merged_statistics_equals_the_single_process_fit(scene_log):
    from promptrec.retriever.from_statistics import fit_from_statistics
    from promptrec.retriever.signals.place import haversine_km, median_distance
    from promptrec.retriever.statistics import merge_context

    log, catalog, x = scene_log
    index = Vectors(list(catalog.ids), x)
    single = TimeAwareRetriever(pool="on").fit(log, catalog, index)
    assert {"content", "place", "device", "context-weather", "returns", "time_context"} <= set(single.signals)
    users = log.users
    halves = [EventStatistics.of_log(log.for_users(users[i::2]), catalog, context=["device", "weather"]) for i in (0, 1)]
    stats = merge(*halves)
    assert stats.same_as(EventStatistics.of_log(log, catalog, context=["device", "weather"])) == []
    r = fit_from_statistics(TimeAwareRetriever(pool="on"), stats, log, catalog, index)
    assert_same_fit(single, {n: (s.state(), s.params) for n, s in r.signals.items()}, r.pool.state(), r.fitted_on,
                    r.weights, r.context_columns, r.release_ns)
    assert r.repeat_rate == single.repeat_rate and r.allow_repeats
    # statistics of another catalogue (other items or order: other codes) are refused, not misread
    from dataclasses import replace

    other = replace(stats, catalog_digest="0" * 16)
    with pytest.raises(ValueError, match="another catalogue"):
        fit_from_statistics(TimeAwareRetriever(pool="on"), other, log, catalog, index)
    with pytest.raises(ValueError, match="different catalogues"):
        merge(stats, other)
    # tuning it never refits the whole log in this process (earlier windows need a single-process fit)
    from promptrec.retriever.tuning import ranker_config

    assert ranker_config(r, None).earlier_windows == 0 and ranker_config(single, None).earlier_windows > 0

    # context counts of shards that saw different values merge by the union of values
    a = (np.array(["rain"]), sp_counts([[1], [0]]))
    b = (np.array(["snow", "sun"]), sp_counts([[0, 2], [3, 0]]))
    values, counts = merge_context({"w": a}, {"w": b, "v": b}, 2)["w"]
    assert values.tolist() == ["rain", "snow", "sun"] and counts.toarray().tolist() == [[1, 0, 2], [0, 3, 0]]
    # the median over counted pairs is np.median over every pair's distance (odd and even counts)
    coords = np.array([[40.7, -74.0], [40.8, -73.9], [40.75, -73.95], [np.nan, np.nan]])
    for w in ([[0, 2, 1, 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], [[0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0] * 4]):
        pairs = sp_counts(w)
        rows, cols = pairs.nonzero()
        d = np.repeat(haversine_km(coords[rows, 0], coords[rows, 1], coords[cols, 0], coords[cols, 1]), pairs.data)
        d = d[np.isfinite(d) & (d > 0)]
        assert median_distance(pairs, coords) == float(np.median(d))


def sp_counts(rows):
    import scipy.sparse as sp

    return sp.csr_matrix(np.array(rows, dtype=np.int64))


def test_a_whole_retriever_fitted_on_a_two_node_ray_cluster_equals_the_single_process_fit(scene_log, ray_cluster,
                                                                                         tmp_path):
    address, env = ray_cluster
    log, catalog, x = scene_log
    stray = log.frame.iloc[:2].assign(item_id="not-in-the-catalogue")  # dropped, as a fit drops them
    (tmp_path / "log").mkdir()
    log.frame.iloc[:1500].to_parquet(tmp_path / "log" / "part-0.parquet", row_group_size=600)
    pd.concat([log.frame.iloc[1500:], stray]).to_parquet(tmp_path / "log" / "part-1.parquet", row_group_size=600)
    with open(tmp_path / "inputs.pkl", "wb") as f:
        pickle.dump((log, catalog, x), f)
    driver = WHOLE_DRIVER.format(inputs=tmp_path / "inputs.pkl", parquet=tmp_path / "log", address=address,
                                 out=tmp_path / "fitted.pkl", saved=tmp_path / "retriever")
    proc = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    given, read = pickle.loads((tmp_path / "fitted.pkl").read_bytes())

    index = Vectors(list(catalog.ids), x)
    single = TimeAwareRetriever(pool="on").fit(log, catalog, index)
    assert_same_fit(single, **given)
    # the log read back from the Parquet: the same events in the same order (same-time twins too), plus the strays
    from_files = read_log(tmp_path / "log", log.timezone, ["weather"])
    core = ["user_id", "item_id", "timestamp", "device", "weather"]
    kept = from_files.frame[from_files.frame["item_id"] != "not-in-the-catalogue"].reset_index(drop=True)
    assert kept[core].astype(str).equals(log.frame[core].astype(str)) and len(from_files) == len(log) + 2
    assert_same_fit(TimeAwareRetriever(pool="on").fit(from_files, catalog, index), **read)
    loaded = TimeAwareRetriever.load(tmp_path / "retriever")
    now = log.time_range()[1] + pd.Timedelta(hours=1)
    for user in log.users[:4]:
        a, b = single.retrieve(user, now, k=20), loaded.retrieve(user, now, k=20)
        assert [c.item_id for c in a] == [c.item_id for c in b] and len(a) == 20
        assert [c.score for c in a] == pytest.approx([c.score for c in b])


def test_parquet_parts_the_statistics_cannot_read_are_named():
    from promptrec.retriever.ray_fit import input_problem

    good = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"],
                         "timestamp": pd.to_datetime([1, 2], unit="s", utc=True)})
    assert input_problem(good) is None
    assert "not a timezone-aware time" in input_problem(good.assign(timestamp=[1, 2]))
    assert "not a timezone-aware time" in input_problem(good.assign(timestamp=good["timestamp"].dt.tz_localize(None)))
    assert input_problem(good.assign(user_id=["a", None])) == "1 rows have no user_id"
