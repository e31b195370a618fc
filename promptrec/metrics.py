"""Ranking metrics for one relevant item per query (held-out next event); importable by every stage.

``rank`` is 0-based: the number of items scored strictly above the true item (ties count
against it, so a constant scorer earns nothing).
"""

from __future__ import annotations

import numpy as np


def true_ranks(scores: np.ndarray, true_cols: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true column; items tied with it are counted as above (pessimistic)."""
    scores = np.asarray(scores, dtype=np.float64)
    true = scores[np.arange(len(scores)), true_cols][:, None]
    above = (scores > true).sum(axis=1)
    ties = (scores == true).sum(axis=1) - 1
    return above + ties


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@k (= recall@k with one relevant item)."""
    return float(np.mean(np.asarray(ranks) < k)) if len(ranks) else 0.0


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """Each query's NDCG@k (one relevant item: 1 / log2(rank + 2) inside the top k, else 0)."""
    r = np.asarray(ranks, dtype=float)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def ndcg(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ndcg_gains(ranks, k))) if len(ranks) else 0.0


def gain_beyond_noise(diff: np.ndarray, alpha: float = 0.05, tests: int = 1) -> bool:
    """Whether per-query differences (candidate minus reference) are positive beyond noise: a
    one-sided paired z-test at level ``alpha``, Bonferroni-corrected for ``tests`` comparisons."""
    from statistics import NormalDist

    diff = np.asarray(diff, dtype=float)
    if len(diff) < 2:
        return False
    z = NormalDist().inv_cdf(1 - alpha / max(1, tests))
    return bool(diff.mean() > z * diff.std(ddof=1) / np.sqrt(len(diff)))


def mrr(ranks: np.ndarray, k: int | None = None) -> float:
    r = np.asarray(ranks, dtype=float)
    rr = 1.0 / (r + 1.0)
    if k is not None:
        rr = np.where(r < k, rr, 0.0)
    return float(np.mean(rr)) if len(r) else 0.0


def summarize(ranks: np.ndarray, ks: tuple[int, ...] = (1, 5, 10, 20, 50, 100)) -> dict[str, float]:
    out = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(ranks, k)
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    out["MRR"] = mrr(ranks)
    return out


def bootstrap_ci(ranks: np.ndarray, metric, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric(ranks)`` over ``n`` resamples of the queries (with replacement)."""
    r = np.asarray(ranks)
    if len(r) == 0:
        return (0.0, 0.0)
    idx = np.random.default_rng(seed).integers(0, len(r), (n, len(r)))
    vals = np.array([metric(r[i]) for i in idx])
    tail = (1 - level) / 2 * 100
    return float(np.percentile(vals, tail)), float(np.percentile(vals, 100 - tail))


def coverage(top_lists: list[list[str]], catalog_size: int) -> float:
    """Share of the catalogue that appears in at least one recommended list."""
    return len({i for lst in top_lists for i in lst}) / catalog_size if catalog_size else 0.0


def novelty(top_lists: list[list[str]], popularity: dict[str, float]) -> float:
    """Mean self-information -log2 p(item) of recommended items; ``popularity`` maps item to p (absent: unseen).

    Items never seen in training get the probability of one event, so they count as the most novel
    without dividing by zero.
    """
    floor = min((p for p in popularity.values() if p > 0), default=1.0)
    bits = [-np.log2(popularity.get(i, 0.0) or floor) for lst in top_lists for i in lst]
    return float(np.mean(bits)) if bits else 0.0


def intra_list_diversity(top_lists: list[list[str]], vectors: dict[str, np.ndarray]) -> float:
    """Mean pairwise cosine distance (1 - cos) between the items of each list, averaged over lists."""
    per_list = []
    for lst in top_lists:
        vs = np.array([vectors[i] for i in lst if i in vectors], dtype=np.float64)
        if len(vs) < 2:
            continue
        vs /= np.linalg.norm(vs, axis=1, keepdims=True).clip(1e-12)
        sim = vs @ vs.T
        m = len(vs)
        per_list.append(float((m * m - sim.sum()) / (m * (m - 1))))  # mean of 1 - cos over pairs i != j
    return float(np.mean(per_list)) if per_list else 0.0
