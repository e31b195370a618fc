"""How far a blend of the retriever's own features can go on a config's test targets: is a missed target a
matter of the blend (its training data, its recency, its learning) or of what the features know?

Fits and tunes the config's *time-aware retriever* as `promptrec eval` does, then, on the candidates its learned
blend scores (each signal's top N and the user's own items), reports Acc@1 / Acc@10 / NDCG@10 over all test
targets for: the candidates' recall (the bound for any reranking of them); the tuned blend; LightGBM trained on
the test rows themselves with 5-fold cross-fitting in contiguous blocks of time (later days help predict earlier
ones, so this is optimistic); and trained and scored on all of them (in-sample: it memorises).
Writes lab/results/blend_ceiling.{json,md,png}.

    python lab/blend_ceiling.py [--config eval/configs/foursquare_nyc.yaml] [--out lab/results]
"""

from __future__ import annotations

import argparse
import platform
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results"


def ranked(ranks: np.ndarray) -> dict[str, float]:
    """Acc@1, Acc@10, NDCG@10 of 0-based ranks."""
    from promptrec.metrics import hit_rate, ndcg

    return {"Acc@1": hit_rate(ranks, 1), "Acc@10": hit_rate(ranks, 10), "NDCG@10": ndcg(ranks, 10)}


def query_ranks(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_targets: int) -> np.ndarray:
    """The truth's 0-based rank in each query's rows, then a miss (10**6) for each of the ``n_targets`` beyond
    them (queries whose truth is not among the candidates)."""
    ranks = []
    for start, size in zip(np.concatenate([[0], np.cumsum(groups)[:-1]]), groups):
        s, y = scores[start:start + size], labels[start:start + size]
        ranks.append(int((s > s[y == 1][0]).sum()))  # ties go to the truth (scores rarely tie)
    return np.array(ranks + [10 ** 6] * (n_targets - len(groups)))


def hits(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_targets: int) -> dict[str, float]:
    """Acc@1, Acc@10, NDCG@10 over all ``n_targets`` (queries whose truth is not among the candidates: misses)."""
    return ranked(query_ranks(scores, labels, groups, n_targets))


def cross_fitted(rows, folds: np.ndarray, params: dict, rounds: int) -> np.ndarray:
    """Each query's scores from a model trained on the other folds' queries."""
    import lightgbm as lgb

    query = np.repeat(np.arange(len(rows.groups)), rows.groups)
    out = np.zeros(len(rows.labels))
    for f in np.unique(folds):
        train_q = folds != f
        train = train_q[query]
        booster = lgb.train(params, lgb.Dataset(rows.features[train], rows.labels[train], group=rows.groups[train_q]),
                            num_boost_round=rounds)
        out[~train] = booster.predict(rows.features[~train])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="eval/configs/foursquare_nyc.yaml")
    ap.add_argument("--pipeline", default="time-aware retriever")
    ap.add_argument("--rounds", type=int, default=0,
                    help="boosting rounds of the models trained on the test rows (default: as many as the tuned blend)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    import lightgbm as lgb

    from promptrec.eval.config import load_config
    from promptrec.eval.pipelines import fit_score_model
    from promptrec.eval.runner import load_data

    started = time.perf_counter()
    cfg = load_config(args.config)
    pipeline = next((p for p in cfg.pipelines if p.name == args.pipeline), None)
    if pipeline is None:
        raise SystemExit(f"{args.config} has no pipeline {args.pipeline!r}; it has {[p.name for p in cfg.pipelines]}.")
    ds, split, index = load_data(cfg)
    model = fit_score_model(pipeline, split, ds.catalog, index, cfg.seed, cfg.repeats)
    if model.ranker is None:
        raise SystemExit(f"{args.pipeline} of {args.config} kept the linear blend: this compares learned blends.")
    cfg_blend = model.ranker.config
    rounds = args.rounds or int(model.ranker.booster.best_iteration) or 150
    # the rows the learned blend scores: the same candidates and features as in tuning (targets without the truth
    # among them are left out of the rows and count as misses below)
    targets = sorted(split.test, key=lambda t: t.now)  # in time, for the blocks below
    rows = model.ranking_rows(targets, top_n=cfg_blend.top_n, progress=True, desc="test rows")
    n = len(targets)
    params = cfg_blend.lightgbm_params()
    by_time = np.arange(len(rows.groups)) * 5 // len(rows.groups)
    in_sample = lgb.train(params, lgb.Dataset(rows.features, rows.labels, group=rows.groups), num_boost_round=rounds)
    result = {
        "command": "python " + " ".join(sys.argv), "config": args.config, "pipeline": args.pipeline,
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(), "test_targets": n,
        "candidates_per_signal": cfg_blend.top_n, "features": len(model.features.names), "rounds": rounds,
        "rows": {
            "candidates' recall (any reranking's bound)": {"Acc@10": len(rows.groups) / n},
            "the tuned blend, as `promptrec eval` ranks": ranked(model.true_item_ranks(targets)),
            "the tuned blend, on these rows": hits(model.ranker.predict(rows.features), rows.labels, rows.groups, n),
            "trained on the other four fifths of the test days (5 blocks in time, cross-fitted)": hits(
                cross_fitted(rows, by_time, params, rounds), rows.labels, rows.groups, n),
            "trained on the test rows, in-sample": hits(in_sample.predict(rows.features), rows.labels, rows.groups, n),
        },
        "seconds": round(time.perf_counter() - started, 1)}
    from promptrec.eval.report import write_outputs

    print(write_outputs(result, args.out, "blend_ceiling", markdown, plot))


def plot(result: dict, path: Path) -> None:
    from promptrec.plots import pyplot

    plt = pyplot()

    names = list(result["rows"])
    values = [result["rows"][k]["Acc@10"] for k in names]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colours = ["#999999", "#1f77b4", "#1f77b4", "#ff7f0e", "#d62728"]  # bound, the blend twice, trained on the test
    ax.barh([textwrap.fill(k.replace("`", ""), 45) for k in names], values, color=colours[:len(names)])
    ax.invert_yaxis()
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"Acc@10 over all {result['test_targets']:,} test targets")
    ax.tick_params(axis="y", labelsize=7)
    fig.subplots_adjust(left=0.3, right=0.97, bottom=0.17, top=0.97)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = ["# How far a blend of the retriever's features can go", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s). "
             f"{result['pipeline']} of `{result['config']}`, {result['test_targets']:,} test targets, each signal's "
             f"top {result['candidates_per_signal']} plus the user's own items as candidates, {result['features']} "
             f"features; models trained on the test rows: LightGBM lambdarank with the blend's settings, "
             f"{result['rounds']} rounds. Every metric over all test targets (a truth outside the candidates is a "
             "miss).", "", "![Acc@10 of each](blend_ceiling.png)", "",
             "| blend | Acc@1 | Acc@10 | NDCG@10 |", "|---|---|---|---|"]
    for name, m in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if k in m else "-"
                                                  for k in ("Acc@1", "Acc@10", "NDCG@10")) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
