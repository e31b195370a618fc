"""Does the sequential model (SASRec) know anything about the test targets that the time-aware retriever's other
features do not? #15 asks the blend with it to beat the blend without it; this asks whether any blend could.

For each config and pipeline whose blend has SASRec's scores among its features (by default the forced blend,
``time-aware retriever + SASRec``; a pipeline's optional signals are forced in): fits and tunes it as `promptrec
eval` does, takes the rows its learned blend scores on the test targets, and trains LightGBM (the blend's settings
and number of trees) on the test rows themselves, cross-fitted over five blocks in time (each fifth of the test days
scored by a model trained on the other four, later days included, so optimistic), once with every feature and once
without the SASRec ones. The paired difference per target (with a 95% bootstrap interval) is what SASRec's scores
can add to a blend trained as well as these targets allow: near zero, no blend with it beats the retriever.
Averaged over ``--seeds`` LightGBM seeds. Writes lab/results/sequential_ceiling.{json,md,png}.

    python lab/sequential_ceiling.py --config eval/configs/foursquare_nyc.yaml --config eval/configs/demo.yaml \
        [--pipeline "time-aware retriever + SASRec" --pipeline "time-aware retriever + SASRec, text start, 3 seeds"]
        [--sasrec max_len=100]   (SASRec settings replaced in those pipelines, e.g. the validation-best ones)
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

from blend_ceiling import cross_fitted, query_ranks
from blend_seed_spread import arm_label, parse_arm
from promptrec.metrics import bootstrap_ci, ndcg_gains

OUT = Path(__file__).resolve().parent / "results"
METRICS = {"Acc@1": lambda r: (r < 1).astype(float), "Acc@10": lambda r: (r < 10).astype(float),
           "NDCG@10": lambda r: ndcg_gains(r, 10)}


def paired(with_seq: np.ndarray, without: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Per metric: both means and the mean of the per-target difference with its 95% bootstrap interval;
    arrays are targets x seeds of 0-based ranks (each target's metric averaged over the seeds first)."""
    out = {}
    for name, per_target in METRICS.items():
        a, b = per_target(with_seq).mean(axis=1), per_target(without).mean(axis=1)
        out[name] = {"with": float(a.mean()), "without": float(b.mean()), "lead": float((a - b).mean()),
                     "ci95": list(bootstrap_ci(a - b, np.mean, n_boot, seed))}
    return out


def with_sasrec_settings(pipeline, settings: dict):
    """The pipeline with ``settings`` replaced in each of its SASRec signals' params (and its optional signals
    forced in)."""
    options = {k: v for k, v in pipeline.options.items() if k != "optional"}
    if settings:
        sequential = [s for s in options.get("signals", ()) if str(s).startswith("sasrec")]
        params = options.get("params", {})
        options["params"] = {**params, **{s: {**params.get(s, {}), **settings} for s in sequential}}
    return dataclasses.replace(pipeline, options=options)


def study(config: str, pipeline_name: str, seeds: int, sasrec: dict | None = None) -> dict:
    from promptrec.eval.config import load_config
    from promptrec.eval.pipelines import fit_score_model
    from promptrec.eval.runner import load_data

    cfg = load_config(config)
    pipeline = next((p for p in cfg.pipelines if p.name == pipeline_name), None)
    if pipeline is None:
        raise SystemExit(f"{config} has no pipeline {pipeline_name!r}; it has {[p.name for p in cfg.pipelines]}.")
    pipeline = with_sasrec_settings(pipeline, sasrec or {})
    ds, split, index = load_data(cfg)
    model = fit_score_model(pipeline, split, ds.catalog, index, cfg.seed, cfg.repeats)
    if model.ranker is None:
        raise SystemExit(f"{pipeline_name} of {config} kept the linear blend: this compares learned blends.")
    names, signal_of = model.features.names, model.features.signal_of
    sequential = [j for j, n in enumerate(names) if signal_of[n].startswith("sasrec")]
    if not sequential:
        raise SystemExit(f"{pipeline_name} of {config} has no SASRec feature (features: {names}).")
    blend = model.ranker.config
    rounds = int(model.ranker.booster.best_iteration) or 150
    targets = sorted(split.test, key=lambda t: t.now)  # in time, for the blocks
    rows = model.ranking_rows(targets, top_n=blend.top_n, progress=True, desc="test rows")
    without = dataclasses.replace(rows, features=np.delete(rows.features, sequential, axis=1))
    blocks = np.arange(len(rows.groups)) * 5 // len(rows.groups)
    ranks = {"with": [], "without": []}
    for seed in range(seeds):
        params = blend.lightgbm_params() | {"seed": seed}
        for arm, arm_rows in (("with", rows), ("without", without)):
            scores = cross_fitted(arm_rows, blocks, params, rounds)
            ranks[arm].append(query_ranks(scores, rows.labels, rows.groups, len(targets)))
    return {"config": config, "pipeline": pipeline_name, "sasrec_settings_replaced": sasrec or {},
            "test_targets": len(targets),
            "candidates' recall": len(rows.groups) / len(targets), "rounds": rounds,
            "sequential_features": [names[j] for j in sequential], "features": len(names),
            "metrics": paired(np.stack(ranks["with"], axis=1), np.stack(ranks["without"], axis=1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="an eval config (repeat for several)")
    ap.add_argument("--pipeline", action="append", help="a pipeline of every config (repeat for several; default: "
                    "time-aware retriever + SASRec)")
    ap.add_argument("--seeds", type=int, default=3, help="LightGBM seeds per arm")
    ap.add_argument("--sasrec", default="", help="KEY=VALUE[,KEY=VALUE]: SASRecConfig settings replaced in the "
                    "pipelines' SASRec signals (e.g. max_len=100, chosen with lab/sasrec_settings.py)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    configs = args.config or ["eval/configs/foursquare_nyc.yaml", "eval/configs/demo.yaml"]
    started = time.perf_counter()
    result = {"command": "python " + shlex.join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": platform.platform(), "seeds": args.seeds,
              "studies": [study(c, p, args.seeds, parse_arm(args.sasrec)) for c in configs
                          for p in args.pipeline or ["time-aware retriever + SASRec"]]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    from promptrec.eval.report import write_outputs

    print(write_outputs(result, args.out, "sequential_ceiling", markdown, plot))


def plot(result: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 1.2 + 0.6 * len(result["studies"])), sharey=True)
    labels = [f"{Path(s['config']).stem}\n{s['pipeline'].replace('time-aware retriever + ', '+ ')}"
              for s in result["studies"]]
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        leads = [s["metrics"][metric]["lead"] for s in result["studies"]]
        lo = [s["metrics"][metric]["lead"] - s["metrics"][metric]["ci95"][0] for s in result["studies"]]
        hi = [s["metrics"][metric]["ci95"][1] - s["metrics"][metric]["lead"] for s in result["studies"]]
        ax.errorbar(leads, range(len(labels)), xerr=[lo, hi], fmt="o", capsize=3)
        ax.axvline(0, color="#999999", lw=0.8)
        ax.set_title(f"{metric}: with SASRec - without", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=5)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylim(-0.5, len(labels) - 0.5)
    save_figure(fig, path)


def markdown(result: dict) -> str:
    lines = ["# What SASRec's scores can add to a blend trained on the test targets themselves", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s). "
             "Per config and pipeline: its blend's candidates and features on the test targets (optional signals "
             "forced in); LightGBM with the blend's settings and number of trees, cross-fitted over five blocks of "
             "the test days (optimistic: later days help), with and without the SASRec features, "
             f"{result['seeds']} seeds each; per-target differences with 95% bootstrap intervals. Every metric over all test targets (a truth outside the candidates is "
             "a miss).", "", "![lead with SASRec](sequential_ceiling.png)", "",
             "| config | pipeline | targets | SASRec features | metric | with | without | lead [95% interval] |",
             "|---|---|---|---|---|---|---|---|"]
    for s in result["studies"]:
        for metric, m in s["metrics"].items():
            lo, hi = m["ci95"]
            features = ", ".join(s["sequential_features"])
            replaced = s.get("sasrec_settings_replaced")
            pipeline = f"{s['pipeline']} ({arm_label(replaced)})" if replaced else s["pipeline"]
            lines.append(f"| `{s['config']}` | {pipeline} | {s['test_targets']:,} | {features} | "
                         f"{metric} | {m['with']:.4f} | {m['without']:.4f} | {m['lead']:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
