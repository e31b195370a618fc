"""Content: similarity of item embeddings to what the user consumed, recency-weighted."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, recency_weights


class ContentSignal(Signal):
    """Cosine similarity to a recency-decayed profile of the history's item embeddings, plus the most
    recent items as separate interest vectors (max-merged)."""

    needs_item_vectors = True
    scores_items = True

    def __init__(self, half_life_days: float = 30.0, recent_queries: int = 3, recent_weight: float = 0.5):
        super().__init__("content", {"half_life_days": half_life_days, "recent_queries": recent_queries,
                                     "recent_weight": recent_weight})
        self.vectors: np.ndarray | None = None

    def fit(self, data: FitData) -> None:
        if data.item_vectors is None:
            raise ValueError("the content signal needs item vectors: pass an ItemIndex to fit(), or disable it.")
        self.vectors = np.ascontiguousarray(data.item_vectors, dtype=np.float32)

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        p = self.params
        columns = self.vectors if items is None else self.vectors[items]
        d = self.vectors.shape[1]
        profiles = np.zeros((len(queries), d), dtype=np.float32)
        for i, q in enumerate(queries):
            if len(q.codes):
                w = recency_weights(q.times, q.now_ns, p["half_life_days"]).astype(np.float32)
                profiles[i] = w @ self.vectors[q.codes]
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        profiles /= np.where(norms > 0, norms, 1)
        scores = profiles @ columns.T
        m = int(p["recent_queries"])
        if m > 0 and p["recent_weight"] > 0:
            # the last m items of every query in one product: (queries x m slots) x items, max over the slots
            last = np.full((len(queries), m), -1, dtype=np.int64)
            for i, q in enumerate(queries):
                tail = q.codes[-m:]
                last[i, m - len(tail):] = tail
            sims = (self.vectors[last.ravel()] @ columns.T).reshape(len(queries), m, -1)
            sims[last < 0] = -1.0  # empty slots (short histories): no interest vector
            recent = sims.max(axis=1)
            scores = (1 - p["recent_weight"]) * scores + p["recent_weight"] * recent
        return scores

    def state(self) -> dict[str, Any]:
        return {"vectors": self.vectors}

    def load_state(self, state: dict[str, Any]) -> None:
        self.vectors = state["vectors"]
