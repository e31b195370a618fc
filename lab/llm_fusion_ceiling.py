"""Can any fusion of an LLM reranker's label scores with the retriever beat the retriever? The LLM stage's
counterpart of lab/blend_ceiling.py: if even a model fitted on the test requests themselves cannot, the LLM's
scores hold nothing the retriever's order lacks, and better fusion cannot close the gap.

Runs (or reads from its cache) each named rerank pipeline of a config and its retriever, on the config's LLM test
sample and validation sample, then compares on the test sample, against the retriever's order:
- the LLM alone, and fused as `promptrec eval` fuses (weight tuned on validation, the retriever unless the LLM
  leads beyond noise);
- the LLM's label scores minus their mean at each position (the label prior, from validation: the first label's
  pull), alone and fused the same way;
- LightGBM lambdarank over per-candidate features (position, retriever score, LLM score and rank), trained on the
  validation requests; and trained on the test requests themselves, 5 blocks cross-fitted (optimistic).
Writes lab/results/llm_fusion_ceiling.{json,md,png}.

    python lab/llm_fusion_ceiling.py [--config eval/configs/foursquare_nyc_gemma.yaml] [--pipeline NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # blend_ceiling, beside this file
OUT = Path(__file__).resolve().parent / "results"
K = 10
LGB_PARAMS = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 50,
              "verbose": -1, "seed": 0, "deterministic": True}
ROUNDS = 100


@dataclasses.dataclass
class Requests:
    """One part's rerank requests as arrays: candidates in the retriever's order."""

    llm: np.ndarray  # requests x candidates, the LLM's label log-probabilities
    retriever: np.ndarray  # the retriever's scores (-inf: not recommendable)
    truth: np.ndarray  # the truth's position among the candidates, -1 when it is not among them
    tail: np.ndarray  # the truth's rank when it is not among them (the retriever's, else a miss)


def as_requests(records: list[dict], truths: dict[int, str], tail_ranks: dict[int, int] | None = None) -> Requests:
    """Records of `promptrec eval` (EvalRun.llm_records) as arrays; every request must have the same number of
    candidates."""
    from promptrec.eval.pipelines import MISS

    llm = np.array([r["llm"] for r in records], dtype=float)
    retr = np.array([[-np.inf if v is None else v for v in r["retr"]] for r in records], dtype=float)
    truth = np.array([r["cands"].index(truths[r["i"]]) if truths[r["i"]] in r["cands"] else -1 for r in records])
    tail = np.array([max(len(r["cands"]), (tail_ranks or {}).get(r["i"], MISS)) for r in records])
    return Requests(llm, retr, truth, tail)


def ranks_of(scores: np.ndarray, req: Requests) -> np.ndarray:
    """0-based rank of each request's truth under ``scores`` (ties keep the retriever's order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    found = np.argmax(order == req.truth[:, None], axis=1)
    return np.where(req.truth >= 0, found, req.tail)


def position_prior(req: Requests) -> np.ndarray:
    """The mean label log-probability at each candidate position: what the LLM gives a position whatever is there."""
    return req.llm.mean(axis=0)


def fused(llm: np.ndarray, req: Requests, weight: float) -> np.ndarray:
    """Scores whose order is `promptrec.reranker.fusion.fused_order`'s, row by row."""
    from promptrec.reranker.fusion import fuse

    return np.vstack([fuse(l, r, weight) for l, r in zip(llm, req.retriever)])


def tuned_fusion(valid_llm: np.ndarray, valid: Requests) -> float:
    """The fusion weight `promptrec eval` would choose on these validation requests."""
    from promptrec.reranker.fusion import FUSION_GRID, choose_fusion

    return choose_fusion({a: ranks_of(fused(valid_llm, valid, a), valid) for a in FUSION_GRID})


def features(req: Requests) -> np.ndarray:
    """Per candidate: position, retriever score (z in the request), LLM score (z, and below the request's best),
    LLM rank."""
    from promptrec.reranker.fusion import z_scores

    n, k = req.llm.shape
    cols = [np.tile(np.arange(k, dtype=float), (n, 1)), np.vstack([z_scores(r) for r in req.retriever]),
            np.vstack([z_scores(x) for x in req.llm]), req.llm - req.llm.max(axis=1, keepdims=True),
            np.argsort(np.argsort(-req.llm, axis=1, kind="stable"), axis=1).astype(float)]
    return np.stack(cols, axis=-1).reshape(n * k, len(cols))


def labels(req: Requests) -> np.ndarray:
    y = np.zeros(req.llm.shape)
    hit = req.truth >= 0
    y[np.flatnonzero(hit), req.truth[hit]] = 1
    return y.ravel()


def stacked(train: Requests, test: Requests) -> np.ndarray:
    """Scores of a lambdarank model trained on ``train``'s requests."""
    import lightgbm as lgb

    k = train.llm.shape[1]
    model = lgb.train(LGB_PARAMS, lgb.Dataset(features(train), labels(train), group=[k] * len(train.llm)),
                      num_boost_round=ROUNDS)
    return model.predict(features(test)).reshape(test.llm.shape)


def subset(req: Requests, mask: np.ndarray) -> Requests:
    return Requests(req.llm[mask], req.retriever[mask], req.truth[mask], req.tail[mask])


def cross_fitted(req: Requests, folds: int = 5) -> np.ndarray:
    """Each block of requests scored by a model trained on the other blocks (the order given: in time)."""
    from blend_ceiling import cross_fitted as by_folds

    n, k = req.llm.shape
    rows = SimpleNamespace(features=features(req), labels=labels(req), groups=np.full(n, k))
    return by_folds(rows, np.arange(n) * folds // n, LGB_PARAMS, ROUNDS).reshape(n, k)


def compare(valid: Requests, test: Requests) -> dict[str, dict]:
    """Each way of using the LLM, as test ranks with what was tuned on validation."""
    prior = position_prior(valid)
    position = -np.arange(test.llm.shape[1], dtype=float)
    rows = {"the retriever's order": (ranks_of(np.tile(position, (len(test.llm), 1)), test), {})}
    rows["the LLM alone"] = (ranks_of(test.llm, test), {})
    w = tuned_fusion(valid.llm, valid)
    rows["fused as `promptrec eval` fuses"] = (ranks_of(fused(test.llm, test, w), test), {"weight": w})
    rows["the LLM minus its label prior, alone"] = (ranks_of(test.llm - prior, test), {"prior": prior.round(3).tolist()})
    w = tuned_fusion(valid.llm - prior, valid)
    rows["the LLM minus its label prior, fused"] = (ranks_of(fused(test.llm - prior, test, w), test), {"weight": w})
    rows["LightGBM over both, trained on the validation requests"] = (ranks_of(stacked(valid, test), test), {})
    rows["the same trained on the test requests, 5 blocks cross-fitted (optimistic)"] = (
        ranks_of(cross_fitted(test), test), {})
    return rows


def summary(rows: dict[str, tuple[np.ndarray, dict]], seed: int) -> dict[str, dict]:
    """Metrics of each row and its paired lead over the retriever's order (95% bootstrap)."""
    from promptrec.metrics import hit_rate, mrr, ndcg
    from promptrec.eval.report import paired_differences

    base_name = next(iter(rows))
    out = {}
    for name, (r, info) in rows.items():
        lead = {"lead": 0.0, "ci95": (0.0, 0.0)} if name == base_name else paired_differences(
            {name: r, base_name: rows[base_name][0]}, name, [1, K], 1000, seed)[base_name]["NDCG@10"]
        out[name] = {"Acc@1": hit_rate(r, 1), "Acc@10": hit_rate(r, K), "NDCG@10": ndcg(r, K), "MRR": mrr(r),
                     "lead NDCG@10": lead["lead"], "lead NDCG@10 ci95": lead["ci95"], **info}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="eval/configs/foursquare_nyc_gemma.yaml")
    ap.add_argument("--pipeline", action="append",
                    help="a rerank pipeline of the config (repeatable; default: every one with fusion: tune)")
    ap.add_argument("--results", default=None,
                    help="where `promptrec eval` keeps this config's cache (default: /tmp/promptrec-<config name>)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    from promptrec.eval.config import load_config
    from promptrec.eval.runner import EvalRun

    started = time.perf_counter()
    cfg = load_config(args.config)
    names = args.pipeline or [p.name for p in cfg.pipelines if p.uses_llm and p.options.get("fusion") == "tune"]
    chosen = [p for p in cfg.pipelines if p.name in names]
    if len(chosen) != len(names):
        raise SystemExit(f"{args.config} has no rerank pipeline named {sorted(set(names) - {p.name for p in chosen})}.")
    needed = {p.options["retriever"] for p in chosen} | set(names)
    cfg = dataclasses.replace(cfg, pipelines=[p for p in cfg.pipelines if p.name in needed], protocols=["full"])
    run = EvalRun(cfg, args.results or f"/tmp/promptrec-{cfg.name}").load()
    run.run()
    llm_requests = dict(run.llm_targets)  # computed in this run / read from the cache of an earlier one
    truths = {part: {t.index: t.item_id for t in targets}  # each part numbers its targets from 0
              for part, targets in (("test", run.test), ("validation", run.validation_sample()))}
    result = {"command": "python " + shlex.join(sys.argv), "config": args.config, "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": platform.platform(), "test_requests": len(run.llm_sample),
              "validation_requests": len(run.validation_sample()), "candidates": cfg.full_candidates,
              "llm_requests": llm_requests, "pipelines": {}}
    for p in chosen:
        tail = {r["i"]: r["rank"] for r in run.records[(p.options["retriever"], "full")]}
        test = as_requests(run.llm_records(p.name, "full", "test"), truths["test"], tail)
        valid = as_requests(run.llm_records(p.name, "full", "validation"), truths["validation"])
        order = np.argsort([t.now.value for t in run.llm_sample], kind="stable")  # blocks in time for cross-fitting
        result["pipelines"][p.name] = summary(compare(valid, subset(test, order)), cfg.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    from promptrec.eval.report import write_outputs

    print(write_outputs(result, args.out, "llm_fusion_ceiling", markdown, plot))


def plot(result: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    pipes = list(result["pipelines"])
    fig, axes = plt.subplots(1, len(pipes), figsize=(5.5 * len(pipes), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], pipes):
        rows = result["pipelines"][name]
        leads = [rows[r]["lead NDCG@10"] for r in rows]
        lo = [rows[r]["lead NDCG@10"] - rows[r]["lead NDCG@10 ci95"][0] for r in rows]
        hi = [rows[r]["lead NDCG@10 ci95"][1] - rows[r]["lead NDCG@10"] for r in rows]
        ax.barh(range(len(rows)), leads, xerr=[lo, hi], color="#1f77b4", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)), [r.replace("`", "")[:60] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("test NDCG@10 minus the retriever's (95% paired)")
    save_figure(fig, path, dpi=90)


def markdown(result: dict) -> str:
    lines = ["# Can fusing the LLM's scores beat the retriever?", "",
             f"Command: `{result['command']}` ({result['date']}, {result['machine']}; {result['seconds']} s; LLM "
             f"requests: {result['llm_requests']['computed']:,} computed, {result['llm_requests']['from_cache']:,} from "
             "the cache of an earlier run, about 0.27 s each on 2 CPU cores). "
             f"`{result['config']}`: the retriever's top {result['candidates']} for {result['test_requests']} test "
             f"and {result['validation_requests']} validation check-ins (the config's LLM samples); ranks over all "
             "items (a truth outside the top N keeps the retriever's rank). The label prior and the models are fitted "
             "on validation, except the cross-fitted one.", "", "![paired leads](llm_fusion_ceiling.png)", ""]
    for name, rows in result["pipelines"].items():
        lines += [f"## {name}", "", "| ranking | Acc@1 | Acc@10 | NDCG@10 | MRR | NDCG@10 lead over the retriever |"
                  " fusion weight |", "|---|---|---|---|---|---|---|"]
        for row, m in rows.items():
            lo, hi = m["lead NDCG@10 ci95"]
            lines.append(f"| {row} | {m['Acc@1']:.3f} | {m['Acc@10']:.3f} | {m['NDCG@10']:.4f} | {m['MRR']:.4f} | "
                         f"{m['lead NDCG@10']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {m.get('weight', '-')} |")
        prior = next((m["prior"] for m in rows.values() if "prior" in m), None)
        if prior:
            lines += ["", "Label prior (mean log-probability by position, validation): "
                      + ", ".join(f"{v:.2f}" for v in prior)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
