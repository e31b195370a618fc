"""A retrieved candidate: what the reranker receives and what explains it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    """One candidate item for one user at one time.

    ``components`` holds each signal's weighted contribution; they add up to ``score``.
    """

    item_id: str
    score: float
    rank: int
    components: dict[str, float] = field(default_factory=dict)
