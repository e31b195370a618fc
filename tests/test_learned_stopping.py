"""The learned blend's early stopping: a smoothed stop-set curve, and the plain rule equal to LightGBM's own."""

import lightgbm as lgb
import numpy as np
import pytest

from promptrec.retriever.learned import LearnedBlend, RankerConfig, RankingRows, _best_round, _smoothed


def _rows(rng, queries: int, per: int = 20, features: int = 6) -> RankingRows:
    X = rng.normal(size=(queries * per, features)).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=1.5, size=len(X))
    labels = np.zeros(len(X), np.int32)
    labels[np.arange(queries) * per + score.reshape(queries, per).argmax(axis=1)] = 1
    return RankingRows(X, labels, np.full(queries, per))


def test_smoothing_is_a_centred_moving_average_and_picks_the_best_stretch():
    np.testing.assert_allclose(_smoothed([1, 3, 2, 5, 4], 3), [2, 2, 10 / 3, 11 / 3, 4.5])
    assert _best_round([1, 3, 2, 5, 4], 1) == 4
    assert _best_round([1, 3, 2, 5, 4], 3) == 5
    spike = [0.1, 0.1, 0.9, 0.1, 0.1, 0.5, 0.6, 0.6, 0.6]
    assert _best_round(spike, 1) == 3 and _best_round(spike, 3) == 8  # a lone early spike is not the best stretch


def test_window_one_stops_where_lightgbms_own_early_stopping_does():
    rng = np.random.default_rng(0)
    fit, stop = _rows(rng, 300), _rows(rng, 120)
    names = [f"f{i}" for i in range(fit.features.shape[1])]
    config = RankerConfig(early_stopping_rounds=10, max_rounds=400, min_data_in_leaf=20, stop_window=1)
    ours = LearnedBlend.train(fit, stop, names, {n: n for n in names}, config)
    train_set = lgb.Dataset(fit.features, fit.labels, group=fit.groups, feature_name=names)
    theirs = lgb.train(config.lightgbm_params(), train_set, num_boost_round=config.max_rounds,
                       valid_sets=[lgb.Dataset(stop.features, stop.labels, group=stop.groups, reference=train_set)],
                       callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])
    assert ours.report["best_iteration"] == theirs.best_iteration < config.max_rounds
    np.testing.assert_allclose(ours.predict(stop.features), theirs.predict(stop.features, num_iteration=theirs.best_iteration))
    curve = ours.report["stop_ndcg@10_curve"]
    assert len(curve) == theirs.best_iteration + config.early_stopping_rounds


def test_smoothed_stopping_takes_the_best_smoothed_round_and_waits_past_it():
    rng = np.random.default_rng(1)
    fit, stop = _rows(rng, 300), _rows(rng, 120)
    names = [f"f{i}" for i in range(fit.features.shape[1])]
    config = RankerConfig(early_stopping_rounds=10, max_rounds=400, min_data_in_leaf=20, stop_window=9)
    blend = LearnedBlend.train(fit, stop, names, {n: n for n in names}, config)
    curve = blend.report["stop_ndcg@10_curve"]
    smooth = _smoothed(curve, 9)
    best = blend.report["best_iteration"]
    assert smooth[best - 1] >= smooth.max() - 1e-4  # the report's curve is rounded to 4 places
    assert len(curve) >= best + config.early_stopping_rounds or len(curve) == config.max_rounds


@pytest.mark.parametrize("window", [0, 2, -1, 1.5])
def test_stop_window_must_be_odd_and_positive(window):
    with pytest.raises(ValueError, match="stop_window"):
        RankerConfig(stop_window=window)
