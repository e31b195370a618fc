"""The in-process runner: one worker in this process, batch after batch (no Ray needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from promptrec.batch.types import BatchConfig
from promptrec.batch.worker import BatchOutcome, BatchWorker


def run_in_process(batches: pd.DataFrame, retriever_path: str, config: BatchConfig) -> Iterator[BatchOutcome]:
    worker = BatchWorker(retriever_path, config)
    try:
        for b, users, nows in zip(batches["batch_id"], batches["user_ids"], batches["now_ns"]):
            yield worker.run_batch(int(b), list(users), list(nows))
    finally:
        worker.close()
