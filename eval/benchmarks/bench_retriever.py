"""Retriever speed at scale: fit and retrieve for 100,000 synthetic users (the demo generator).

    python eval/benchmarks/bench_retriever.py [--users 100000] [--out eval/results]

Writes retriever_benchmark.json and .md: generation, fit, and batched retrieval time (top 100 for
every user at the time of their last event), users/s, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main() -> None:
    from bench_catalog_scale import retrieve_at_last_events  # this folder is on the path when run as a script
    from promptrec.data.demo import generate_demo
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--mean-events", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = ap.parse_args()
    res: dict = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(),
                 "date": time.strftime("%Y-%m-%d")}
    t = time.perf_counter()
    ds = generate_demo(n_users=args.users, mean_events=args.mean_events).dataset
    res["generate_s"] = time.perf_counter() - t
    inter = ds.interactions
    res.update(users=len(inter.users), events=len(inter), items=len(ds.catalog))
    print(f"generated {res['users']:,} users, {res['events']:,} events in {res['generate_s']:.0f}s", flush=True)
    index = ItemIndex.build(ds.catalog, "bench-demo", root="/tmp/promptrec-bench", save=False)
    t = time.perf_counter()
    retriever = TimeAwareRetriever().fit(inter, ds.catalog, index)
    res["fit_s"] = time.perf_counter() - t
    res["signals"] = sorted(retriever.signals)
    found = retrieve_at_last_events(retriever, inter)
    found.pop("top")
    res.update(found)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retriever_benchmark.json").write_text(json.dumps(res, indent=2))
    md = ["# Retriever benchmark", "", f"Command: `{res['command']}` ({res['date']}, {res['machine']})", "",
          f"{res['users']:,} synthetic users, {res['events']:,} events, {res['items']:,} items (demo generator).", "",
          "| step | seconds |", "|---|---|", f"| generate data | {res['generate_s']:.1f} |",
          f"| fit ({', '.join(res['signals'])}) | {res['fit_s']:.1f} |",
          f"| retrieve top 100 for every user at their last event | {res['retrieve_s']:.1f} |", "",
          f"Throughput: {res['users_per_s']:,.0f} users/s; peak memory {res['peak_rss_mb']:,.0f} MB.", ""]
    (args.out / "retriever_benchmark.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
