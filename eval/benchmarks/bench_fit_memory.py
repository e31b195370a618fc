"""Where a fitted retriever's memory goes: resident memory before and after the fit, and the size of each part.

    python eval/benchmarks/bench_fit_memory.py [--items 50000] [--users 100000] [--out eval/results]
                                               [--baseline OTHER/fit_memory.json --baseline-label "commit abc"]

The log is bench_catalog_scale.py's synthetic city (50,000 places and 100,000 users: 3.35M check-ins); the
retriever is its pooled default (``signals="auto"``, ``pool="on"``, not tuned). "Fitted" is the process's
resident memory after the fit minus before it (data and item index loaded), per event; the parts are the sizes
of the arrays each piece keeps (signals' state, the time-sorted log and its checkpoint counts, the per-row
arrays user histories are read from). Peak is the process's peak during the fit. Writes fit_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_catalog_scale import synthetic_city  # noqa: E402
from bench_scale_ladder import rss_mb  # noqa: E402


def nbytes(value, seen: set[int] | None = None, depth: int = 0) -> int:
    """Bytes of the numpy arrays and sparse matrices reachable from ``value`` (views and repeats counted once)."""
    import scipy.sparse as sp

    seen = set() if seen is None else seen
    if id(value) in seen or depth > 6:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return value.nbytes if value.base is None else 0
    if sp.issparse(value):
        return sum(getattr(value, a).nbytes for a in ("data", "indices", "indptr") if hasattr(value, a))
    if isinstance(value, dict):
        return sum(nbytes(v, seen, depth + 1) for v in value.values()) + sys.getsizeof(value)
    if isinstance(value, (list, tuple, set)):
        return sum(nbytes(v, seen, depth + 1) for v in value) + sys.getsizeof(value)
    if hasattr(value, "__dict__"):
        return sum(nbytes(v, seen, depth + 1) for v in vars(value).values())
    return sys.getsizeof(value)


def parts(retriever) -> dict[str, int]:
    """Bytes kept by each part of a fitted retriever."""
    log = retriever.log
    out = {f"signal {name}": nbytes(signal) for name, signal in retriever.signals.items()}
    out["candidate pool"] = nbytes(retriever.pool)
    out["time-sorted log (events)"] = sum(v.nbytes for v in log._cols.values())
    out["time-sorted log (checkpoint counts)"] = sum(v.nbytes for v in log._snaps.values())
    out["per-row arrays (histories)"] = sum(getattr(retriever, a).nbytes for a in ("_row_codes", "_row_hour", "_row_dow")
                                            if hasattr(retriever, a))  # (older versions keep fewer)
    return out


def measure(n_items: int, n_users: int, cache: Path) -> dict:
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    catalog, inter = synthetic_city(n_items, n_users)
    index = ItemIndex.build(catalog, "scale", root=cache)
    gc.collect()
    before, peak_before = rss_mb()
    t = time.perf_counter()
    retriever = TimeAwareRetriever(pool="on").fit(inter, catalog, index)
    fit_s = time.perf_counter() - t
    gc.collect()
    after, peak = rss_mb()
    return {"items": n_items, "users": n_users, "events": len(inter), "fit_s": fit_s,
            "rss_before_fit_mb": before, "rss_after_fit_mb": after, "peak_mb": peak,
            "data_frame_mb": float(inter.frame.memory_usage(deep=True).sum() / 2**20),
            "fitted_bytes_per_event": (after - before) * 2**20 / len(inter), "parts": parts(retriever)}


def table(r: dict) -> list[str]:
    rows = [f"{r['events']:,} events ({r['users']:,} users, {r['items']:,} places): resident memory "
            f"{r['rss_before_fit_mb']:,.0f} MB before the fit (data and index), {r['rss_after_fit_mb']:,.0f} MB after "
            f"it: **{r['fitted_bytes_per_event']:.0f} bytes per event fitted**; peak {r['peak_mb']:,.0f} MB; fit "
            f"{r['fit_s']:.1f} s.", "", "| part | MB | bytes per event |", "|---|---|---|"]
    for name, size in sorted(r["parts"].items(), key=lambda kv: -kv[1]):
        rows.append(f"| {name} | {size / 2**20:,.1f} | {size / r['events']:.1f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/promptrec-bench-scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--baseline", type=Path, help="another run's fit_memory.json to show beside this one")
    ap.add_argument("--baseline-label", default="baseline")
    args = ap.parse_args()
    from promptrec.models import cpu_model

    run = {"command": "python " + shlex.join(sys.argv), "machine": platform.platform(),
           "cpu": f"{cpu_model()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
           **measure(args.items, args.users, args.cache)}
    if args.baseline:
        run["baseline"] = {"label": args.baseline_label, **json.loads(args.baseline.read_text())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_memory.json").write_text(json.dumps(run, indent=2))
    md = ["# Where a fitted retriever's memory goes", "", f"Command: `{run['command']}` ({run['date']}, "
          f"{run['machine']}, {run['cpu']}).", "", (__doc__ or "").split("\n\n")[2].replace("\n", " "), ""] + table(run)
    if args.baseline:
        md += ["", f"## {args.baseline_label}", "", f"Command: `{run['baseline']['command']}` "
               f"({run['baseline']['date']}).", ""] + table(run["baseline"])
    (args.out / "fit_memory.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
