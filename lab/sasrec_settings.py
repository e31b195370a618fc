"""SASRec's settings judged on a config's validation targets: which width, history length, dropout suit a data set.

The sequential model's defaults were tuned on MovieLens 100K. For each config this trains the config's SASRec
pipeline as configured ("as configured") and once per ``--arm`` (its settings with the arm's replaced;
``kind=sasrec_time`` switches to the time-aware model), each on the training events only, and ranks every
validation target (the events after the training cut, each with its history before it) against every item, as
`promptrec eval` ranks test targets (full ranking, repeats as the config says). The test days are not read unless
``--test`` asks (reported apart). ``--reference`` pipelines of the config (e.g. "user frequency by hour"; skipped
where a config has none) are scored on the same targets for scale. Per arm: Acc@1/10, NDCG@10 and MRR with 95%
intervals, and the paired lead over the configured model. Writes lab/results/sasrec_settings.{json,md,png}.

    python lab/sasrec_settings.py --config eval/configs/foursquare_nyc.yaml --arm max_len=100 --arm dropout=0.3 \
        [--pipeline SASRec] [--reference "user frequency by hour"]
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

from blend_seed_spread import arm_label, parse_arm

OUT = Path(__file__).resolve().parent / "results"
BASE = arm_label({})  # the configured model's row
KS = [1, 10]


def arm_pipeline(pipeline, arm: dict):
    """The SASRec pipeline with an arm's settings (``kind`` switches between sasrec and sasrec_time)."""
    arm = dict(arm)
    kind = arm.pop("kind", pipeline.kind)
    if kind not in ("sasrec", "sasrec_time"):
        raise SystemExit(f"kind={kind}: an arm may switch between sasrec and sasrec_time only.")
    settings = {**pipeline.options.get("settings", {}), **arm}
    return dataclasses.replace(pipeline, kind=kind, options={**pipeline.options, "settings": settings})


def fitted(pipeline, cfg, ds, split, index) -> tuple[object, dict]:
    """The pipeline's model fitted on the training events, and the SASRec model's training summary (epochs,
    stopping, seconds; as first trained when it came from the cache; empty for other pipelines)."""
    from promptrec.eval.pipelines import fit_score_model

    model = fit_score_model(pipeline, split, ds.catalog, index, cfg.seed, cfg.repeats)
    signal = model.signals.get(pipeline.kind)
    training = {k: signal.training.get(k) for k in ("epochs_run", "best_epoch", "stopped_by", "seconds")} \
        if signal is not None and hasattr(signal, "training") else {}
    return model, training


def study(config: str, pipeline_name: str, arms: list[dict], references: list[str], n_boot: int,
          test: bool = False) -> dict:
    """Every arm (and reference) fitted once and scored on the validation targets (and the test targets with
    ``test``): accuracy with intervals and the paired lead over the configured model, per part."""
    from promptrec.eval.config import load_config
    from promptrec.eval.report import accuracy, paired_differences
    from promptrec.eval.runner import load_data

    cfg = load_config(config)
    by_name = {p.name: p for p in cfg.pipelines}
    if pipeline_name not in by_name:
        raise SystemExit(f"{config} has no pipeline {pipeline_name!r}; it has {list(by_name)}.")
    absent = [n for n in references if n not in by_name]
    if absent:
        print(f"{config} has no pipeline {absent}: scored without it", flush=True)
    if by_name[pipeline_name].kind not in ("sasrec", "sasrec_time"):
        raise SystemExit(f"{pipeline_name!r} of {config} is a {by_name[pipeline_name].kind} pipeline, not SASRec.")
    ds, split, index = load_data(cfg)
    if not split.validation:
        raise SystemExit(f"{config}'s split has no validation targets to judge settings on.")
    parts = {"validation": split.validation} | ({"test": split.test} if test else {})
    rows, ranks = [], {part: {} for part in parts}
    runs = [(arm_label(a), arm_pipeline(by_name[pipeline_name], a), "SASRec") for a in [{}, *arms]]
    runs += [(name, by_name[name], "reference") for name in references if name in by_name]
    for label, pipeline, role in runs:
        model, training = fitted(pipeline, cfg, ds, split, index)
        row = {"arm": label, "role": role, "kind": pipeline.kind, "training": training}
        if role == "SASRec":
            row["settings"] = pipeline.options.get("settings", {})
        for part, targets in parts.items():
            got = ranks[part][label] = model.true_item_ranks(targets)  # full ranking, as `promptrec eval`
            scores = accuracy(got, KS, n_boot, cfg.seed)
            if label != BASE:
                scores["lead"] = paired_differences({label: got, BASE: ranks[part][BASE]}, label, KS, n_boot,
                                                    cfg.seed)[BASE]
            row.update(scores) if part == "validation" else row.update({part: scores})
        rows.append(row)
        print(f"{Path(config).stem} | {label}: validation NDCG@10 {row['NDCG@10']:.4f}, Acc@10 {row['HR@10']:.4f}",
              flush=True)
    return {"config": config, "pipeline": pipeline_name, "validation_targets": len(parts["validation"]),
            "test_targets": len(parts.get("test", ())), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="an eval config (repeat for several)")
    ap.add_argument("--pipeline", default="SASRec", help="the config's SASRec pipeline whose settings are the base")
    ap.add_argument("--arm", action="append", default=[], help="KEY=VALUE[,KEY=VALUE]: SASRecConfig settings "
                    "replaced (kind=sasrec_time for the time-aware model); repeat for several")
    ap.add_argument("--reference", action="append", default=[], help="a pipeline of the config scored on the same "
                    "targets for scale (repeat for several)")
    ap.add_argument("--test", action="store_true", help="also score the test targets (reported apart, to see how "
                    "a choice made on the validation targets holds; never to choose by)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    arms = [parse_arm(a) for a in args.arm]
    started = time.perf_counter()
    result = {"command": "python " + shlex.join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": platform.platform(),
              "studies": [study(c, args.pipeline, arms, args.reference, args.bootstrap, args.test)
                          for c in args.config or ["eval/configs/foursquare_nyc.yaml"]]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    from promptrec.eval.report import write_outputs

    print(write_outputs(result, args.out, "sasrec_settings", markdown, plot))


def plot(result: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()
    studies = result["studies"]
    height = 1.0 + 0.3 * max(len(s["rows"]) for s in studies)
    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), height), squeeze=False)
    for ax, s in zip(axes[0], studies):
        rows = s["rows"][::-1]
        values = [r["NDCG@10"] for r in rows]
        lo = [r["NDCG@10"] - r["NDCG@10_ci95"][0] for r in rows]
        hi = [r["NDCG@10_ci95"][1] - r["NDCG@10"] for r in rows]
        colors = ["#999999" if r["role"] == "reference" else "#1f77b4" for r in rows]
        for y, (v, a, b, c) in enumerate(zip(values, lo, hi, colors)):
            ax.errorbar(v, y, xerr=[[a], [b]], fmt="o", capsize=3, color=c)
        ax.set_yticks(range(len(rows)), [r["arm"] for r in rows], fontsize=7)
        ax.set_title(f"{Path(s['config']).stem}: validation NDCG@10 ({s['validation_targets']:,} targets)",
                     fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    save_figure(fig, path)


def _row(r: dict, scores: dict, training: bool) -> str:
    lo, hi = scores["NDCG@10_ci95"]
    lead = scores.get("lead", {}).get("NDCG@10")
    lead_cell = f"{lead['lead']:+.4f} [{lead['ci95'][0]:+.4f}, {lead['ci95'][1]:+.4f}]" if lead else ""
    name = r["arm"] if r["role"] == "SASRec" else f"*{r['arm']}* (reference)"
    cells = [name, f"{scores['HR@1']:.4f}", f"{scores['HR@10']:.4f}", f"{scores['NDCG@10']:.4f} [{lo:.4f}, {hi:.4f}]",
             f"{scores['MRR']:.4f}", lead_cell]
    if training:
        t = r["training"]
        cells += [f"{t['epochs_run']} ({t['best_epoch']})", str(t["stopped_by"]), str(t["seconds"])] if t else [""] * 3
    return "| " + " | ".join(cells) + " |"


def markdown(result: dict) -> str:
    scored_test = any(s.get("test_targets") for s in result["studies"])
    lines = ["# SASRec's settings on the validation targets", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s). "
             "Each arm is the config's SASRec pipeline with the settings named replaced, trained on the training "
             "events and scored on every validation target by full ranking"
             + (" (and, apart, on the test targets: how a choice made on the validation targets holds, not a "
                "way to choose)" if scored_test else " (the test days are not read)")
             + "; grey rows in the plot are the config's other pipelines, for scale. Lead: over the configured "
             "model, paired by target, with its 95% bootstrap interval. Training: as the model was first trained "
             "(models come from the SASRec cache when these settings met these events before).", "",
             "![validation NDCG@10](sasrec_settings.png)", ""]
    head = "| arm | Acc@1 | Acc@10 | NDCG@10 [95% interval] | MRR | NDCG@10 lead [95% interval] |"
    for s in result["studies"]:
        lines += [f"## `{s['config']}`, pipeline {s['pipeline']!r} ({s['validation_targets']:,} validation targets)",
                  "", head + " epochs (best) | stopped by | training s |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(r, r, training=True) for r in s["rows"]] + [""]
        if s.get("test_targets"):
            lines += [f"Test targets ({s['test_targets']:,}), the same models:", "", head, "|---|---|---|---|---|---|"]
            lines += [_row(r, r["test"], training=False) for r in s["rows"]] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
