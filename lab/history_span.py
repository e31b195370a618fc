"""How much a longer history helps: the same test days with the log cut to begin 1, 2, ... weeks before the
validation period (as if the data had started then), each pipeline refitted and tuned as `promptrec eval` does.

#14's Acc@10 on the NYC check-ins is short of its target, and the blend's ceiling (lab/blend_ceiling.py) says the
features, not the blend, limit it; "a longer history" is one thing the six-week file cannot give. This measures
the trend the file can show: the pipelines are compared on the test targets that every cut can score (users with
history in the shortest one), with paired 95% bootstrap intervals against the full log.
Writes lab/results/history_span.{json,md,png}.

    python lab/history_span.py [--config eval/configs/foursquare_nyc.yaml] [--weeks 1 2] [--pipeline NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "results"
PIPELINES = ("time-aware retriever", "user frequency by hour")
KS = [1, 5, 10]


def ranks_by_target(run, name: str) -> dict[tuple, int]:
    """A pipeline's full-ranking rank of each test target, keyed by (user, item, now) across runs."""
    targets = {t.index: t for t in run.test}
    return {(targets[r["i"]].user_id, targets[r["i"]].item_id, targets[r["i"]].held.now.value): r["rank"]
            for r in run.records[(name, "full")]}


def run_variant(cfg, since, folder: Path):
    """The config's pipelines on the log from ``since`` (None: all of it); returns the finished EvalRun."""
    from promptrec.eval.runner import EvalRun

    options = {**cfg.dataset.options, **({"since": str(since)} if since is not None else {})}
    variant = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, options=options))
    run = EvalRun(variant, folder, resume=False).load()
    run.run()
    return run


def compare(variants: dict[str, dict[str, dict[tuple, int]]], reference: str, seed: int, n_boot: int = 1000) -> dict:
    """Metrics of every (variant, pipeline) on the targets all variants score, and each variant's paired lead
    of the reference (the full log) per pipeline."""
    from promptrec.eval.report import accuracy, paired_differences

    common = sorted(set.intersection(*(set(r) for per in variants.values() for r in per.values())))
    rows, paired = {}, {}
    for label, per in variants.items():
        rows[label] = {name: accuracy(np.array([r[k] for k in common]), KS, n_boot, seed) for name, r in per.items()}
    for name in variants[reference]:
        ranks = {label: np.array([per[name][k] for k in common]) for label, per in variants.items()}
        paired[name] = paired_differences(ranks, reference, KS, n_boot, seed)
    return {"common_targets": len(common), "rows": rows, "paired_lead_of_full_log": paired}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="eval/configs/foursquare_nyc.yaml")
    ap.add_argument("--weeks", type=int, nargs="+", default=[1, 2],
                    help="history kept before the validation period, in weeks (the full log is always run)")
    ap.add_argument("--pipeline", action="append", help=f"a pipeline of the config (repeatable; default {PIPELINES})")
    ap.add_argument("--work", default="/tmp/promptrec-history-span", help="scratch folder for the runs' caches")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    from promptrec.eval.config import load_config
    from promptrec.eval.report import write_outputs

    started = time.perf_counter()
    cfg = load_config(args.config)
    names = args.pipeline or list(PIPELINES)
    missing = sorted(set(names) - {p.name for p in cfg.pipelines})
    if missing:
        raise SystemExit(f"{args.config} has no pipeline named {missing}.")
    cfg = dataclasses.replace(cfg, pipelines=[p for p in cfg.pipelines if p.name in names], protocols=["full"])
    work = Path(args.work)
    full = run_variant(cfg, None, work / "full")
    tz = full.timezone
    valid_start = pd.Timestamp(full.split.report["valid_start"]).tz_convert(tz)
    first = full.ds.interactions.time_range()[0].tz_convert(tz)
    full_label = f"all ({(valid_start - first).days} days)"
    variants = {full_label: {n: ranks_by_target(full, n) for n in names}}
    meta = {full_label: {"since": str(first), "test_targets": len(full.test), "train_events": len(full.split.train)}}
    for weeks in sorted(set(args.weeks)):
        since = valid_start - pd.DateOffset(weeks=weeks)
        if since <= first:
            continue
        run = run_variant(cfg, since, work / f"weeks-{weeks}")
        if any(run.split.report[k] != full.split.report[k] for k in ("valid_start", "test_start", "test_end")):
            raise SystemExit(f"{args.config}'s split moved with the log's start (shares of the events?): give it in "
                             "dates or in days (test_days, valid_days), so that every cut has the same test days.")
        label = f"{weeks} week{'s' if weeks > 1 else ''}"
        variants[label] = {n: ranks_by_target(run, n) for n in names}
        meta[label] = {"since": str(since), "test_targets": len(run.test), "train_events": len(run.split.train)}
    result = {"command": "python " + shlex.join(sys.argv), "config": args.config, "pipelines": names,
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
              "validation_start": str(valid_start), "test": {k: full.split.report[k] for k in ("test_start", "test_end")},
              "variants": meta, **compare(variants, full_label, cfg.seed)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(write_outputs(result, args.out, "history_span", markdown, plot))


def _days(label: str, meta: dict, validation_start: str) -> float:
    return (pd.Timestamp(validation_start) - pd.Timestamp(meta[label]["since"])).total_seconds() / 86400


def plot(result: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()
    labels = sorted(result["rows"], key=lambda lab: _days(lab, result["variants"], result["validation_start"]))
    days = [_days(lab, result["variants"], result["validation_start"]) for lab in labels]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, ci in ((axes[0], "HR@10", "HR@10_ci95"), (axes[1], "NDCG@10", "NDCG@10_ci95")):
        for name in result["pipelines"]:
            vals = np.array([result["rows"][lab][name][metric] for lab in labels])
            lo_hi = np.array([result["rows"][lab][name][ci] for lab in labels])
            ax.errorbar(days, vals, yerr=np.vstack([vals - lo_hi[:, 0], lo_hi[:, 1] - vals]), marker="o",
                        capsize=3, label=name)
        ax.set(xlabel="days of history before the validation period", ylabel=metric.replace("HR", "Acc"),
               title=f"{metric.replace('HR', 'Acc')} on the {result['common_targets']:,} common test targets")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def markdown(result: dict) -> str:
    first = next(iter(result["rows"]))
    lines = ["# A longer history: the same test days, the log cut to begin later", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s). "
             f"`{result['config']}`, full ranking; test {result['test']['test_start']} to {result['test']['test_end']}, "
             f"validation from {result['validation_start']}. Each row refits and tunes the pipelines as `promptrec "
             "eval` does on the log from its start; metrics on the "
             f"{result['common_targets']:,} test targets every row scores (users with history in the shortest log); "
             "95% bootstrap intervals.", "", "![Acc@10 and NDCG@10 by days of history](history_span.png)", "",
             "| history before validation | log from | training events | test targets | pipeline | Acc@1 | Acc@10 | "
             "NDCG@10 | MRR |", "|---|---|---|---|---|---|---|---|---|"]
    for label, per in result["rows"].items():
        m = result["variants"][label]
        for name, row in per.items():
            lines.append(f"| {label} | {m['since'][:10]} | {m['train_events']:,} | {m['test_targets']:,} | {name} | "
                         f"{row['HR@1']:.3f} | {row['HR@10']:.3f} [{row['HR@10_ci95'][0]:.3f}, "
                         f"{row['HR@10_ci95'][1]:.3f}] | {row['NDCG@10']:.3f} | {row['MRR']:.3f} |")
    lines += ["", f"Paired lead of the full log ({first}) over each shorter one, same targets:", "",
              "| pipeline | against | Acc@10 | NDCG@10 | MRR |", "|---|---|---|---|---|"]
    for name, per in result["paired_lead_of_full_log"].items():
        for label, d in per.items():
            cells = [f"{d[m]['lead']:+.4f} [{d[m]['ci95'][0]:+.3f}, {d[m]['ci95'][1]:+.3f}]"
                     + (" **beyond**" if d[m]["beyond"] else "") for m in ("HR@10", "NDCG@10", "MRR")]
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
