"""Writing an evaluation's report: ``results.json`` (numbers, :mod:`promptrec.eval.results`), ``results.md``
(:mod:`promptrec.eval.markdown`) and the plots; ``write_outputs`` does the same for a lab study.
The report's public names stay importable from here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from promptrec.eval.config import RANKED_PROTOCOLS
from promptrec.eval.markdown import _sequential_md, markdown  # noqa: F401 (old path)
from promptrec.eval.results import (PAIRED_KEYS, PROTOCOL_TITLES, _headline_k, _negatives,  # noqa: F401 (old path)
                                    _paired_on_llm_sample, accuracy, adapter_summaries, build_results,
                                    paired_differences, reading)
from promptrec.eval.targets import SLICES
from promptrec.plots import pyplot, save_figure


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
    for proto in RANKED_PROTOCOLS:
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
