"""Ranking metrics for one relevant item per query (held-out next event).

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


def ndcg(ranks: np.ndarray, k: int) -> float:
    r = np.asarray(ranks)
    return float(np.mean(np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0))) if len(r) else 0.0


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
