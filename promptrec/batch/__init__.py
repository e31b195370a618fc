"""Offline batch recommendations: the top-k for every user (or a list) at a time, retrieval plus optional LLM
reranking, written as Parquet; on Ray Data (local or a cluster) or in process, resumable batch by batch."""

from promptrec.batch.run import recommend_all
from promptrec.batch.types import BatchConfig, BatchReport, FailedBatch, RerankSpec

__all__ = ["BatchConfig", "BatchReport", "FailedBatch", "RerankSpec", "recommend_all"]
