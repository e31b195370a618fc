"""Returns: how often people go back to places of each kind, and how often this user does.

People return to their gym, office and home and rarely to a museum; some users return to their restaurants,
others try a new one each time. The habit signal knows *which* places the user visits; this one tells the learned
blend how likely a visit of each kind is to be a return at all. Everybody's shares come from the training events
(what ``fit`` sees); the user's own from the history before ``now``. Features only: it proposes no candidates
(its scores are nearly constant over a kind of place, so its top N would be arbitrary places of the most
returned-to kinds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.data.repeats import returns_mask
from promptrec.retriever.signals.base import CategorySignal, FitData, Query, joined


class ReturnsSignal(CategorySignal):
    """Score: the user's share of returns among their events at items of each item's categories, smoothed toward
    everybody's share for those categories (``user_prior`` events); features add everybody's share (smoothed
    toward the overall share with ``prior`` events). Items without categories get the overall share."""

    scores_items = True
    proposes_candidates = False

    def __init__(self, prior: float = 20.0, user_prior: float = 5.0):
        super().__init__("returns", {"prior": prior, "user_prior": user_prior})
        self.category_share: np.ndarray | None = None  # per category
        self.overall_share = 0.0

    def fit(self, data: FitData) -> None:
        flags = returns_mask(data.train_users, data.train_codes)
        codes = np.asarray(data.train_codes, dtype=np.int64)
        self.fit_counts(np.bincount(codes, minlength=data.n_items),
                        np.bincount(codes[flags], minlength=data.n_items), data)

    def fit_counts(self, item_events: np.ndarray, item_returns: np.ndarray, data: FitData) -> None:
        """Fit from each item's training events and returns among them (counts, or their sums over shards of
        users: promptrec.retriever.ray_fit)."""
        super().fit(data)
        events, returns = np.asarray(item_events, np.float64), np.asarray(item_returns, np.float64)
        n, r = self.cat_item @ events, self.cat_item @ returns  # per category: each event's share of it
        total = int(np.sum(item_events))
        self.overall_share = int(np.sum(item_returns)) / total if total else 0.0
        self.category_share = (r + self.params["prior"] * self.overall_share) / (n + self.params["prior"])

    def _by_item(self, per_category: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """(batch x categories) shares -> (batch x items): each item's categories averaged, else the overall share."""
        item_cat = self.item_cat if items is None else self.item_cat[items]
        covered = np.asarray(item_cat.sum(axis=1)).ravel()
        return np.asarray((item_cat @ per_category.T).T) + (1.0 - covered) * self.overall_share

    def _user_shares(self, queries: list[Query]) -> np.ndarray:
        """(batch x categories): each user's share of returns per category before ``now``, smoothed (the whole batch
        in one sparse product)."""
        m = self.params["user_prior"]
        rows = np.repeat(np.arange(len(queries)), [len(q.codes) for q in queries])
        codes = joined([q.codes for q in queries])
        flags = returns_mask(rows, codes).astype(np.float64)
        shape = (len(queries), self.item_cat.shape[0])
        n = (sp.csr_matrix((np.ones(len(codes)), (rows, codes)), shape=shape) @ self.item_cat).toarray()
        r = (sp.csr_matrix((flags, (rows, codes)), shape=shape) @ self.item_cat).toarray()
        return (r + m * self.category_share) / (n + m)

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        return self._by_item(self._user_shares(queries), items)

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        everybody = self._by_item(self.category_share[None, :], items)
        return {"returns": self.score(queries, log, items),
                "returns_everybody": np.broadcast_to(everybody, (len(queries), everybody.shape[1])).copy()}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "category_share": self.category_share, "overall_share": np.array([self.overall_share])}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.category_share = state.get("category_share")
        self.overall_share = float(np.asarray(state.get("overall_share", [0.0]))[0])
