"""Normalising signals and tuning their blend weights on a validation split.

Tuning method (documented in the README): every enabled signal is z-scored per query
over the catalogue (seen items excluded); the blend is the weighted sum. Weights are found
by coordinate ascent on validation targets (held out in time): starting from equal weights,
each weight in turn is set to the grid value that maximises the objective (NDCG@10 by
default) with the others fixed; rounds repeat until no weight changes (at most
``rounds``). The search is deterministic, so the same data give the same weights.
"""

from __future__ import annotations

import numpy as np

from promptrec.metrics import ndcg_gains, true_ranks

GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def standardize(raw: np.ndarray, exclude: np.ndarray | None = None, weight: np.ndarray | None = None) -> np.ndarray:
    """Per-row z-scores over the items not excluded (excluded cells become 0); with ``weight`` (same shape), the
    mean and spread are weighted (a candidate pool's estimate of the catalogue's: promptrec.retriever.pool)."""
    x = np.asarray(raw, dtype=np.float32).copy()
    if exclude is not None:
        x[exclude] = np.nan
    if weight is None:
        mean = np.nanmean(x, axis=1, keepdims=True)
        std = np.nanstd(x, axis=1, keepdims=True)
    else:
        w = np.where(np.isnan(x), 0.0, weight).astype(np.float64)
        v = np.nan_to_num(x.astype(np.float64), nan=0.0)
        total = np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        mean = (w * v).sum(axis=1, keepdims=True) / total
        std = np.sqrt((w * (v - mean) ** 2).sum(axis=1, keepdims=True) / total)
        mean, std = mean.astype(np.float32), std.astype(np.float32)
    z = (x - mean) / np.where(std > 1e-12, std, 1.0)
    return np.nan_to_num(z, nan=0.0)


def blend(z: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    names = [n for n in z if weights.get(n, 0.0) != 0.0]
    if not names:
        return np.zeros_like(next(iter(z.values())))
    total = weights[names[0]] * z[names[0]]
    for n in names[1:]:
        total = total + weights[n] * z[n]
    return total


def objective_values(scores: np.ndarray, true_cols: np.ndarray, exclude: np.ndarray, objective: str) -> np.ndarray:
    """Each target's objective (``ndcg@K`` or ``recall@K``) under full ranking of ``scores``."""
    ranks = true_ranks(np.where(exclude, -np.inf, scores), true_cols)
    kind, _, k = objective.lower().partition("@")
    k = int(k or 10)
    if kind == "ndcg":
        return ndcg_gains(ranks, k)
    if kind in ("recall", "hr"):
        return (ranks < k).astype(float)
    raise ValueError(f"unknown objective {objective!r}; use ndcg@K or recall@K.")


def objective_value(scores: np.ndarray, true_cols: np.ndarray, exclude: np.ndarray, objective: str) -> float:
    values = objective_values(scores, true_cols, exclude, objective)
    return float(values.mean()) if len(values) else 0.0


def tune_weights(z: dict[str, np.ndarray], true_cols: np.ndarray, exclude: np.ndarray, *,
                 objective: str = "ndcg@10", grid: tuple[float, ...] = GRID, rounds: int = 4) -> tuple[dict[str, float], list[dict]]:
    """Coordinate ascent over ``grid`` for each signal's weight; returns the weights and the search trace."""
    weights = {n: 1.0 for n in z}
    best = objective_value(blend(z, weights), true_cols, exclude, objective)
    trace = [{"round": 0, "weights": dict(weights), "objective": best}]
    for r in range(1, rounds + 1):
        changed = False
        for name in z:
            for value in grid:
                if value == weights[name]:
                    continue
                trial = {**weights, name: value}
                if not any(trial.values()):
                    continue
                score = objective_value(blend(z, trial), true_cols, exclude, objective)
                if score > best + 1e-9:
                    best, weights, changed = score, trial, True
            trace.append({"round": r, "signal": name, "weights": dict(weights), "objective": best})
        if not changed:
            break
    return weights, trace
