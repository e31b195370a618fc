"""Compare the server's memory over time in two or more soak runs (`eval/benchmarks/bench_soak.py` outputs).

    python lab/compare_soak_memory.py LABEL=DIR [LABEL=DIR ...] --out DIR

Writes memory.md (growth after warm-up, LLM throughput, heap trims) and memory.png (resident memory over time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=DIR: a label and a folder holding a soak.json")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = []
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        res = json.loads((Path(folder) / "soak.json").read_text())
        runs += [(f"{label}: {r['mode']}", r) for r in res["runs"]]
    args.out.mkdir(parents=True, exist_ok=True)
    md = ["| run | minutes | RSS after warm-up -> end (MB) | growth | reranked answers | seconds per LLM request | "
          "heap trims (total time) |", "|---|---|---|---|---|---|---|"]
    for label, r in runs:
        after = [m for t, m in r["rss_mb"] if t >= r["config"]["warmup_s"]]
        queue = r.get("llm_queue") or {}
        trims = queue.get("heap_trims") or {}
        md.append(f"| {label} | {r['seconds'] / 60:.1f} | {after[0]:.0f} -> {after[-1]:.0f} | "
                  f"{100 * r['rss_growth_after_warmup']:+.1f}% | {r['reranked']:,} | "
                  f"{queue.get('seconds_per_request', float('nan')):.3f} | "
                  + (f"{trims['trims']} ({trims['seconds']:.2f} s)" if trims else "-") + " |")
    (args.out / "memory.md").write_text("\n".join(md + ["", "![resident memory over time](memory.png)", ""]))
    plot(runs, args.out / "memory.png")
    print("\n".join(md))


def plot(runs: list[tuple[str, dict]], path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    from bench_soak import plot_memory  # this folder is on the path when run as a script

    fig, ax = plt.subplots(figsize=(8, 4))
    plot_memory(ax, runs, "server RSS with children (MB)", "promptrec serve under a soak: memory")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
