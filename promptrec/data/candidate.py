"""A retrieved candidate: what the reranker receives and what explains it (a data type every stage may use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One candidate item for one user at one time.

    ``components`` holds each signal's weighted contribution; they add up to ``score``.
    """

    item_id: str
    score: float
    rank: int
    components: dict[str, float] = field(default_factory=dict)


def order_by_score(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Positions sorted by score, best first; stable (ties keep their given order), scores that are not finite
    (items not recommendable at that time) last."""
    s = np.asarray(scores, dtype=float)
    return np.argsort(-np.where(np.isfinite(s), s, -np.inf), kind="stable")
