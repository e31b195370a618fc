"""lab/llm_fusion_ceiling.py: ranks with the retriever's tail, the label prior, and a real gain found."""

import numpy as np

import llm_fusion_ceiling as ceiling  # lab/, on sys.path by lab/conftest.py


def requests(llm: np.ndarray, truth: np.ndarray, tail: int = 50) -> "ceiling.Requests":
    n, k = llm.shape
    retriever = np.tile(-np.arange(k, dtype=float), (n, 1))  # candidates come in the retriever's order
    return ceiling.Requests(llm, retriever, truth, np.full(n, tail))


def test_ranks_keep_the_retriever_order_on_ties_and_its_rank_outside_the_candidates():
    req = requests(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]), np.array([1, 1, -1]), tail=37)
    np.testing.assert_array_equal(ceiling.ranks_of(req.llm, req), [2, 1, 37])


def test_an_llm_that_only_favours_early_labels_adds_nothing_once_its_prior_is_removed():
    rng = np.random.default_rng(0)
    bias = -0.5 * np.arange(8.0)
    req = requests(np.tile(bias, (200, 1)) + rng.normal(0, 0.01, (200, 8)), rng.integers(0, 8, 200))
    prior = ceiling.position_prior(req)
    np.testing.assert_allclose(prior, bias, atol=0.01)
    assert np.abs(req.llm - prior).max() < 0.05


def test_an_llm_that_knows_something_the_retriever_does_not_beats_it():
    rng = np.random.default_rng(1)
    n, k = 400, 10
    truth = np.minimum(rng.geometric(0.3, n) - 1, k - 1)  # the retriever's order is right more often early
    llm = np.tile(-0.6 * np.arange(k, dtype=float), (n, 1)) + rng.normal(0, 1, (n, k))
    llm[np.arange(n), truth] += 2.0  # and the LLM sees the truth
    valid, test = requests(llm[:200], truth[:200]), requests(llm[200:], truth[200:])
    rows = ceiling.summary(ceiling.compare(valid, test), seed=0)
    base = rows["the retriever's order"]
    assert base["lead NDCG@10"] == 0
    assert rows["fused as `promptrec eval` fuses"]["weight"] < 1.0
    for name in ("fused as `promptrec eval` fuses", "the LLM minus its label prior, fused",
                 "LightGBM over both, trained on the validation requests"):
        assert rows[name]["lead NDCG@10 ci95"][0] > 0, name


def test_an_llm_that_knows_nothing_is_not_fused():
    rng = np.random.default_rng(2)
    n, k = 400, 10
    truth = np.minimum(rng.geometric(0.3, n) - 1, k - 1)
    llm = rng.normal(0, 1, (n, k))
    rows = ceiling.summary(ceiling.compare(requests(llm[:200], truth[:200]), requests(llm[200:], truth[200:])), 0)
    assert rows["fused as `promptrec eval` fuses"]["weight"] == 1.0
    assert rows["the LLM alone"]["lead NDCG@10 ci95"][1] < 0
