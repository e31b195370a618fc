"""Batch recommendations for a user base: users per second in process and on Ray Data with 1 and 2 workers,
retrieval only and reranked by the LLM (each Ray worker owns its vLLM engine).

    python eval/benchmarks/bench_batch.py [--data ../shared/data/ml-100k] [--rerank-users 64] [--out eval/results]

Fits and saves a retriever, then runs `recommend_all` for every user (retrieval only) and for the first
--rerank-users users (reranked: SmolLM2-135M-Instruct, label scoring of 20 candidates) with each runner;
checks that every runner wrote the same rows; writes batch_benchmark.json, .md and .png. Ray runs start a
local Ray instance (ray.init) each time; its start-up is part of the measured time, as it is for a user.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

RUNNERS = [("in-process", "local", 1), ("Ray, 1 worker", "ray", 1), ("Ray, 2 workers", "ray", 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Dataset folder (default: the demo data).")
    ap.add_argument("--format", default="auto")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-batch"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rerank-users", type=int, default=64, help="Users in the reranked runs (0: skip them).")
    ap.add_argument("--report-only", action="store_true", help="Redo the markdown and plot from the JSON.")
    args = ap.parse_args()
    if not args.report_only:
        run(args)
    res = json.loads((args.out / "batch_benchmark.json").read_text())
    (args.out / "batch_benchmark.md").write_text(markdown(res))
    plot(res, args.out / "batch_benchmark.png")


def run(args: argparse.Namespace) -> None:
    from promptrec.batch import BatchConfig, RerankSpec, recommend_all
    from promptrec.cli.common import load
    from promptrec.retriever import fit_retriever

    args.work.mkdir(parents=True, exist_ok=True)
    ds = load(args.data, args.format)
    retriever = fit_retriever(ds, index_root=str(args.work / "indexes"))
    retriever.save(args.work / "retriever")
    users = [str(u) for u in pd.unique(ds.interactions.frame["user_id"].astype(str))]
    now = ds.interactions.time_range()[1] + pd.Timedelta(days=1)
    res: dict = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(),
                 "date": time.strftime("%Y-%m-%d"), "dataset": ds.name, "users": len(users), "items": len(ds.catalog),
                 "batch_size": args.batch_size, "runs": []}
    modes = [("retrieval only", users, BatchConfig(k=10, batch_size=args.batch_size))]
    if args.rerank_users:
        modes.append(("reranked", users[:args.rerank_users],
                      BatchConfig(k=10, candidates=20, batch_size=16, rerank=RerankSpec(backend="vllm"))))
    for mode, chosen, config in modes:
        reference = None
        for name, runner, workers in RUNNERS:
            out = args.work / f"{mode}-{name}".replace(" ", "_").replace(",", "")
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            report = recommend_all(args.work / "retriever", out, users=chosen, now=now, config=config, runner=runner,
                                   workers=workers)
            wall = time.perf_counter() - t0
            rows = pd.read_parquet(out).sort_values(["user_id", "rank"]).reset_index(drop=True)
            if reference is None:
                reference = rows
            same = bool(rows[["user_id", "rank", "item_id"]].equals(reference[["user_id", "rank", "item_id"]]))
            entry = {"mode": mode, "runner": name, "workers": workers, "users": len(chosen),
                     "seconds": round(wall, 2), "users_per_s": round(len(chosen) / wall, 2),
                     "failed_batches": len(report.failed), "rows": len(rows),
                     "reranked_rows": int(rows["reranked"].sum()), "same_rows_as_in_process": same,
                     "batches_per_worker": report.batches_per_worker}
            res["runs"].append(entry)
            print(entry, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_benchmark.json").write_text(json.dumps(res, indent=2, default=str))


def markdown(res: dict) -> str:
    md = ["# promptrec batch: users per second", "",
          f"Command: `{res['command']}` ({res['date']}, {res['machine']}, 2 CPU cores)", "",
          f"Data: {res['dataset']} ({res['users']:,} users, {res['items']:,} items); top 10 per user one day after "
          "the log's end. Reranked: SmolLM2-135M-Instruct on the vLLM CPU engine, label scoring of 20 candidates, "
          "16 users per batch; each Ray worker loads the retriever and starts its own engine. Times are wall "
          "clock for the whole call, start-up (Ray, engines) included.", "",
          "| mode | runner | users | seconds | users/s | failed batches | rows | reranked rows | same rows as in-process |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        md.append(f"| {r['mode']} | {r['runner']} | {r['users']} | {r['seconds']} | {r['users_per_s']} | "
                  f"{r['failed_batches']} | {r['rows']} | {r['reranked_rows']} | {'yes' if r['same_rows_as_in_process'] else 'NO'} |")
    md += ["", "On 2 cores Ray cannot be faster than the in-process path: its start-up and scheduling are pure "
           "overhead, and two workers share the same two cores (two vLLM engines compete for them). What this "
           "shows is that the Ray path gives the same rows and what it costs here; on a cluster each worker (and "
           "its engine, or a vLLM server per GPU) brings its own hardware.", "",
           "![users per second](batch_benchmark.png)", ""]
    return "\n".join(md)


def plot(res: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    modes = list(dict.fromkeys(r["mode"] for r in res["runs"]))
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        runs = [r for r in res["runs"] if r["mode"] == mode]
        ax.bar([r["runner"] for r in runs], [r["users_per_s"] for r in runs], color=["#555", "#3a7", "#37a"][:len(runs)])
        ax.set(title=f"{mode} ({runs[0]['users']} users)", ylabel="users/s")
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="x", labelsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
