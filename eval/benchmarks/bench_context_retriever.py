"""Speed of the time-and-scene retriever on real data: all test targets scored (full ranking), after fitting
and tuning as `promptrec eval` does. Writes eval/results/context_retriever_benchmark.{json,md} (or into --out).

    python eval/benchmarks/bench_context_retriever.py [--nyc ../shared/data/foursquare-nyc/checkins.csv] [--ml100k ../shared/data/ml-100k]
                                           [--top-n 100 --out /tmp/top_n_100] [--pool '{"nearby": 100}']

``--top-n`` sets the learned blend's candidates per signal (RankerConfig.top_n, 50 by default) to time another
setting. ``--pool`` scores each target's candidate pool only (``on``, or a JSON object of PoolConfig settings;
promptrec.retriever.pool), which these catalogues (2,558 and 1,682 items) do not use by default: what pooling
costs in quality on real data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "results"


def measure(name: str, ds, split, ranker: dict, repeats: int = 3, pool: object = "auto") -> dict:
    from promptrec.metrics import hit_rate, mrr
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    index = ItemIndex.for_catalog(ds.catalog, ds.name)
    t0 = time.perf_counter()
    r = TimeAwareRetriever(pool=pool).fit(split.train, ds.catalog, index, log=split.full)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    r.tune(split.validation, ranker=ranker)
    tune_s = time.perf_counter() - t0
    times, ranks = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ranks = r.true_item_ranks(split.test)
        times.append(time.perf_counter() - t0)
    return {"dataset": name, "test_targets": len(split.test), "blend": r.describe()["blend"],
            "signals": list(r.signals), "pool": r.describe()["pool"], "fit_s": round(fit_s, 2), "tune_s": round(tune_s, 2),
            "score_all_test_s": [round(t, 2) for t in times], "score_all_test_s_best": round(min(times), 2),
            "targets_per_s": round(len(split.test) / min(times), 1),
            "HR@1": round(hit_rate(ranks, 1), 4), "HR@10": round(hit_rate(ranks, 10), 4), "MRR": round(mrr(ranks), 4)}


def main() -> None:
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import leave_last_out, temporal_split

    ap = argparse.ArgumentParser()
    ap.add_argument("--nyc", default="../shared/data/foursquare-nyc/checkins.csv")
    ap.add_argument("--ml100k", default="../shared/data/ml-100k")
    ap.add_argument("--top-n", type=int, help="the learned blend's candidates per signal (default: RankerConfig's)")
    ap.add_argument("--pool", default="auto", help="auto, on, off, or a JSON object of PoolConfig settings")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    ranker = {"top_n": args.top_n} if args.top_n else {}
    pool = json.loads(args.pool) if args.pool.startswith("{") else args.pool
    out = Path(args.out)
    rows = []
    if Path(args.nyc).exists():
        ds = load_dataset(args.nyc, format="checkins", timezone="America/New_York")
        split = temporal_split(ds.interactions, valid_start="2012-11-30T00:00:00-05:00",
                               test_start="2012-12-07T00:00:00-05:00", test_end="2012-12-22T00:00:00-05:00")
        rows.append(measure("foursquare-nyc (test Dec 7-21)", ds, split, ranker, pool=pool) | {"target_s": 10})
    if Path(args.ml100k).exists():
        ds = load_dataset(args.ml100k)
        rows.append(measure("movielens-100k (leave-last-out)", ds, leave_last_out(ds.interactions), ranker, pool=pool)
                    | {"target_s": 5})
    from promptrec.models import cpu_model

    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.platform()}, {cpu_model()}, {os.cpu_count()} cores", "ranker": ranker, "pool": pool,
              "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "context_retriever_benchmark.json").write_text(json.dumps(result, indent=2))
    lines = ["# Time-and-scene retriever: speed on real data", "", f"Command: `{result['command']}` "
             f"({result['date']}, {result['machine']}). Best of 3 runs scoring every test target (full ranking)"
             + (f"; learned-blend settings {ranker}" if ranker else "")
             + (f"; candidate pools {json.dumps(pool)}" if pool != "auto" else "") + ".", "",
             "| dataset | targets | blend | fit s | tune s | score all s (target) | targets/s | HR@1 | HR@10 | MRR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "met" if r["score_all_test_s_best"] < r["target_s"] else "NOT met"
        lines.append(f"| {r['dataset']} | {r['test_targets']:,} | {r['blend']} | {r['fit_s']} | {r['tune_s']} | "
                     f"{r['score_all_test_s_best']} (< {r['target_s']}: {ok}) | {r['targets_per_s']} | {r['HR@1']} | "
                     f"{r['HR@10']} | {r['MRR']} |")
    (out / "context_retriever_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
