"""How much the learned blend's LightGBM seed moves a retriever's test numbers: one retriever pipeline of each
eval config fitted and tuned as `promptrec eval` does, once per seed (and per setting compared), every
test target scored with full ranking. Writes lab/results/blend_seed_spread.{json,md,png}.

    python lab/blend_seed_spread.py [--config eval/configs/foursquare_nyc.yaml ...] [--seeds 5]
                                     [--arm stop_window=21 ...] [--pipeline "time-aware retriever"]

Each ``--arm`` (KEY=VALUE[,KEY=VALUE], YAML values) is compared with the pipeline as configured, the seeds
paired across arms: keys of the learned blend's settings go to its `ranker` (``stop_window=21``), any other
key replaces that pipeline option (``signals=[auto,audience]``). A single run of a learned blend is one draw
of these: compare blends over seeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results"
CONFIGS = ["eval/configs/foursquare_nyc_earlier_period.yaml", "eval/configs/foursquare_nyc.yaml",
           "eval/configs/foursquare_nyc_later_period.yaml"]
METRICS = ("Acc@1", "Acc@10", "NDCG@10", "MRR")


def parse_arm(text: str) -> dict:
    """'stop_window=21,signals=[auto,audience]' -> {'stop_window': 21, 'signals': ['auto', 'audience']} (YAML
    values; a comma starts a new pair only where KEY= follows it)."""
    import yaml

    if not text:
        return {}
    pairs = [p.split("=", 1) for p in re.split(r",(?=\s*\w+=)", text)]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--arm {text!r}: use KEY=VALUE[,KEY=VALUE], e.g. stop_window=21.")
    return {k.strip(): yaml.safe_load(v) for k, v in pairs}


def arm_label(arm: dict) -> str:
    """{'stop_window': 21} -> 'stop_window=21' (parse_arm's text back); no arm: 'as configured'."""
    return ", ".join(f"{k}={v}" for k, v in arm.items()) or "as configured"


def arm_options(options: dict, arm: dict, seed: int) -> dict:
    """A pipeline's options with an arm applied: learned-blend settings into `ranker` (with the seed), the rest
    replacing the pipeline option of that name."""
    from promptrec.retriever.learned import RankerConfig

    ranker_keys = set(RankerConfig.__dataclass_fields__)
    ranker = {**options.get("ranker", {}), **{k: v for k, v in arm.items() if k in ranker_keys}, "seed": seed}
    return {**options, **{k: v for k, v in arm.items() if k not in ranker_keys}, "ranker": ranker}


def metrics(ranks: np.ndarray) -> dict[str, float]:
    from promptrec.metrics import hit_rate, mrr, ndcg

    return {"Acc@1": hit_rate(ranks, 1), "Acc@10": hit_rate(ranks, 10), "NDCG@10": ndcg(ranks, 10), "MRR": mrr(ranks)}


def period_runs(config: str, pipeline: str, seeds: int, arms: list[dict], bar) -> list[dict]:
    """Every (arm, seed) run of one config's pipeline."""
    from promptrec.eval.config import load_config
    from promptrec.eval.pipelines import fit_score_model
    from promptrec.eval.runner import load_data

    cfg = load_config(config)
    chosen = [p for p in cfg.pipelines if p.name == pipeline]
    if not chosen:
        raise SystemExit(f"{config} has no pipeline named {pipeline!r}; it has {[p.name for p in cfg.pipelines]}.")
    ds, split, index = load_data(cfg)
    rows = []
    for arm in arms:
        for seed in range(seeds):
            p = chosen[0]
            started = time.perf_counter()
            model = fit_score_model(replace(p, options=arm_options(p.options, arm, seed)), split, ds.catalog, index,
                                    cfg.seed, cfg.repeats)
            ranks = model.true_item_ranks(split.test)
            rows.append({"config": config, "period": cfg.name, "test_targets": len(split.test),
                         "arm": arm_label(arm), "seed": seed,
                         "blend": model.describe()["blend"],
                         "trees": model.ranker.report["best_iteration"] if model.ranker is not None else None,
                         "seconds": round(time.perf_counter() - started, 1),
                         **{k: round(float(v), 4) for k, v in metrics(ranks).items()}})
            bar.update(1)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for period in dict.fromkeys(r["period"] for r in rows):
        for arm in dict.fromkeys(r["arm"] for r in rows):
            sel = [r for r in rows if r["period"] == period and r["arm"] == arm]
            out.append({"period": period, "arm": arm, "runs": len(sel), "trees": [r["trees"] for r in sel],
                        **{m: {"mean": round(float(np.mean([r[m] for r in sel])), 4),
                               "min": min(r[m] for r in sel), "max": max(r[m] for r in sel),
                               "sd": round(float(np.std([r[m] for r in sel], ddof=1)), 4) if len(sel) > 1 else 0.0}
                           for m in METRICS}})
    return out


def paired(rows: list[dict]) -> list[dict]:
    """Each arm minus the pipeline as configured, paired by (period, seed)."""
    base = {(r["period"], r["seed"]): r for r in rows if r["arm"] == "as configured"}
    out = []
    for arm in dict.fromkeys(r["arm"] for r in rows if r["arm"] != "as configured"):
        sel = [r for r in rows if r["arm"] == arm and (r["period"], r["seed"]) in base]
        for m in METRICS:
            d = np.array([r[m] - base[(r["period"], r["seed"])][m] for r in sel])
            out.append({"arm": arm, "metric": m, "runs": len(d), "mean": round(float(d.mean()), 4),
                        "ahead": int((d > 0).sum()), "behind": int((d < 0).sum()),
                        "se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None})
    return out


def plot(rows: list[dict], path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    periods = list(dict.fromkeys(r["period"] for r in rows))
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, m in zip(axes, ("Acc@10", "NDCG@10")):
        for j, arm in enumerate(arms):
            for i, period in enumerate(periods):
                centre = np.mean([r[m] for r in rows if r["period"] == period and r["arm"] == arms[0]])
                ys = [r[m] - centre for r in rows if r["period"] == period and r["arm"] == arm]
                x = i + (j - (len(arms) - 1) / 2) * 0.2
                ax.scatter([x] * len(ys), ys, s=18, color=f"C{j}", label=arm if i == 0 else None)
                ax.hlines(np.mean(ys), x - 0.08, x + 0.08, color=f"C{j}")
        ax.set_xticks(range(len(periods)), periods, rotation=10, fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"test {m} minus its mean as configured, per data set", fontsize=10)
    axes[0].set_ylabel("one point per LightGBM seed")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def markdown(result: dict) -> str:
    lines = ["# The learned blend's seed: how much it moves the test numbers", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s). "
             f"Pipeline *{result['pipeline']}* of each config, fitted and tuned as `promptrec eval` does, LightGBM "
             f"seeds 0-{result['seeds'] - 1}, every test target scored with full ranking.", "",
             "| period | arm | runs | trees | " + " | ".join(f"{m} mean [min, max] (sd)" for m in METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    for s in result["summary"]:
        cells = [f"{s[m]['mean']:.4f} [{s[m]['min']:.4f}, {s[m]['max']:.4f}] ({s[m]['sd']:.4f})" for m in METRICS]
        lines.append(f"| {s['period']} | {s['arm']} | {s['runs']} | {', '.join(map(str, s['trees']))} | "
                     + " | ".join(cells) + " |")
    if result["paired"]:
        lines += ["", "Paired by period and seed, each arm minus the pipeline as configured:", "",
                  "| arm | metric | runs | mean difference (SE) | ahead / behind |", "|---|---|---|---|---|"]
        for p in result["paired"]:
            lines.append(f"| {p['arm']} | {p['metric']} | {p['runs']} | {p['mean']:+.4f} ({p['se']}) | "
                         f"{p['ahead']} / {p['behind']} |")
    lines += ["", "![seed spread](blend_seed_spread.png)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    from tqdm.auto import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", help="eval config (repeatable); default: the three NYC periods")
    ap.add_argument("--pipeline", default="time-aware retriever")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--arm", action="append", default=[],
                    help="settings to compare, e.g. stop_window=21 or signals=[auto,audience]")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    configs = args.config or CONFIGS
    arms = [{}] + [parse_arm(a) for a in args.arm]
    started = time.perf_counter()
    rows = []
    with tqdm(total=len(configs) * len(arms) * args.seeds, desc="blends fitted and scored", unit="run") as bar:
        for config in configs:
            rows += period_runs(config, args.pipeline, args.seeds, arms, bar)
    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.platform()}, {os.cpu_count()} cores", "pipeline": args.pipeline,
              "seeds": args.seeds, "seconds": round(time.perf_counter() - started, 1), "runs": rows,
              "summary": summary(rows), "paired": paired(rows)}
    from promptrec.eval.report import write_outputs

    print(write_outputs(result, args.out, "blend_seed_spread", markdown, lambda res, path: plot(res["runs"], path)))


if __name__ == "__main__":
    main()
