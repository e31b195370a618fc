"""Metrics tables, JSON and plots from an evaluation's per-target records.

Two populations per protocol: ``all`` (every test target; score pipelines) and ``llm_sample``
(the seeded sample the LLM pipelines ran on; every pipeline), so LLM and non-LLM methods are
compared on the same targets. Headline metrics carry 95% bootstrap intervals over targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from promptrec.eval.metrics import (bootstrap_ci, coverage, hit_rate, intra_list_diversity, mrr, ndcg, ndcg_gains,
                                    novelty, summarize)
from promptrec.eval.targets import SLICES
from promptrec.plots import pyplot, save_figure

PROTOCOL_TITLES = {"full": "(a) full ranking over the items recommendable at now (unseen ones unless repeats are allowed)", "sampled": "(b) sampled candidates (true item + "
                   "{neg} unseen items, LLMRank style)", "retrieval": "(c) retrieval recall"}
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
            row[m] = {"lead": float(d.mean()), "ci95": (lo, hi), "beyond": lo > 0}
        out[name] = row
    return out


PAIRED_KEYS = (("paired", "full"), ("paired_sampled", "sampled"))  # results.json key -> its protocol


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
    train = run.split.train.frame["item_id"].value_counts(normalize=True)
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
    from promptrec.finetune.adapter import read_manifest

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


# -- writing --------------------------------------------------------------------------------------
def write_report(res: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=2, default=_json_default))
    plots = plot_headline(res, out) + plot_slices(res, out)
    (out / "results.md").write_text(markdown(res, plots))


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    return str(x)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown(res: dict[str, Any], plots: list[str]) -> str:
    cfg = res["config"]
    h = _headline_k(cfg["ks"])
    lines = [f"# Evaluation '{cfg['name']}' on {res['dataset']}", "",
             f"Command: `{res['command']}` ({res['date']}, {res['machine']}; {res['seconds']} s"
             + (f"; LLM results of {res['llm_targets']['from_cache']:,} of "
                f"{res['llm_targets']['from_cache'] + res['llm_targets']['computed']:,} target runs came from the "
                "cache of an earlier run of this config" if res.get("llm_targets", {}).get("from_cache") else "")
             + _score_cache_note(res.get("score_cache", {}))
             + "). "
             f"Config fingerprint `{res['fingerprint']}` (resolved config in `config.resolved.yaml`).", "",
             f"Split {res['split']['split']}: {res['test_targets']:,} test targets"
             + (f"; LLM pipelines ran on a seeded sample of {res['llm_sample']:,} of them (seed {cfg['seed']})"
                if res["llm"] else "") + ". Every protocol: history strictly before "
             f"`now`, same-second events ordered at random (seed {cfg['dataset']['tie_seed']}). Intervals: 95% "
             f"bootstrap over targets ({cfg['bootstrap_samples']} resamples).", ""]
    if res["reading"]:
        lines += ["## Reading", ""] + [f"- {r}" for r in res["reading"]] + [""]
    for proto in ("full", "sampled"):
        if proto not in res["protocols"]:
            continue
        title = PROTOCOL_TITLES[proto].format(neg=cfg["sampled_negatives"])
        lines += [f"## Protocol {title}", ""]
        if proto == "full":
            lines += [f"Rerank pipelines order the retriever's top {cfg['full_candidates']}; a true item outside "
                      "them keeps the retriever's rank (the tail stays in its order: MRR compares). Coverage, "
                      "novelty (mean self-information, bits) and diversity (mean pairwise "
                      f"cosine distance) are over the top {BEYOND_K}.", ""]
        for pop, table in res["protocols"][proto].items():
            if not table:
                continue
            n = res["test_targets"] if pop == "all" else res["llm_sample"]
            lines += [f"### {'all test targets' if pop == 'all' else 'LLM sample'} ({n:,} targets)", ""]
            lines += _table(table, cfg["ks"], h, beyond=proto == "full") + [""]
    if "retrieval" in res["protocols"]:
        table = res["protocols"]["retrieval"]["all"]
        cols = [f"recall@{n}" for n in cfg["retrieval_ns"]]
        lines += ["## Protocol (c) retrieval recall (all test targets, all recommendable items)", "",
                  "| pipeline | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in cols) + " |" for name, row in table.items()]
        lines.append("")
    lines += _paired_md(res) + _retrievers_md(res) + _sequential_md(res)
    lines += _slices_md(res, h)
    if res["fusion"]:
        lines += ["## Fusion of LLM and retriever scores", "",
                  "Final score = (1 - w) z(LLM) + w z(retriever). The weight with the best validation NDCG@10 is "
                  "kept only if its gain over the retriever alone (w = 1) is beyond noise (paired one-sided test at 5%, "
                  "Bonferroni-corrected for the weights tried); "
                  "otherwise w = 1 and the retriever's order stands.", ""]
        for name, per in res["fusion"].items():
            for proto, info in per.items():
                lines.append(f"- {name} [{proto}]: weight {info['weight']:g} on the retriever ({info['tuned_on']}).")
        lines.append("")
    for name, a in res.get("adapters", {}).items():
        before, best, run = a["validation_before"] or {}, a["validation_best"] or {}, a["run"]
        lines += [f"## Adapter of '{name}'", "",
                  f"`{a['adapter']}` on {a['base_model']}: LoRA rank {a['training']['rank']}, alpha "
                  f"{a['training']['alpha']}, lr {a['training']['learning_rate']}, batch {a['training']['batch_size']}; "
                  f"{a['data']['train_examples']} training examples from the training split ({_negatives(a['data'])}), "
                  f"{run['steps']} of {run['planned_steps']} steps in {run['seconds'] / 60:.1f} min "
                  f"({run['stopped']}; bf16 {run['bf16']}). Validation NDCG@10 on {a['data']['validation_examples']} "
                  f"examples held out in time: {before.get('NDCG@10', float('nan')):.4f} before training, "
                  f"{best.get('NDCG@10', float('nan')):.4f} at the kept step {best.get('step', '-')}.", ""]
    if res["llm"]:
        lines += ["## LLM calls", "", "| pipeline | protocol | prompt tokens (mean) | parse fell back | example output |",
                  "|---|---|---|---|---|"]
        for name, per in res["llm"].items():
            for proto, s in per.items():
                ex = " / ".join(str(o).replace("|", "\\|").replace("\n", " ")[:60] for o in s["example_outputs"][:1])
                lines.append(f"| {name} | {proto} | {s['prompt_tokens_mean']:.0f} | {s['parse_fell_back']:.0%} | `{ex}` |")
        lines.append("")
    if res["not_run"]:
        lines += ["## Not run", ""] + [f"- {name}: {why}" for name, why in res["not_run"].items()] + [""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    v = res["versions"]
    lines += ["Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    return "\n".join(lines)


def _table(table: dict[str, dict[str, Any]], ks: list[int], h: int, beyond: bool) -> list[str]:
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks] + ["MRR"]
    extra = [f"coverage@{BEYOND_K}", f"novelty@{BEYOND_K}", f"diversity@{BEYOND_K}"] if beyond else []
    ci_cols = [c for c in (f"NDCG@{h}", "HR@1", f"HR@{h}", "MRR") if f"{c}_ci95" in next(iter(table.values()))]
    head = ["pipeline"] + cols + [f"{c} [95% CI]" for c in ci_cols] + extra
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, row in table.items():
        cis = [f"[{row[f'{c}_ci95'][0]:.3f}, {row[f'{c}_ci95'][1]:.3f}]" for c in ci_cols]
        cells = [name] + [f"{row[c]:.4f}" for c in cols] + cis + [_fmt(row[c]) for c in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_md(res: dict[str, Any]) -> list[str]:
    lines = []
    names = {"full": "full ranking", "sampled": "sampled candidates"}
    blocks = [(f"{names[proto]}, all test targets", ref, others) for key, proto in PAIRED_KEYS
              for ref, others in res.get(key, {}).items()]
    blocks += [(f"{names[proto]}, LLM sample", ref, others)
               for proto, refs in res.get("paired_llm", {}).items() for ref, others in refs.items()]
    for where, ref, others in blocks:
        if not others:
            continue
        metrics = list(next(iter(others.values())))
        lines += [f"## Paired differences: *{ref}* minus each other pipeline ({where})", "",
                  "Lead on the same targets with a 95% paired bootstrap interval; **bold**: beyond the interval "
                  "(it excludes 0).", "", "| pipeline | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for name, row in others.items():
            cells = []
            for m in metrics:
                c = row[m]
                text = f"{c['lead']:+.4f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
                cells.append(f"**{text}**" if c["beyond"] else text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _sequential_md(res: dict[str, Any]) -> list[str]:
    seq = res.get("sequential") or {}
    if not seq:
        return []
    lines = ["## Sequential models trained in this run", "",
             "| pipeline / signal | epochs (best) | stopped by | validation NDCG@10 | seconds | from cache |",
             "|---|---|---|---|---|---|"]
    for name, t in seq.items():
        lines.append(f"| {name} | {t.get('epochs_run')} ({t.get('best_epoch')}) | {t.get('stopped_by')} | "
                     f"{t.get('valid_ndcg10')} | {t.get('seconds')} | {_cached_cell(t.get('from_cache'))} |")
    lines += ["", "Validation: each user's last training event, history before it (early stopping only)."
              " Times of cached models are those of their first training."]
    cut = [name for name, t in seq.items() if "time budget" in str(t.get("stopped_by"))]
    if cut:
        lines += ["", f"**Cut by the time budget before early stopping: {', '.join(cut)}.** How far these models got "
                  "depends on this machine's speed and load, and so do the results of every pipeline that uses them: "
                  "raise `max_minutes` in their settings for results that another machine reproduces."]
    return lines + [""]


def _score_cache_note(cache: dict[str, list[str]]) -> str:
    """Which score pipelines' records came from the cache (each checked against its refitted model first)."""
    note = ""
    if cache.get("reused"):
        note += (f"; records of {len(cache['reused'])} score pipeline(s) came from the cache, after each refitted "
                 "model reproduced its first cached test targets")
    if cache.get("stale"):
        note += f"; cached records of {', '.join(cache['stale'])} were stale (the refitted model differed): recomputed"
    return note


def _cached_cell(from_cache: Any) -> str:
    """'no', 'yes' (one model, from the cache folder) or an ensemble's 'k of n models'."""
    return "no" if not from_cache else str(from_cache) if str(from_cache).endswith(" models") else "yes"


def _retrievers_md(res: dict[str, Any]) -> list[str]:
    lines = []
    for name, d in res.get("retrievers", {}).items():
        t = d.get("tuning") or {}
        lines += [f"## Blend of *{name}*", "", f"Signals: {', '.join(d['signals'])}. Repeats: "
                  f"{d['repeats']['setting']} (training repeat rate {d['repeats']['training_repeat_rate']:.3f}: "
                  f"{'allowed' if d['repeats']['allowed'] else 'excluded'}). Blend: {d['blend']} ({t.get('method', '-')}).", ""]
        if "learned_stop_objective" in t:
            lines.append(f"On the later {t.get('stop_targets')} validation targets ({t.get('objective')}): learned "
                         f"{t['learned_stop_objective']:.4f}" + (f", linear {t['linear_stop_objective']:.4f}"
                                                                 if "linear_stop_objective" in t else "") + ".")
            learned = t.get("learned") or {}
            used = (learned.get("earlier_windows") or {}).get("used")
            if learned.get("fit_queries_from_earlier_windows"):
                lines[-1] += (f" The learned blend trained on {learned['fit_queries']:,} queries, "
                              f"{learned['fit_queries_from_earlier_windows']:,} of them from "
                              f"{'?' if used is None else used} earlier window(s).")
            if learned.get("config"):
                settings = {k: str(v) for k, v in learned["config"].items()}
                if used is not None and str(used) != settings.get("earlier_windows"):
                    settings["earlier_windows"] += f" ({used} used)"
                lines[-1] += " Its settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + "."
            lines.append("")
        opt = t.get("optional_signals")
        if opt and "stop_objective_without" in opt:
            lines += [f"Optional signal(s) {', '.join(opt['signals'])}: **{'kept' if opt['kept'] else 'dropped'}** "
                      f"(later validation targets: {opt['stop_objective_with']:.4f} with, "
                      f"{opt['stop_objective_without']:.4f} without).", ""]
        imp = (t.get("learned") or {}).get("importance_gain_share")
        if imp and d["blend"].startswith("learned"):
            lines += ["| feature | share of gain |", "|---|---|"]
            lines += [f"| {f} | {v:.3f} |" for f, v in list(imp.items())[:15]] + [""]
        elif t.get("weights"):
            lines.append("Weights: " + ", ".join(f"{k} {v:g}" for k, v in t["weights"].items()) + ".")
            lines.append("")
    return lines


def _slices_md(res: dict[str, Any], h: int) -> list[str]:
    out = []
    for proto, pops in res["slices"].items():
        for pop, per in pops.items():
            if not per:
                continue
            out += [f"## Time slices: NDCG@{h} by slice ({proto} protocol, "
                    f"{'all test targets' if pop == 'all' else 'LLM sample'})", ""]
            for s in SLICES:
                bins = list(next(iter(per.values()))[s])
                counts = next(iter(per.values()))[s]
                out += [f"**{s}**", "", "| pipeline | " + " | ".join(f"{b} (n={counts[b]['n']})" for b in bins) + " |",
                        "|---" * (len(bins) + 1) + "|"]
                out += [f"| {name} | " + " | ".join(f"{sl[s][b][f'NDCG@{h}']:.4f}" for b in bins) + " |"
                        for name, sl in per.items()]
                out.append("")
    return out


def write_outputs(result: dict[str, Any], out: str | Path, stem: str, markdown, plot) -> str:
    """A study's ``<stem>.json``, ``.md`` (``markdown(result)``) and ``.png`` (``plot(result, path)``) in ``out``;
    returns the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=_json_default))
    text = markdown(result)
    (out / f"{stem}.md").write_text(text)
    plot(result, out / f"{stem}.png")
    return text


def plot_headline(res: dict[str, Any], out: Path) -> list[str]:
    """One figure per protocol: NDCG@h with 95% intervals, a panel per population."""
    plt = pyplot()
    h = _headline_k(res["config"]["ks"])
    key = f"NDCG@{h}"
    files = []
    for proto in ("full", "sampled"):
        pops = {p: t for p, t in res["protocols"].get(proto, {}).items() if t}
        if not pops:
            continue
        rows = max(len(t) for t in pops.values())
        fig, axes = plt.subplots(1, len(pops), figsize=(6.5 * len(pops), 0.45 * rows + 1.6), squeeze=False)
        for ax, (pop, table) in zip(axes[0], pops.items()):
            names = list(table)
            vals = np.array([table[n][key] for n in names])
            ci = np.array([table[n][f"{key}_ci95"] for n in names])
            err = np.vstack([vals - ci[:, 0], ci[:, 1] - vals]).clip(0)
            colors = ["#1f77b4" if "fusion" in n or n in res["llm"] else "#888" for n in names]
            ax.barh(names, vals, xerr=err, color=colors)
            ax.invert_yaxis()
            ax.set_xlabel(f"{key} (95% CI)")
            ax.set_title("all test targets" if pop == "all" else f"LLM sample ({res['llm_sample']})")
        fig.suptitle(f"{res['dataset']}: protocol {PROTOCOL_TITLES[proto].split(' (')[0]}")
        name = f"{key.lower().replace('@', '')}_{proto}.png"
        save_figure(fig, out / name, dpi=100)
        files.append(name)
    return files


def plot_slices(res: dict[str, Any], out: Path) -> list[str]:
    """NDCG@h per time slice for the full protocol (or the first one run), one panel per slice."""
    plt = pyplot()
    h = _headline_k(res["config"]["ks"])
    proto = "full" if "full" in res["slices"] else next(iter(res["slices"]), None)
    if proto is None:
        return []
    pop = "all" if res["slices"][proto].get("all") else "llm_sample"
    per = res["slices"][proto][pop]
    if not per:
        return []
    fig, axes = plt.subplots(1, len(SLICES), figsize=(6 * len(SLICES), 4.2 + 0.25 * (len(per) // 5 + 1)))
    for ax, s in zip(axes, SLICES):
        bins = list(next(iter(per.values()))[s])
        width = 0.8 / len(per)
        for j, (name, sl) in enumerate(per.items()):
            ax.bar(np.arange(len(bins)) + j * width, [sl[s][b][f"NDCG@{h}"] for b in bins], width, label=name)
        counts = next(iter(per.values()))[s]
        ax.set_xticks(np.arange(len(bins)) + 0.4 - width / 2, [f"{b}\n(n={counts[b]['n']})" for b in bins], fontsize=8)
        ax.set_title(s)
        ax.set_ylabel(f"NDCG@{h}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    fig.suptitle(f"{res['dataset']}: NDCG@{h} by time slice ({proto} protocol, "
                 f"{'all test targets' if pop == 'all' else 'LLM sample'})")
    fig.tight_layout(rect=(0, 0.06 + 0.04 * (len(per) // 5), 1, 1))
    fig.savefig(out / "time_slices.png", dpi=100)
    plt.close(fig)
    return ["time_slices.png"]
