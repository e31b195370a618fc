"""The markdown of an evaluation report (``results.md``): tables per protocol and population, paired
differences, retriever and sequential details and time slices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptrec.eval.config import RANKED_PROTOCOLS
from promptrec.eval.results import BEYOND_K, PAIRED_KEYS, PROTOCOL_TITLES, _headline_k, _negatives
from promptrec.eval.targets import SLICES


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
    for proto in RANKED_PROTOCOLS:
        if proto not in res["protocols"]:
            continue
        title = PROTOCOL_TITLES[proto].format(neg=cfg["sampled_negatives"])
        lines += [f"## Protocol {title}", ""]
        if proto == "full":
            lines += [f"Rerank pipelines order the retriever's top {cfg['full_candidates']}; a true item outside "
                      "them keeps the retriever's rank (the tail stays in its order: MRR compares). Coverage, "
                      "novelty (mean self-information, bits) and diversity (mean pairwise "
                      f"cosine distance) are over the top {BEYOND_K}.", ""]
        if proto == "candidates" and res.get("candidates_file"):
            c = res["candidates_file"]
            size = c["candidates_per_target"]
            lines += [f"Every pipeline ranks the candidates `{Path(c['file']).name}` gives the test target's user "
                      f"({size['min']}" + (f"-{size['max']}" if size["max"] != size["min"] else "") + " per target; "
                      f"file digest `{c['digest']}`; {c['lines_without_test_target']} of its {c['lines']} lines "
                      "are for users without a test target).", ""]
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
        lines += ["## LLM calls", "", "Top pick shown first: how often the LLM's top item was the candidate shown first in "
                  "its prompt (on full ranking, the retriever's top item), against 1/candidates, what a pick blind to "
                  "position gives. Far above chance on sampled candidates is position bias: bootstrap (shuffled "
                  "candidate orders, averaged) is the remedy.", "",
                  "| pipeline | protocol | prompt tokens (mean) | parse fell back | top pick shown first (chance) | "
                  "example output |", "|---|---|---|---|---|---|"]
        for name, per in res["llm"].items():
            for proto, s in per.items():
                ex = " / ".join(str(o).replace("|", "\\|").replace("\n", " ")[:60] for o in s["example_outputs"][:1])
                first = (f"{s['top_pick_shown_first']:.0%} ({s['shown_first_by_chance']:.0%})"
                         if "top_pick_shown_first" in s else "not recorded")
                lines.append(f"| {name} | {proto} | {s['prompt_tokens_mean']:.0f} | {s['parse_fell_back']:.0%} | "
                             f"{first} | `{ex}` |")
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
    names = {"full": "full ranking", "sampled": "sampled candidates", "candidates": "given candidates"}
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
        lines.append(f"| {name} | {t.get('epochs_run')} ({t.get('best_epoch')}) | "
                     f"{t.get('stop_reason') or t.get('stopped_by')} | "
                     f"{t.get('valid_ndcg10')} | {t.get('seconds')} | {_cached_cell(t.get('from_cache'))} |")
    lines += ["", "Validation: each user's last training event, history before it (early stopping only)."
              " Times of cached models are those of their first training."]
    cut = [name for name, t in seq.items() if "time budget" in str(t.get("stopped_by"))
           or "time_budget" in str(t.get("stop_reason"))]
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
