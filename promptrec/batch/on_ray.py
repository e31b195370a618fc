"""The Ray Data runner: batches of users flow through ``map_batches`` to a pool of actors, each of which
loads the saved retriever once (and owns an LLM engine, or calls a vLLM server); outcomes stream back to
the driver, which writes them. Local Ray by default, an existing cluster with ``address``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd

from promptrec.batch.types import BatchConfig
from promptrec.batch.worker import BatchOutcome, BatchWorker

# every worker loads the retriever (and maybe an LLM engine) before batches are dispatched, so the work is
# shared by the whole pool; a pool the cluster cannot place in this time fails instead of running on fewer
ACTOR_START_TIMEOUT_S = 900


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def run_on_ray(batches: pd.DataFrame, retriever_path: str, config: BatchConfig, *, workers: int = 1,
               address: str | None = None, cpus_per_worker: float = 1.0) -> Iterator[BatchOutcome]:
    import ray

    owner = not ray.is_initialized()  # else: the caller's Ray session (and cluster) is used as it is
    if owner:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield from _stream(batches, retriever_path, config, workers, cpus_per_worker)
    finally:
        if owner:
            ray.shutdown()


def _stream(batches: pd.DataFrame, retriever_path: str, config: BatchConfig, workers: int,
            cpus_per_worker: float) -> Iterator[BatchOutcome]:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar over batches
    ctx.verbose_progress = False
    ctx.execution_options.preserve_order = False
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    dataset = ray.data.from_items(batches.to_dict("records"), override_num_blocks=len(batches))
    outcomes = dataset.map_batches(
        BatchWorker, fn_constructor_kwargs={"retriever_path": retriever_path, "config": config},
        batch_size=1, batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
        num_cpus=cpus_per_worker)
    # a worker's exceptions come back as failed outcomes, after its own retries
    for frame in outcomes.iter_batches(batch_size=1, batch_format="pandas", prefetch_batches=0):
        for row in frame.to_dict("records"):
            yield BatchOutcome(**{k: (None if _missing(v) else v) for k, v in row.items()})


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)
