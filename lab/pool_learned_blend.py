"""Does a candidate pool follow the learned blend's exhaustive ranking? The synthetic city of bench_catalog_scale.py,
split in time, the retriever's learned blend (LightGBM) tuned and scored twice: every signal over the whole catalogue
(``pool=None``) and over each request's pool (``pool="on"``).

    python lab/pool_learned_blend.py [--items 50000] [--users 10000] [--targets 3000] [--pool '{"nearby": 100}']
                                      [--out lab/results]

Training: days 0-35 of six weeks; validation: days 35-38; test: days 38-42 (each target with everything before it).
``--targets`` validation and test targets are drawn (seeded) from those periods. The blend is trained on the
validation targets alone (``earlier_windows: 0``: the windows would refit the retriever twice more). Writes
pool_learned_blend.{json,md}: tuning and scoring seconds, HR@10 / HR@100 / MRR with 95% bootstrap intervals of the
paired difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval" / "benchmarks"))  # the city of bench_catalog_scale
from bench_catalog_scale import START, synthetic_city  # noqa: E402


def run(n_items: int, n_users: int, n_targets: int, cache: Path, pool: object = "on") -> dict:
    """Both modes fitted, tuned and scored; ``pool``: the pooled mode's setting ("on" or PoolConfig settings)."""
    from promptrec.data.splits import temporal_split
    from promptrec.metrics import hit_rate, mrr
    from promptrec.eval.report import paired_differences
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    catalog, inter = synthetic_city(n_items, n_users)
    index = ItemIndex.build(catalog, "scale", root=cache)
    day = lambda d: str(START + pd.Timedelta(days=d))  # noqa: E731
    split = temporal_split(inter, valid_start=day(35), test_start=day(38), test_end=day(42))
    rng = np.random.default_rng(0)
    valid, test = ([targets[i] for i in np.sort(rng.choice(len(targets), min(n_targets, len(targets)), replace=False))]
                   for targets in (split.validation, split.test))
    rows, ranks = [], {}
    for mode, setting in (("exhaustive", None), ("pooled", pool)):
        print(f"== {mode}", flush=True)
        retriever = TimeAwareRetriever(pool=setting).fit(split.train, catalog, index, log=split.full)
        t = time.perf_counter()
        report = retriever.tune(valid, method="lightgbm", ranker={"earlier_windows": 0}, progress=True)
        tune_s = time.perf_counter() - t
        t = time.perf_counter()
        ranks[mode] = retriever.true_item_ranks(test)
        score_s = time.perf_counter() - t
        rows.append({"mode": mode, "tune_s": tune_s, "score_s": score_s, "targets_per_s": len(test) / score_s,
                     "trees": report["learned"]["best_iteration"], "HR@10": hit_rate(ranks[mode], 10),
                     "HR@100": hit_rate(ranks[mode], 100), "MRR": mrr(ranks[mode])})
    paired = paired_differences(ranks, "pooled", [10, 100], n_boot=1000, seed=0)["exhaustive"]
    return {"items": n_items, "users": n_users, "pool": pool, "validation_targets": len(valid), "test_targets": len(test),
            "rows": rows, "pooled_minus_exhaustive": paired}


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "pool_learned_blend.json").write_text(json.dumps(result, indent=2))
    md = ["# Candidate pools under the learned blend", "",
          f"Command: `{result['command']}` ({result['date']}, {result['machine']}).", "",
          f"Synthetic city of {result['items']:,} places and {result['users']:,} users (`synthetic_city` in "
          "`eval/benchmarks/bench_catalog_scale.py`), split in time (training days 0-35, validation 35-38, test 38-42); the "
          "retriever's learned blend (LightGBM, default signals, trained on the validation targets alone) fitted, "
          f"tuned and scored exhaustively and with candidate pools (`pool={json.dumps(result.get('pool', 'on'))}`); "
          f"{result['validation_targets']:,} validation and "
          f"{result['test_targets']:,} test targets drawn with seed 0.", "",
          "| mode | tune s | score s | targets/s | trees | HR@10 | HR@100 | MRR |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        md.append(f"| {r['mode']} | {r['tune_s']:.0f} | {r['score_s']:.1f} | {r['targets_per_s']:.0f} | {r['trees']} | "
                  f"{r['HR@10']:.4f} | {r['HR@100']:.4f} | {r['MRR']:.4f} |")
    md += ["", "Pooled minus exhaustive, paired over the test targets (95% bootstrap interval):", ""]
    for name, d in result["pooled_minus_exhaustive"].items():
        md.append(f"- {name}: {d['lead']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
    (out / "pool_learned_blend.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--targets", type=int, default=3_000)
    ap.add_argument("--pool", default="on", help="the pooled mode's pool: on, or a JSON object of PoolConfig settings")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/promptrec-bench-scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    from promptrec.models import cpu_model

    result = {"command": "python " + shlex.join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.platform()}, {cpu_model()}, {os.cpu_count()} cores",
              **run(args.items, args.users, args.targets, args.cache,
                    json.loads(args.pool) if args.pool.startswith("{") else args.pool)}
    write(result, args.out)


if __name__ == "__main__":
    main()
