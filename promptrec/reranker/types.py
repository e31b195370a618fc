"""What crosses the reranker's boundary: requests, ranked results, and the record of every LLM call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from promptrec.data.candidate import Candidate


@dataclass
class RerankRequest:
    """A user's history (events strictly before ``now``), the candidates to order, ``now`` and, optionally,
    the request's full context (device, location), which the prompt templates see as ``context``."""

    history: pd.DataFrame | list
    candidates: list[Candidate]
    now: pd.Timestamp
    user_id: str = ""
    context: Any = None  # promptrec.context.Context
    evidence: dict[str, Any] | None = None  # item id -> CandidateEvidence (the retriever's facts for the prompt)

    @property
    def when(self) -> Any:
        """What the prompt builder takes: the context if there is one, else ``now``."""
        return self.context if self.context is not None else self.now


@dataclass
class LLMCall:
    """One prompt sent to the model and what came back (kept for explanations and audits)."""

    prompt: str
    output: str
    prompt_tokens: int
    output_tokens: int
    label_logprobs: dict[str, float] | None = None


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    rank: int
    score: float  # the final score (LLM, or fused with the retriever)
    llm_score: float
    retriever_score: float


@dataclass
class RankedList:
    """A permutation of exactly the input candidates, best first, with how it was made."""

    items: list[RankedItem]
    strategy: str
    backend: str
    raw_output: str = ""
    prompt_tokens: int = 0
    fell_back: bool = False
    calls: list[LLMCall] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]

    def __len__(self) -> int:
        return len(self.items)


def final_order(candidates: list[Candidate], ranked: RankedList | None) -> list[tuple[Candidate, float | None, float]]:
    """(candidate, LLM score or None, final score), best first: the LLM's order of the candidates it saw,
    then the rest in the retriever's order (all in the retriever's order without ``ranked``)."""
    if ranked is None:
        return [(c, None, c.score) for c in candidates]
    by_id = {c.item_id: c for c in candidates}
    done = {i.item_id for i in ranked.items}
    return ([(by_id[i.item_id], i.llm_score, i.score) for i in ranked.items] +
            [(c, None, c.score) for c in candidates if c.item_id not in done])
