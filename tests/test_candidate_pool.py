"""Candidate pools (promptrec.retriever.pool): signals scoring a subset of the catalogue give exactly those
columns of their full scores, a pool holding every item gives the exhaustive ranking, a pool holds what its
sources promise, a pool's z-scores take the catalogue's scale from the reference sample, and a pooled retriever
tunes, ranks, answers per request and persists."""

from dataclasses import replace

import numpy as np
import pytest
from test_context_signals import checkins, fit  # noqa: F401 (checkins: the shared fixture)

from promptrec.metrics import hit_rate
from promptrec.retriever import retriever as retriever_module
from promptrec.retriever.blend import standardize
from promptrec.retriever.pool import CandidatePool, PoolConfig, pack_rows
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.retriever.signals.base import features_on

SIGNALS = ("transition", "trending", "time_context", "freshness", "habit", "place", "neighbours", "audience")
SMALL_POOL = PoolConfig(history=30, transition=10, nearby=10, popular=10, hour=5, fresh=0)


def _queries(r, targets, n=10):
    return [r._query(t.user_id, t.now) for t in targets[:n]]


def test_signals_scoring_a_subset_give_exactly_those_columns_of_their_full_scores(checkins):
    """Every feature of every signal, for a subset with and without the users' own places: habit's totals and
    category shares still count every event of the user, not only the pooled places'."""
    _, ds, split = checkins
    r = fit(ds, split, signals=SIGNALS, params={"habit": {"recency_rank": True, "category_since": True,
                                                                     "user_style": True}})
    queries = _queries(r, split.test, 12)
    seen = np.unique(np.concatenate([q.codes for q in queries]))
    rng = np.random.default_rng(0)
    with_history = np.unique(np.concatenate([seen[::2], rng.choice(len(ds.catalog), 20, replace=False)]))
    without = np.setdiff1d(np.arange(len(ds.catalog)), seen)[:25]
    assert len(without) == 25
    for items in (with_history, without):
        for name, signal in r.signals.items():
            full = signal.features(queries, r.log)
            part = features_on(signal, queries, r.log, items)
            assert set(part) == set(full), name
            for feature, values in full.items():
                if feature == "habit_recency_rank":  # ranks among the pooled places only
                    continue
                np.testing.assert_allclose(part[feature], values[:, items], rtol=1e-9, atol=1e-12, err_msg=feature)


@pytest.mark.parametrize("method", ["coordinate", pytest.param("lightgbm", marks=pytest.mark.integration)])
def test_a_pool_holding_every_item_ranks_as_the_exhaustive_retriever(checkins, monkeypatch, method):
    _, ds, split = checkins
    exhaustive = fit(ds, split, signals=SIGNALS[:6])
    exhaustive.tune(split.validation, method=method)
    pooled = fit(ds, split, signals=SIGNALS[:6], pool="on")
    pooled.weights, pooled.ranker = exhaustive.weights, exhaustive.ranker
    monkeypatch.setattr(pooled.pool, "gather", lambda queries, *a, **k: [np.arange(len(ds.catalog))] * len(queries))
    targets = split.test[:60]
    got, want = pooled.score_targets(targets), exhaustive.score_targets(targets)
    if method == "coordinate":  # the pool's weighted mean and spread are summed in float64 (float32 sums: 1e-6 apart)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        requests = [(t.user_id, t.now) for t in targets[:20]]
        for a, b in zip(pooled.retrieve_many(requests, k=10), exhaustive.retrieve_many(requests, k=10)):
            assert [c.item_id for c in a] == [c.item_id for c in b]
    else:  # the same scores; the candidates (each signal's top 50) may differ only at ties
        both = np.isfinite(got) & np.isfinite(want)
        np.testing.assert_allclose(got[both], want[both], rtol=1e-5, atol=1e-6)
        assert both.sum() >= 0.95 * max(np.isfinite(got).sum(), np.isfinite(want).sum())
        assert (np.argmax(got, axis=1) == np.argmax(want, axis=1)).mean() >= 0.95


def test_the_pool_holds_the_users_places_what_follows_the_last_one_and_the_nearest_places(checkins):
    _, ds, split = checkins
    r = fit(ds, split, signals=SIGNALS[:6], pool=SMALL_POOL)
    queries = _queries(r, split.test, 8)
    pools = r.pool.gather(queries, r.log, r.signals, r.release_ns)
    coords = r.signals["place"].coords
    for q, pool in zip(queries, pools):
        assert np.all(np.diff(pool) > 0)
        recent = list(dict.fromkeys(q.codes[::-1]))[:SMALL_POOL.history]
        assert set(recent) <= set(pool)
        follows = r.signals["transition"].score([q], r.log)[0]
        assert int(np.argmax(follows)) in pool  # the strongest transition from the last places
        last = coords[q.codes[-1]]
        nearest = np.argsort(np.hypot(coords[:, 0] - last[0], (coords[:, 1] - last[1]) * np.cos(np.radians(last[0]))))
        assert set(nearest[:3]) <= set(pool)
        assert len(pool) <= SMALL_POOL.max_size
    assert max(len(p) for p in pools) < len(ds.catalog)  # a real subset


@pytest.mark.integration
def test_a_pooled_retriever_tunes_ranks_answers_per_request_and_persists(checkins, tmp_path):
    _, ds, split = checkins
    exhaustive = fit(ds, split, signals=SIGNALS[:6])
    exhaustive.tune(split.validation, method="lightgbm")
    pooled = fit(ds, split, signals=SIGNALS[:6], pool=SMALL_POOL)
    report = pooled.tune(split.validation, method="lightgbm")
    assert report["learned"]["best_iteration"] > 0 and pooled.ranker is not None
    hr = {name: hit_rate(r.true_item_ranks(split.test), 10) for name, r in (("pool", pooled), ("all", exhaustive))}
    assert hr["pool"] > 0.5 and hr["pool"] >= hr["all"] - 0.05, hr
    requests = [(t.user_id, t.now) for t in split.test[:40]]
    together = pooled.retrieve_many(requests, k=10)
    for (user, now), got in list(zip(requests, together))[::7]:
        alone = pooled.retrieve(user, now, k=10)
        assert [c.item_id for c in alone] == [c.item_id for c in got]
    pooled.save(tmp_path / "r")
    loaded = TimeAwareRetriever.load(tmp_path / "r")
    assert loaded.pool is not None and loaded.pool.config == SMALL_POOL and loaded.describe()["pool"]["history"] == 30
    for a, b in zip(loaded.retrieve_many(requests, k=10), together):
        assert [c.item_id for c in a] == [c.item_id for c in b]
    linear = fit(ds, split, signals=SIGNALS[:6], pool=SMALL_POOL)
    linear.tune(split.validation, method="coordinate")
    assert hit_rate(linear.true_item_ranks(split.test), 10) > 0.5


def test_pool_auto_pools_only_large_catalogues(checkins, monkeypatch):
    _, ds, split = checkins
    assert fit(ds, split, signals=SIGNALS[:2]).pool is None
    assert fit(ds, split, signals=SIGNALS[:2], pool=None).pool is None
    monkeypatch.setattr(retriever_module, "POOL_AUTO_ITEMS", len(ds.catalog) - 1)
    r = fit(ds, split, signals=SIGNALS[:2])
    assert r.pool is not None and r.batch_size == retriever_module.POOL_BATCH
    with pytest.raises(ValueError, match="unknown pool setting"):
        TimeAwareRetriever(pool={"histroy": 5})


def test_pack_rows_left_aligns_each_request_s_own_pool():
    own = np.array([[True, False, True, True], [False, True, False, False]])
    values = np.arange(8, dtype=float).reshape(2, 4)
    exclude = np.array([[False, False, True, False], [False, False, False, False]])
    packed, packed_exclude, true_slot = pack_rows(own, {"v": values}, exclude, np.array([3, 0]))
    np.testing.assert_array_equal(packed["v"], [[0, 2, 3, 0], [5, 0, 0, 0]])
    np.testing.assert_array_equal(packed_exclude, [[False, True, False, True], [False, True, True, True]])
    np.testing.assert_array_equal(true_slot, [2, 3])  # the second row's true item is not in its pool: padding


def test_an_eval_retriever_pipeline_takes_its_pool_settings(checkins):
    from promptrec.eval.config import PipelineConfig
    from promptrec.eval.pipelines import fit_score_model

    _, ds, split = checkins
    p = PipelineConfig("pooled", "retriever", {"signals": list(SIGNALS[:2]), "tune": False, "pool": {"popular": 7}})
    model = fit_score_model(p, split, ds.catalog, None, seed=0)
    assert model.pool is not None and model.pool.config.popular == 7 and model.pool.config.history == 1000
    assert fit_score_model(PipelineConfig("plain", "retriever", {"signals": list(SIGNALS[:2]), "tune": False}),
                           split, ds.catalog, None, seed=0).pool is None  # "auto": this catalogue is small


def test_the_fresh_source_holds_the_newest_items_released_before_now():
    unknown = np.iinfo(np.int64).min
    release = np.array([50, unknown, 10, 40, 70, 30, unknown, 60])
    pool = CandidatePool(PoolConfig())
    assert sorted(pool._newest_before(release, 55, 3).tolist()) == [0, 3, 5]  # released at 50, 40, 30
    assert sorted(pool._newest_before(release, 71, 2).tolist()) == [4, 7]
    assert pool._newest_before(release, 10, 3).tolist() == []  # released at 10: not before now


def test_a_pool_s_linear_scores_take_the_catalogue_s_scale_from_the_reference_sample(checkins):
    """With the whole catalogue as the sample a pool's linear scores are the exhaustive ones on its items; a third
    of it comes closer to them than z-scores over the pool alone (reference 0), which weigh the signals otherwise."""
    _, ds, split = checkins
    exhaustive = fit(ds, split, signals=SIGNALS[:6])
    exhaustive.tune(split.validation, method="coordinate")
    targets = split.test[:40]
    want = exhaustive.score_targets(targets)
    error = {}
    for reference in (len(ds.catalog), len(ds.catalog) // 3, 0):
        pooled = fit(ds, split, signals=SIGNALS[:6], pool=replace(SMALL_POOL, reference=reference))
        pooled.weights = exhaustive.weights
        got = pooled.score_targets(targets)
        ranked = np.isfinite(got)
        assert ranked.sum() < 0.8 * np.isfinite(want).sum()  # real subsets
        error[reference] = float(np.abs(got[ranked] - want[ranked]).mean())
    assert error[len(ds.catalog)] < 1e-5, error
    assert error[len(ds.catalog) // 3] < 0.5 * error[0], error


def test_pooled_columns_spread_the_rest_of_the_catalogue_over_the_sampled_items_outside_each_pool():
    pool = CandidatePool(PoolConfig(reference=4))
    pool.reference = np.array([1, 5, 7, 9])
    cols = pool.columns([np.array([1, 2, 3]), np.array([4, 5])], n_items=20)
    np.testing.assert_array_equal(cols.items, [1, 2, 3, 4, 5, 7, 9])
    np.testing.assert_array_equal(cols.own, [[1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0, 0]])
    np.testing.assert_allclose(cols.weight, [[1, 1, 1, 0, 17 / 3, 17 / 3, 17 / 3], [6, 0, 0, 1, 1, 6, 6]])
    x = np.array([[3.0, 1.0, 4.0, 1.0, 5.0]])  # integer weights count a value that many times
    np.testing.assert_allclose(standardize(x, weight=np.array([[1, 2, 1, 3, 1]]))[0, [0, 1, 2, 4]],
                               standardize(np.array([[3.0, 1, 1, 4, 1, 1, 1, 5]]))[0, [0, 1, 3, 7]], rtol=1e-6)
