"""Fusion of LLM and retriever scores within a request: (1 - a) * z(llm) + a * z(retriever), and the choice of
``a`` on validation ranks, which keeps the retriever's order unless the LLM's gain is beyond noise."""

from __future__ import annotations

import numpy as np

from promptrec.metrics import gain_beyond_noise, ndcg_gains

FUSION_GRID = tuple(float(a) for a in np.round(np.linspace(0, 1, 11), 2))  # weights of the retriever tried in fusion


def fuse(llm: np.ndarray, retriever: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * z(llm) + weight * z(retriever), z-scored within the request."""
    if weight <= 0:
        return llm.astype(float)
    return (1 - weight) * z_scores(llm) + weight * z_scores(retriever)


def fused_order(llm: np.ndarray, retriever: np.ndarray, weight: float) -> np.ndarray:
    """Candidate positions, best first, under :func:`fuse`; ties keep the given (retriever) order."""
    final = fuse(np.asarray(llm, dtype=float), np.asarray(retriever, dtype=float), weight)
    return np.lexsort((np.arange(len(final)), -final))


def choose_fusion(ranks_by_weight: dict[float, np.ndarray], alpha: float = 0.05) -> float:
    """The fusion weight for validation ranks (0-based, per request) at each weight.

    The weight with the best NDCG@10 wins only if its per-request gain over the retriever alone
    (weight 1.0) is beyond noise: a one-sided paired test at level ``alpha``, Bonferroni-corrected
    for the number of weights tried (picking the best of many flatters it). Otherwise the answer
    is 1.0, the retriever's order: a weak LLM is not allowed to make the ranking worse on the
    strength of a lucky validation sample.
    """
    if 1.0 not in ranks_by_weight:
        raise ValueError("the fusion grid must include 1.0 (the retriever alone) as the reference.")
    gain = {a: ndcg_gains(r, 10) for a, r in ranks_by_weight.items()}
    best = max(gain, key=lambda a: (gain[a].mean(), -abs(a - 0.5)))
    if best == 1.0:
        return 1.0
    return float(best) if gain_beyond_noise(gain[best] - gain[1.0], alpha, tests=len(gain) - 1) else 1.0


def z_scores(x: np.ndarray) -> np.ndarray:
    """``x`` standardised within the request (non-finite values just below the lowest finite one; constant -> 0)."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros_like(x)
    x = np.where(finite, x, x[finite].min() - 1.0)
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)
