"""Audience: how many different people use each item, and how much of its use is the same people coming back.

Two items with the same number of events can be one person's home and a station half the city passes
through; a user new to both is far more likely to go to the second. Counted on the training events (what
``fit`` sees, so strictly before every validation and test target).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, user_item_counts


class AudienceSignal(Signal):
    """Score: log(1 + distinct users of the item). Features add log(events per user) (0 where unused)."""

    scores_items = True

    def __init__(self):
        super().__init__("audience", {})
        self.users: np.ndarray | None = None
        self.events_per_user: np.ndarray | None = None

    def fit(self, data: FitData) -> None:
        _, counts = user_item_counts(data)
        events = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
        users = np.bincount(counts.indices, minlength=data.n_items).astype(np.float64)
        self.load_state({"users": users, "events_per_user": events / np.maximum(users, 1.0)})

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        users = self.users if items is None else self.users[items]
        return np.broadcast_to(np.log1p(users), (len(queries), len(users))).copy()

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        repeat = np.log(np.maximum(self.events_per_user if items is None else self.events_per_user[items], 1.0))
        return {"audience": self.score(queries, log, items),
                "audience_events_per_user": np.broadcast_to(repeat, (len(queries), len(repeat))).copy()}

    def state(self) -> dict[str, Any]:
        return {"users": self.users, "events_per_user": self.events_per_user}

    def load_state(self, state: dict[str, Any]) -> None:
        self.users, self.events_per_user = state["users"], state["events_per_user"]
