"""Sequence with time gaps: what follows the user's last items, weighted by how long ago each was.

Two views: item-to-item transitions learned from everybody's training sequences, and the user's
own transitions (what this user did after the item they were last at), both applied to the most
recent items with weights that decay by position and by the time elapsed since each item (a place
left ten minutes ago says more about the next one than a place visited three days ago).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.signals.base import HOUR_NS, FitData, Query, Signal, n_columns


class TransitionSignal(Signal):
    """Item-to-item transitions from training sequences (which items follow which, within ``window`` steps),
    applied to the user's last items weighted by position and elapsed time (``gap_half_life_hours``;
    0 turns the time weighting off). ``pair_half_life_hours`` (0: off) also weighs each training pair by the time
    between its two events, so that one outing's steps count more than last night's bar before this
    morning's office (sessions, without a session column)."""

    scores_items = True

    def __init__(self, window: int = 5, step_decay: float = 0.8, backward: float = 0.5, source_norm: float = 0.75,
                 last_items: int = 10, position_decay: float = 0.7, gap_half_life_hours: float = 24.0,
                 pair_half_life_hours: float = 0.0):
        super().__init__("transition", {"window": window, "step_decay": step_decay, "backward": backward,
                                        "source_norm": source_norm, "last_items": last_items,
                                        "position_decay": position_decay, "gap_half_life_hours": gap_half_life_hours,
                                        "pair_half_life_hours": pair_half_life_hours})
        self.matrix: sp.csr_matrix | None = None

    def fit(self, data: FitData) -> None:
        p = self.params
        self.matrix = self.matrix_from_pairs(step_pairs(data, int(p["window"]), p.get("pair_half_life_hours", 0) or 0),
                                             data.n_items)

    def matrix_from_pairs(self, step_matrices: Iterable[sp.csr_matrix], n_items: int) -> sp.csr_matrix:
        """The transition matrix from the per-step pair matrices (step 1, 2, ...) of :func:`step_pairs`, or their
        sums over shards of users (promptrec.retriever.ray_fit)."""
        p, n = self.params, n_items
        m = sp.csr_matrix((n, n), dtype=np.float64)
        for step, pairs in enumerate(step_matrices, 1):
            weight = p["step_decay"] ** (step - 1)
            m = m + weight * (pairs + p["backward"] * pairs.T.tocsr())  # one step at a time: memory of one step
        out_weight = np.asarray(m.sum(axis=1)).ravel() + 1.0
        return (sp.diags(out_weight ** -p["source_norm"]) @ m).tocsr().astype(np.float32)

    def _source_weights(self, q: Query) -> tuple[np.ndarray, np.ndarray]:
        """The last items (most recent first) and their weights: position decay x elapsed-time decay."""
        p = self.params
        last = q.codes[-int(p["last_items"]):][::-1]
        w = p["position_decay"] ** np.arange(len(last))
        h = p.get("gap_half_life_hours", 0) or 0
        if h > 0 and len(last):
            elapsed = (q.now_ns - q.times[-len(last):][::-1]).astype(np.float64) / HOUR_NS
            w = w * np.exp2(-np.clip(elapsed, 0, None) / h)
        return last, w

    def follows(self, queries: list[Query], first_only: bool = False) -> sp.csr_matrix:
        """(batch x items) sparse: the transitions from each query's last items (or last item), weighted."""
        rows, cols, vals = [], [], []
        for i, q in enumerate(queries):
            last, w = self._source_weights(q)
            if first_only:
                last, w = last[:1], w[:1]
            rows.append(np.full(len(last), i))
            cols.append(last)
            vals.append(w)
        # only the matrix rows of the batch's last items take part: a product with the whole matrix would convert
        # all of it to the weights' float64 on every call (O(transitions), not O(batch)); the columns keep their
        # order, so the sums are the same numbers
        used, local = np.unique(np.concatenate(cols).astype(np.int64), return_inverse=True)
        weights = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), local.ravel())),
                                shape=(len(queries), len(used)))
        return weights @ self.matrix[used]

    def _global(self, queries: list[Query], first_only: bool = False, items: np.ndarray | None = None) -> np.ndarray:
        follows = self.follows(queries, first_only)
        return np.asarray((follows if items is None else follows.tocsc()[:, items]).todense())

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        return np.log1p(self._global(queries, items=items))

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Global transitions from the last items and from the last item alone; the user's own
        transitions from the last item (share of what followed it in their history)."""
        personal = np.zeros((len(queries), n_columns(log, items)))
        for i, q in enumerate(queries):
            if len(q.codes) > 1:
                after = q.codes[1:][q.codes[:-1] == q.codes[-1]]
                if len(after):
                    share = np.bincount(after, minlength=self.matrix.shape[0]) / len(after)
                    personal[i] = share if items is None else share[items]
        return {"transition": self.score(queries, log, items),
                "transition_last": np.log1p(self._global(queries, True, items)),
                "transition_personal": personal}

    def state(self) -> dict[str, Any]:
        return {"matrix": self.matrix}

    def load_state(self, state: dict[str, Any]) -> None:
        self.matrix = state["matrix"]


def step_pairs(data: FitData, window: int, pair_half_life_hours: float = 0.0):
    """For step = 1 .. ``window``: the (items x items) sparse sums of the training pairs (an item, the item
    ``step`` events later by the same user), each pair weighted by the time between its events when
    ``pair_half_life_hours`` > 0 (else counted). Sums over users: a log split by user adds up to the same."""
    codes, n = np.asarray(data.train_codes, dtype=np.int32), data.n_items
    users = np.asarray(data.train_users)
    run = np.zeros(len(users), dtype=np.int32)  # the training log is sorted by user: one number per user's run
    if len(users) > 1:
        np.cumsum(users[1:] != users[:-1], out=run[1:])
    times = data.train_times if pair_half_life_hours > 0 else None
    for step in range(1, window + 1):
        a = np.flatnonzero(run[:-step] == run[step:])
        if times is None:
            w = np.ones(len(a))
        else:  # the time between the pair's events (sorted by user, then time: never negative)
            w = np.exp2(-(times[a + step] - times[a]).astype(np.float64) / (pair_half_life_hours * HOUR_NS))
        yield sp.csr_matrix((w, (codes[a], codes[a + step])), shape=(n, n))
