"""``recommend_all``: plan the batches, skip the finished ones, run the rest (Ray or in process), write."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from tqdm import tqdm

from promptrec import __version__
from promptrec.batch.output import BatchOutput
from promptrec.batch.types import BatchConfig, BatchReport, FailedBatch
from promptrec.batch.users import requested_users


def plan_batches(users: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """One row per batch: batch_id, user_ids, now_ns (``batch_size`` requests each, in the given order)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, len(users), batch_size)
    return pd.DataFrame({"batch_id": list(range(len(starts))),
                         "user_ids": [users["user_id"].iloc[s:s + batch_size].tolist() for s in starts],
                         "now_ns": [users["now_ns"].iloc[s:s + batch_size].tolist() for s in starts]})


def recommend_all(retriever_path: str | Path, out: str | Path, *, users: Sequence[str] | None = None,
                  users_file: str | Path | None = None, now: Any = None, config: BatchConfig | None = None,
                  runner: str = "auto", workers: int = 1, ray_address: str | None = None, overwrite: bool = False,
                  progress: bool = True) -> BatchReport:
    """Top-k for every user of the saved retriever (or ``users``, or a ``users_file`` with an optional
    per-user ``now`` column) at ``now``, written to ``out`` as Parquet parts. ``runner``: "ray", "local"
    (in process) or "auto" (Ray if installed). Rerunning the same call resumes: finished batches are kept."""
    from promptrec.batch.on_ray import ray_available, run_on_ray
    from promptrec.batch.local import run_in_process

    config = config or BatchConfig()
    retriever_path = Path(retriever_path).resolve()
    requests = requested_users(retriever_path, users, None if users_file is None else Path(users_file), now)
    batches = plan_batches(requests, config.batch_size)
    use_ray = runner == "ray" or (runner == "auto" and ray_available())
    if runner not in ("auto", "ray", "local"):
        raise ValueError(f"runner {runner!r}: choose auto, ray or local")
    if runner == "ray" and not ray_available():
        raise ImportError("the Ray runner needs Ray Data: pip install 'promptrec[scale]' (or 'ray[data]'), "
                          "or use runner='local'")
    output = BatchOutput(out, _manifest(retriever_path, requests, config), overwrite=overwrite)
    done = output.done()
    todo = batches[~batches["batch_id"].isin(done)].reset_index(drop=True)
    report = BatchReport(output=str(output.folder), users=len(requests), batches=len(batches),
                         already_done=len(done), computed=0,
                         runner=f"ray ({workers} worker(s){' at ' + ray_address if ray_address else ', local'})"
                         if use_ray else "in-process")
    t0 = time.perf_counter()
    if len(todo):
        outcomes = (run_on_ray(todo, str(retriever_path), config, workers=workers, address=ray_address) if use_ray
                    else run_in_process(todo, str(retriever_path), config))
        with tqdm(total=len(todo), disable=not progress, desc="batches", unit="batch") as bar:
            for outcome in outcomes:
                if outcome.error is None:
                    output.write_part(outcome.batch_id, outcome.parquet)
                    report.computed += 1
                    report.rows += outcome.rows
                else:
                    report.failed.append(FailedBatch(outcome.batch_id, outcome.users, outcome.attempts, outcome.error))
                report.batches_per_worker[outcome.worker] = report.batches_per_worker.get(outcome.worker, 0) + 1
                bar.update()
    report.seconds = round(time.perf_counter() - t0, 2)
    report.failed.sort(key=lambda f: f.batch_id)
    output.write_report(report.as_dict())
    return report


def _manifest(retriever_path: Path, requests: pd.DataFrame, config: BatchConfig) -> dict[str, Any]:
    """What the output depends on; a resumed run must match it exactly."""
    saved = json.loads((retriever_path / "retriever.json").read_text())
    digest = hashlib.sha256(pd.util.hash_pandas_object(requests, index=False).to_numpy().tobytes()).hexdigest()
    return {"retriever": str(retriever_path), "retriever_fitted_on": saved.get("fitted_on"),
            "requests": len(requests), "requests_sha256": digest, "config": config.as_dict(),
            "promptrec_version": __version__}
