"""Similar users: items that users with a history like this user's chose (user-based collaborative
filtering, a classic next-place baseline). It reaches items new to the user, which the habit and
user-frequency signals cannot.

Neighbours are the training users whose item profiles (counts, log-damped, inverse user frequency
weighted, unit length) are closest in cosine to the profile of the user's history before ``now``;
the user's own training row is never a neighbour. Profiles of the other users come from the
training events only, so nothing after ``now`` is read for a temporal split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.signals.base import FitData, Query, Signal, user_item_counts


class NeighboursSignal(Signal):
    """Sum over the ``k`` most similar training users of similarity^``sharpness`` x their (log-damped,
    unit-length) item profile. ``features`` adds how many neighbours chose each item."""

    def __init__(self, k: int = 50, sharpness: float = 1.0):
        super().__init__("neighbours", {"k": k, "sharpness": sharpness})
        self.profiles: sp.csr_matrix | None = None  # training users x items, unit rows
        self.idf: np.ndarray | None = None
        self.user_rows: dict[str, int] = {}

    def fit(self, data: FitData) -> None:
        users, counts = user_item_counts(data)
        counts.data = np.log1p(counts.data)
        users_per_item = np.bincount(counts.indices, minlength=data.n_items)
        self.idf = np.log((1 + len(users)) / (1 + users_per_item)).astype(np.float32) + 1
        self.profiles = _unit_rows(counts @ sp.diags(self.idf))
        self.user_rows = {u: i for i, u in enumerate(users)}

    def _similar(self, queries: list[Query]) -> sp.csr_matrix:
        """(queries x training users) similarities of each query's ``k`` nearest neighbours."""
        n_items, k = self.profiles.shape[1], int(self.params["k"])
        rows, cols = [], []
        for i, q in enumerate(queries):
            rows.append(np.full(len(q.codes), i))
            cols.append(q.codes)
        mine = sp.csr_matrix((np.ones(sum(len(c) for c in cols), dtype=np.float32),
                              (np.concatenate(rows), np.concatenate(cols))), shape=(len(queries), n_items))
        mine.sum_duplicates()
        mine.data = np.log1p(mine.data)
        sims = (_unit_rows(mine @ sp.diags(self.idf)) @ self.profiles.T).toarray()
        for i, q in enumerate(queries):
            own = self.user_rows.get(q.user_id)
            if own is not None:
                sims[i, own] = 0.0
        if k < sims.shape[1]:
            cut = np.argpartition(-sims, k, axis=1)[:, k:]
            np.put_along_axis(sims, cut, 0.0, axis=1)
        return sp.csr_matrix(np.clip(sims, 0, None) ** float(self.params["sharpness"]))

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        return self.features(queries, log, count=False)["neighbours"]

    def features(self, queries: list[Query], log: Any, count: bool = True) -> dict[str, np.ndarray]:
        if not queries:
            empty = np.zeros((0, log.n_items))
            return {"neighbours": empty} | ({"neighbours_count": empty} if count else {})
        similar = self._similar(queries)
        out = {"neighbours": np.asarray((similar @ self.profiles).todense())}
        if count:
            chose = self.profiles.copy()
            chose.data[:] = 1.0
            out["neighbours_count"] = np.asarray(((similar > 0).astype(np.float32) @ chose).todense())
        return out

    def state(self) -> dict[str, Any]:
        users = np.array(sorted(self.user_rows, key=self.user_rows.get))
        return {"profiles": self.profiles, "idf": self.idf, "users": users}

    def load_state(self, state: dict[str, Any]) -> None:
        self.profiles, self.idf = state["profiles"], np.asarray(state["idf"])
        self.user_rows = {str(u): i for i, u in enumerate(state["users"])}


def _unit_rows(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m).tocsr()
