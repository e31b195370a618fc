"""The numbers of an evaluation report (``results.json``) from its per-target records.

Two populations per protocol: ``all`` (every test target; score pipelines) and ``llm_sample``
(the seeded sample the LLM pipelines ran on; every pipeline), so LLM and non-LLM methods are
compared on the same targets. Headline metrics carry 95% bootstrap intervals over targets;
paired differences against a reference pipeline, per time slice too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.metrics import (bootstrap_ci, coverage, hit_rate, intra_list_diversity, mrr, ndcg, ndcg_gains,
                               novelty, summarize)
from promptrec.eval.targets import SLICES

PROTOCOL_TITLES = {"full": "(a) full ranking over the items recommendable at now (unseen ones unless repeats are allowed)", "sampled": "(b) sampled candidates (true item + "
                   "{neg} unseen items, LLMRank style)", "retrieval": "(c) retrieval recall",
                   "candidates": "(d) given candidates (each test user's list from the candidates file)"}
BEYOND_K = 10


def _headline_k(ks: list[int]) -> int:
    return 10 if 10 in ks else max(ks)


def accuracy(ranks: np.ndarray, ks: list[int], n_boot: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = summarize(ranks, tuple(ks))
    h = _headline_k(ks)
    out[f"NDCG@{h}_ci95"] = bootstrap_ci(ranks, lambda r: ndcg(r, h), n_boot, seed)
    for k in ks:
        out[f"HR@{k}_ci95"] = bootstrap_ci(ranks, lambda r, k=k: hit_rate(r, k), n_boot, seed)
    out["MRR_ci95"] = bootstrap_ci(ranks, mrr, n_boot, seed)
    return out


def paired_differences(ranks: dict[str, np.ndarray], reference: str, ks: list[int], n_boot: int, seed: int
                       ) -> dict[str, dict[str, Any]]:
    """For each other pipeline: the reference's lead in HR@k, NDCG@10 and MRR on the same targets, with a
    95% paired bootstrap interval (resampling targets); 'beyond' when the interval excludes 0."""
    metrics = {f"HR@{k}": (lambda r, k=k: (r < k).astype(float)) for k in ks}
    metrics |= {"NDCG@10": lambda r: ndcg_gains(r, 10), "MRR": lambda r: 1.0 / (r + 1.0)}
    ref = ranks[reference]
    idx = np.random.default_rng(seed).integers(0, len(ref), (n_boot, len(ref)))
    out = {}
    for name, other in ranks.items():
        if name == reference:
            continue
        row = {}
        for m, per_target in metrics.items():
            d = per_target(ref) - per_target(other)
            boot = d[idx].mean(axis=1)
            lo, hi = float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
            row[m] = {"lead": float(d.mean()), "ci95": (lo, hi), "beyond": lo > 0 or hi < 0}
        out[name] = row
    return out


PAIRED_KEYS = (("paired", "full"), ("paired_sampled", "sampled"),
               ("paired_candidates", "candidates"))  # results.json key -> its protocol


def _records_on(run, name: str, proto: str, idx: list[int]) -> list[dict[str, Any]] | None:
    """A pipeline's records for the targets ``idx``, in that order; None when it did not run on all of them."""
    recs = {r["i"]: r for r in run.records.get((name, proto), [])}
    if not recs or any(i not in recs for i in idx):
        return None
    return [recs[i] for i in idx]


def _ranks_on(run, names: list[str], proto: str, idx: list[int]) -> dict[str, np.ndarray]:
    """The true item's rank per target ``idx`` for each pipeline that ran on all of them."""
    chosen = {name: _records_on(run, name, proto, idx) for name in names}
    return {name: np.array([r["rank"] for r in recs]) for name, recs in chosen.items() if recs is not None}


def _paired_on_llm_sample(run, names: list[str], sample_idx: list[int]) -> dict[str, dict[str, Any]]:
    """Per protocol: each tuned (adapter) or fused LLM pipeline's lead over every other pipeline on the LLM
    sample's targets (where they all ran), with paired bootstrap intervals: tuned vs zero-shot, fused vs the
    retriever."""
    cfg = run.cfg
    tuned = {p.name for p in cfg.pipelines if p.uses_llm and p.options.get("adapter")}
    out: dict[str, dict[str, Any]] = {}
    for proto in run.ranking_protocols:
        ranks = _ranks_on(run, names, proto, sample_idx)
        refs = [n for n in ranks if n in tuned or n.endswith(" + fusion")]
        if refs and len(ranks) > 1:
            out[proto] = {ref: paired_differences(ranks, ref, cfg.ks, cfg.bootstrap_samples, cfg.seed) for ref in refs}
    return out


def _pipeline_names(run) -> list[str]:
    names = []
    for p in run.cfg.pipelines:
        for name in (p.name, f"{p.name} + fusion"):
            if any(key[0] == name for key in run.records) and name not in names:
                names.append(name)
    return names


def build_results(run, meta: dict[str, Any]) -> dict[str, Any]:
    cfg = run.cfg
    names = _pipeline_names(run)
    all_idx = [t.index for t in run.test]
    sample_idx = [t.index for t in run.llm_sample]
    by_index = {t.index: t for t in run.test}
    train = run.split.train.frame["item_id"].astype(str).value_counts(normalize=True)  # ties: first seen first
    popularity = {str(k): float(v) for k, v in train.items()}
    ids = list(run.ds.catalog.ids)
    vectors = dict(zip(ids, run.index.vectors(ids)))
    h = _headline_k(cfg.ks)
    res: dict[str, Any] = {**meta, "pipelines": names, "protocols": {}, "slices": {}, "fusion": run.fusion,
                           "llm": run.llm_stats, "not_run": run.unavailable}
    for proto in run.ranking_protocols:
        res["protocols"][proto] = {}
        res["slices"][proto] = {}
        populations = [("all", all_idx)]
        if run.llm_stats and len(sample_idx) < len(all_idx):
            populations.append(("llm_sample", sample_idx))
        for pop, idx in populations:
            table, slices = {}, {}
            for name in names:
                chosen = _records_on(run, name, proto, idx)
                if chosen is None:
                    continue  # this pipeline did not run on this population
                ranks = np.array([r["rank"] for r in chosen])
                row = accuracy(ranks, cfg.ks, cfg.bootstrap_samples, cfg.seed)
                if proto == "full":
                    tops = [r["top"][:BEYOND_K] for r in chosen]
                    row |= {f"coverage@{BEYOND_K}": coverage(tops, len(ids)),
                            f"novelty@{BEYOND_K}": novelty(tops, popularity),
                            f"diversity@{BEYOND_K}": intra_list_diversity(tops, vectors)}
                table[name] = row
                slices[name] = {s: _sliced(chosen, by_index, s, h) for s in SLICES}
            res["protocols"][proto][pop] = table
            res["slices"][proto][pop] = slices
    if "retrieval" in cfg.protocols and "full" in res["protocols"]:
        res["protocols"]["retrieval"] = {"all": {
            name: {f"recall@{n}": hit_rate(np.array([r["rank"] for r in run.records[(name, "full")]]), n)
                   for n in cfg.retrieval_ns}
            for name in names if (name, "full") in run.records and len(run.records[(name, "full")]) == len(all_idx)}}
    # paired differences of each retriever pipeline against the others on the same targets: "paired" on full
    # ranking, "paired_sampled" on the sampled candidates (score pipelines that ran on every test target)
    for key, proto in PAIRED_KEYS:
        res[key] = {}
        for p in cfg.pipelines:
            if p.kind == "retriever" and (p.name, proto) in run.records:
                res[key][p.name] = paired_differences(_ranks_on(run, names, proto, all_idx), p.name, cfg.ks,
                                                      cfg.bootstrap_samples, cfg.seed)
    res["paired_llm"] = _paired_on_llm_sample(run, names, sample_idx)
    res["retrievers"] = {name: m.describe() | {"tuning": _tuning_summary(m.tuning)}
                         for name, m in run.models.items() if m.tuning}
    res["sequential"] = {f"{name} / {sig}": {k: v for k, v in s.training.items() if k != "history"}
                         for name, m in run.models.items() for sig, s in m.signals.items()
                         if getattr(s, "training", None)}
    res["adapters"] = adapter_summaries(run)
    res["reading"] = reading(res, h)
    return res


def _tuning_summary(tuning: dict[str, Any] | None) -> dict[str, Any] | None:
    if not tuning:
        return None
    keep = ("method", "objective", "validation_targets", "fit_targets", "stop_targets", "learned_stop_objective",
            "linear_stop_objective", "weights", "optional_signals", "seconds")
    out = {k: tuning[k] for k in keep if k in tuning}
    if "learned" in tuning:
        out["learned"] = {k: v for k, v in tuning["learned"].items() if k != "stop_ndcg@10_curve"}
    return out


def _negatives(data: dict[str, Any]) -> str:
    """What an adapter's training candidates were, from its manifest's data section."""
    if "hard_negatives" in data:
        return (f"{data['candidates']} candidates: {data['hard_negatives']} retriever hard negatives + "
                f"{data['random_negatives']} random")
    order = data.get("order", "shuffled")  # adapters from before the option were shuffled
    if data.get("protocol") == "sampled":
        shown = "in the retriever's order" if order == "retriever" else "shuffled"
        drawn = f"the true item + {data['candidates'] - 1} random ones, {shown}"
    else:
        drawn = f"the retriever's top {data['candidates']}, {'in its order' if order == 'retriever' else 'shuffled'}"
    return drawn + (", with evidence" if data.get("evidence") else "")


def adapter_summaries(run) -> dict[str, dict[str, Any]]:
    """How each LoRA adapter of the config was trained (from its manifest)."""
    from promptrec.reranker.adapter import read_manifest

    out = {}
    for p in run.cfg.pipelines:
        if p.uses_llm and p.options.get("adapter"):
            m = read_manifest(p.options["adapter"])
            out[p.name] = {"adapter": str(p.options["adapter"]), "base_model": m["base_model"]["name"],
                           "data": m["data"], "training": m["training"], "run": m["run"],
                           "validation_before": m["validation"]["before_training"],
                           "validation_best": m["validation"]["best"]}
    return out


def _sliced(records: list[dict[str, Any]], by_index: dict, slice_name: str, k: int) -> dict[str, dict[str, float]]:
    groups: dict[str, list[int]] = {}
    for r in records:
        groups.setdefault(by_index[r["i"]].slices[slice_name], []).append(r["rank"])
    return {b: {"n": len(v), f"NDCG@{k}": ndcg(np.array(v), k), f"HR@{k}": hit_rate(np.array(v), k)}
            for b, v in sorted(groups.items(), key=lambda kv: _bin_order(slice_name, kv[0]))}


def _bin_order(slice_name: str, label: str) -> int:
    from promptrec.eval.targets import GAP_BINS, HOUR_BINS, LENGTH_BINS

    bins = {"hours since previous event": GAP_BINS, "hour of day": HOUR_BINS, "history length": LENGTH_BINS}[slice_name]
    labels = [b[1] for b in bins]
    return labels.index(label) if label in labels else -1


def reading(res: dict[str, Any], h: int) -> list[str]:
    """Plain statements: the best pipeline per protocol and population, and whether its lead is beyond noise."""
    out = []
    key = f"NDCG@{h}"
    for proto, pops in res["protocols"].items():
        if proto == "retrieval":
            continue
        for pop, table in pops.items():
            if len(table) < 2:
                continue
            ranked = sorted(table, key=lambda n: -table[n][key])
            best, second = ranked[0], ranked[1]
            lo = table[best][f"{key}_ci95"][0]
            sure = "beyond" if table[second][key] < lo else "within"
            out.append(f"{proto} / {pop}: best is *{best}* ({key} {table[best][key]:.4f}); runner-up *{second}* "
                       f"({table[second][key]:.4f}) is {sure} its 95% interval.")
    return out
