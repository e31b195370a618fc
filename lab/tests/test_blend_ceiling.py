"""lab/blend_ceiling.py: ranks from grouped candidate scores, a truth outside the candidates a miss, and models
cross-fitted on the other folds only."""

from types import SimpleNamespace

import numpy as np
import pytest

import blend_ceiling as ceiling  # lab/, on sys.path by lab/conftest.py


def test_hits_rank_each_group_and_count_left_out_targets_as_misses():
    # three queries with the truth among their candidates (ranks 0, 3, 11) and one without: 4 targets
    scores = np.concatenate([[0.9, 0.1], [0.5, 0.7, 0.3, 0.6], np.arange(12.0)])
    labels = np.concatenate([[1, 0], [0, 0, 1, 0], np.eye(12, dtype=int)[0]])
    got = ceiling.hits(scores, labels, np.array([2, 4, 12]), n_targets=4)
    assert got["Acc@1"] == 0.25 and got["Acc@10"] == 0.5
    assert got["NDCG@10"] == pytest.approx((1 + 1 / np.log2(5)) / 4)


def test_cross_fitting_scores_each_fold_with_a_model_that_never_saw_it():
    rng = np.random.default_rng(0)
    groups = np.full(60, 5)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    labels = np.zeros(300, int)
    labels[np.arange(60) * 5 + rng.integers(0, 5, 60)] = 1
    x[labels == 1, 0] += 3  # feature 0 tells the truth
    rows = SimpleNamespace(features=x, labels=labels, groups=groups)
    params = {"objective": "lambdarank", "min_data_in_leaf": 5, "num_leaves": 4, "verbose": -1, "num_threads": 1,
              "seed": 0, "deterministic": True}
    folds = np.arange(60) * 3 // 60
    pred = ceiling.cross_fitted(rows, folds, params, rounds=20)
    assert ceiling.hits(pred, labels, groups, 60)["Acc@1"] > 0.8
    # a fold's scores depend only on the other folds: new labels in fold 0 leave its scores alone, not the others'
    relabelled = labels.copy()
    relabelled[:100] = np.roll(labels[:100].reshape(20, 5), 1, axis=1).ravel()
    again = ceiling.cross_fitted(SimpleNamespace(features=x, labels=relabelled, groups=groups), folds, params, 20)
    np.testing.assert_array_equal(again[:100], pred[:100])
    assert not np.allclose(again[100:], pred[100:])
