"""Loading a large event log: time and peak memory of `load_events` on a synthetic Parquet log.

    python eval/benchmarks/bench_loading.py [--rows 50000000] [--users 1000000] [--items 200000]
        [--work /tmp/promptrec-bench-loading] [--out eval/results] [--report-only]

Writes an N-row Parquet log (ids like "u123" / "p45" as plain string columns, timestamps as UTC timestamps,
a weight; generated with numpy, row group by row group), then loads it with `promptrec.data.loaders.load_events`
in a fresh process and records the wall time and that process's peak resident memory (getrusage), less its
memory after imports. Writes loading.json and loading.md (with the command) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GROUP = 2_000_000  # rows generated and written at a time


def write_log(path: Path, rows: int, users: int, items: int, seed: int = 0) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    user_names = pa.array(np.char.add("u", np.arange(users).astype(str)))
    item_names = pa.array(np.char.add("p", np.arange(items).astype(str)))
    start = time.perf_counter()
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                        ("timestamp", pa.timestamp("ms", tz="UTC")), ("weight", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, rows, GROUP):
            n = min(GROUP, rows - lo)
            item = np.minimum(rng.zipf(1.3, n) - 1, items - 1)  # a few popular items, a long tail
            ts = 1_600_000_000_000 + rng.integers(0, 365 * 86_400_000, n)
            writer.write_table(pa.table({
                "user_id": user_names.take(pa.array(rng.integers(0, users, n))),
                "item_id": item_names.take(pa.array(item)),
                "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                "weight": pa.array(rng.random(n).round(3)),
            }, schema=schema))
    return time.perf_counter() - start


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_once(path: Path, chunk_rows: int) -> dict:
    """Runs in a fresh process: import, note memory, load, note time and peak memory."""
    import pandas as pd

    from promptrec.data.loaders import load_events

    base = peak_mb()
    start = time.perf_counter()
    inter = load_events(path, errors="drop", chunk_rows=chunk_rows)
    seconds = time.perf_counter() - start
    frame = inter.frame
    return {"seconds": seconds, "peak_mb": peak_mb(), "base_mb": base, "events": len(inter),
            "users": len(inter.users), "items": int(frame["item_id"].cat.categories.size),
            "frame_mb": float(frame.memory_usage(deep=True).sum() / 2**20),
            "object_columns": [c for c, t in frame.dtypes.items() if t == object],
            "dtypes": {c: "category" if isinstance(t, pd.CategoricalDtype) else str(t) for c, t in frame.dtypes.items()}}


def markdown(res: dict) -> str:
    lines = [
        "# Loading a large event log", "",
        "Synthetic Parquet logs (ids as plain strings like u123 / p45, UTC timestamps, a weight) loaded by "
        "`load_events` (errors='drop') in a fresh process; peak RSS is that process's (getrusage), \"above "
        "imports\" less its memory once promptrec is imported.", "",
        "| events | users | items | file (MB) | chunk rows | seconds | rows/s | peak RSS (MB) | "
        "peak above imports (MB) | bytes/row (peak) | frame (MB) | bytes/row (frame) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in sorted(res["runs"].values(), key=lambda r: r["rows"]):
        r, rows = run["load"], run["rows"]
        above = r["peak_mb"] - r["base_mb"]
        lines.append(f"| {rows:,} | {run['users']:,} | {run['items']:,} | {run['file_mb']:,.0f} | "
                     f"{run['chunk_rows']:,} | {r['seconds']:.1f} | {rows / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | "
                     f"{above:,.0f} | {above * 2**20 / rows:.0f} | {r['frame_mb']:,.0f} | "
                     f"{r['frame_mb'] * 2**20 / rows:.0f} |")
    lines += ["", "Commands (date run):", ""] + [f"    {run['command']}    # {run.get('date', '?')}"
                                                  for run in sorted(res["runs"].values(), key=lambda r: r["rows"])]
    last = max(res["runs"].values(), key=lambda r: r["rows"])["load"]
    lines += ["", f"Columns of `Interactions.frame`: {', '.join(f'{c} ({t})' for c, t in last['dtypes'].items())}; "
              f"object columns: {last['object_columns'] or 'none'}. Machine: {res['machine']}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-loading"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--keep", action="store_true", help="Keep the Parquet file.")
    ap.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--report-only", action="store_true", help="Redo loading.md from loading.json.")
    args = ap.parse_args()
    if args.report_only:
        (args.out / "loading.md").write_text(markdown(json.loads((args.out / "loading.json").read_text())))
        return
    if args.load_only:
        print(json.dumps(load_once(args.load_only, args.chunk_rows)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"events-{args.rows}.parquet"
    write_s = write_log(path, args.rows, args.users, args.items)
    child = subprocess.run([sys.executable, __file__, "--load-only", str(path), "--chunk-rows", str(args.chunk_rows)],
                           check=True, capture_output=True, text=True)
    load = json.loads(child.stdout.strip().splitlines()[-1])
    run = {"command": "python eval/benchmarks/bench_loading.py " + " ".join(sys.argv[1:]), "rows": args.rows,
           "users": args.users, "items": args.items, "chunk_rows": args.chunk_rows,
           "file_mb": path.stat().st_size / 2**20, "write_seconds": write_s, "load": load,
           "date": time.strftime("%Y-%m-%d", time.gmtime())}
    out = args.out / "loading.json"
    res = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    res["runs"][str(args.rows)] = run
    res["machine"] = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores (shared)"
    if not args.keep:
        path.unlink()
    args.out.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    (args.out / "loading.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
