"""What crosses the batch package's boundary: its settings and its report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from promptrec.models import DEFAULT_LLM


@dataclass(frozen=True)
class RerankSpec:
    """How each worker builds its LLM reranker (each worker owns one engine, or calls a server)."""

    backend: str = "vllm"  # vllm (in-process engine), openai (a vLLM server), transformers
    model: str = DEFAULT_LLM
    strategy: str = "label_scoring"
    bootstrap: int = 1
    fusion: float = 0.0
    adapter: str | None = None
    base_url: str = "http://127.0.0.1:8000/v1"  # for backend="openai"
    gpu_memory_utilization: float = 0.3  # for backend="vllm"
    requests_per_call: int = 16  # users' prompts sent to the engine together


@dataclass(frozen=True)
class BatchConfig:
    k: int = 10  # recommendations per user
    candidates: int = 20  # retrieved candidates the LLM orders
    batch_size: int = 64  # users per batch: the unit of work, of retries and of resuming
    retries: int = 2  # further attempts of a failed batch before it is reported
    rerank: RerankSpec | None = None  # None: the retriever's order

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FailedBatch:
    batch_id: int
    users: int
    attempts: int
    error: str


@dataclass
class BatchReport:
    """What a run did. ``failed`` batches have no output yet: running the same command again retries them."""

    output: str
    runner: str  # "ray (N workers at ADDRESS)" or "in-process"
    users: int
    batches: int
    already_done: int  # batches found finished in the output (resumed run)
    computed: int
    failed: list[FailedBatch] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    batches_per_worker: dict[str, int] = field(default_factory=dict)

    @property
    def users_per_s(self) -> float:
        done = self.computed * (self.users / self.batches) if self.batches else 0.0
        return round(done / self.seconds, 2) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "users_per_s": self.users_per_s}
