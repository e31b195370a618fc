"""One batch worker: loads the saved retriever once (and, if asked, owns an LLM reranker), then turns
batches of (user, now) into recommendation rows. The same code runs in process and as a Ray Data actor."""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from promptrec.batch.types import BatchConfig, RerankSpec
from promptrec.context import Context
from promptrec.reranker.types import final_order

SCHEMA = pa.schema([("user_id", pa.string()), ("now", pa.timestamp("ns", tz="UTC")), ("rank", pa.int32()),
                    ("item_id", pa.string()), ("score", pa.float64()), ("retriever_score", pa.float64()),
                    ("llm_score", pa.float64()), ("reranked", pa.bool_()), ("reason", pa.string())])


@dataclass
class BatchOutcome:
    """A finished (or failed) batch: its rows as Parquet bytes, written as they are by the driver."""

    batch_id: int
    users: int
    parquet: bytes | None
    rows: int
    attempts: int
    seconds: float
    error: str | None = None
    worker: str = ""  # node and process that ran it


class BatchWorker:
    def __init__(self, retriever_path: str, config: BatchConfig):
        from promptrec.retriever.retriever import TimeAwareRetriever

        self.config = config
        self.retriever = TimeAwareRetriever.load(Path(retriever_path))
        self.reranker = None if config.rerank is None else _reranker(config.rerank, self.retriever, config.candidates)
        self.name = _worker_name()

    def recommend(self, user_ids: list[str], now_ns: list[int]) -> pd.DataFrame:
        """Rows (user_id, now, rank, item_id, scores, reranked, reason) for each (user, now), best first."""
        cfg = self.config
        contexts = [Context(pd.Timestamp(t, tz="UTC")) for t in now_ns]
        cands = self.retriever.retrieve_many(list(zip(user_ids, contexts)), k=max(cfg.k, cfg.candidates))
        ranked: list[Any] = [None] * len(user_ids)
        reasons = ["no LLM configured" if self.reranker is None else None] * len(user_ids)
        if self.reranker is not None:
            asked = [i for i, c in enumerate(cands) if c]
            for i in (i for i, c in enumerate(cands) if not c):
                reasons[i] = "no candidates"
            step = cfg.rerank.requests_per_call
            for start in range(0, len(asked), step):
                part = asked[start:start + step]
                requests = [self.reranker.request(
                    self.retriever.history(user_ids[i], before=contexts[i].now), cands[i][:cfg.candidates],
                    contexts[i], user_ids[i],
                    evidence=self.retriever.explain(user_ids[i], contexts[i], [c.item_id for c in cands[i][:cfg.candidates]]))
                            for i in part]
                for i, result in zip(part, self.reranker.rerank_many(requests)):
                    ranked[i] = result
        rows = []
        for user, ctx, user_cands, result, reason in zip(user_ids, contexts, cands, ranked, reasons):
            for r, (c, llm, score) in enumerate(final_order(user_cands, result)[:cfg.k]):
                rows.append((user, ctx.now, r + 1, c.item_id, score, c.score, llm, result is not None, reason))
        return pd.DataFrame(rows, columns=SCHEMA.names)

    def run_batch(self, batch_id: int, user_ids: list[str], now_ns: list[int]) -> BatchOutcome:
        """Recommend for one batch, trying up to 1 + retries times; a batch that still fails is reported."""
        t0, error = time.perf_counter(), None
        for attempt in range(1, self.config.retries + 2):
            try:
                frame = self.recommend(user_ids, now_ns)
                table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
                sink = io.BytesIO()
                pq.write_table(table, sink)
                return BatchOutcome(batch_id, len(user_ids), sink.getvalue(), len(frame), attempt,
                                    time.perf_counter() - t0, worker=self.name)
            except Exception as exc:  # reported with the batch, never dropped
                error = f"{type(exc).__name__}: {exc}"[:500]
        return BatchOutcome(batch_id, len(user_ids), None, 0, self.config.retries + 1, time.perf_counter() - t0, error,
                            self.name)

    def __call__(self, batches: pd.DataFrame) -> pd.DataFrame:
        """Ray Data ``map_batches``: one row per batch (batch_id, user_ids, now_ns) -> one row per outcome."""
        outcomes = [self.run_batch(int(b), list(map(str, u)), [int(t) for t in n])
                    for b, u, n in zip(batches["batch_id"], batches["user_ids"], batches["now_ns"])]
        return pd.DataFrame([vars(o) for o in outcomes])

    def close(self) -> None:
        if self.reranker is not None:
            self.reranker.close()


def _worker_name() -> str:
    """"node <id prefix> pid <pid>" inside Ray, else "local pid <pid>"."""
    node = "local"
    try:
        import ray

        if ray.is_initialized():
            node = "node " + ray.get_runtime_context().get_node_id()[:8]
    except ImportError:
        pass
    return f"{node} pid {os.getpid()}"


def _reranker(spec: RerankSpec, retriever: Any, candidates: int) -> Any:
    from promptrec.models import prepare_if_packaged
    from promptrec.reranker.reranker import reranker_for

    prepare_if_packaged(spec.model)
    options: dict[str, Any] = {"base_url": spec.base_url} if spec.backend == "openai" else {}
    if spec.backend == "vllm":
        options["gpu_memory_utilization"] = spec.gpu_memory_utilization
    return reranker_for(retriever, spec.backend, spec.model, spec.strategy, candidates=candidates,
                        bootstrap=spec.bootstrap, fusion=spec.fusion, adapter=spec.adapter, backend_options=options)
