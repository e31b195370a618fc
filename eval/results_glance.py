"""README's results at a glance, drawn from the committed `promptrec eval` results: NDCG@10 with its 95% interval for
the baselines, SASRec, the time-aware retriever and the LLM on each data set, one panel per data set and protocol.
Reads eval/results/<run>/results.json only (nothing is recomputed); writes eval/results/glance.{md,json,png}, and
says which numbers of README's hand-written tables at a glance no longer match the results files they name.

    python eval/results_glance.py [--results eval/results] [--out eval/results]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "NDCG@10"

# (title, results folder, protocol, population, pipelines as named in that run)
PANELS = [
    ("NYC check-ins, full ranking", "foursquare-nyc", "full", "all",
     ["item co-occurrence", "user frequency by hour", "SASRec, 3 seeds", "time-aware retriever"]),
    ("NYC check-ins, LLM reranking the retriever's top 20", "foursquare-nyc-gemma", "full", "llm_sample",
     ["time-aware retriever", "Gemma 3 270M zero-shot + evidence", "Gemma tuned (one epoch)",
      "Gemma tuned (one epoch) + fusion"]),
    ("MovieLens 100K, full ranking", "ml100k-retriever", "full", "all",
     ["popularity", "item co-occurrence", "SASRec, text start, 3 seeds", "time-aware retriever",
      "time-aware retriever + SASRec, text start, 3 seeds"]),
    ("MovieLens 100K, true item + 19", "ml100k-retriever", "sampled", "all",
     ["popularity", "item co-occurrence", "SASRec, text start, 3 seeds", "time-aware retriever",
      "time-aware retriever + SASRec, text start, 3 seeds"]),
    ("MovieLens 100K, true item + 19 in the retriever's order", "ml100k-lora", "sampled", "llm_sample",
     ["popularity", "time-aware retriever", "zero-shot LLM (retriever order)", "tuned LLM (retriever order)",
      "tuned LLM (retriever order) + fusion"]),
    ("Demo (planted time effects), full ranking", "demo", "full", "all",
     ["content similarity", "SASRec, text start, 3 seeds", "time-blind retriever", "time-aware retriever"]),
]


def kind(pipeline: str) -> str:
    """What a pipeline is, for its colour: the LLM, the retriever, SASRec or a baseline."""
    if any(w in pipeline for w in ("LLM", "Gemma")):
        return "LLM"
    if "retriever" in pipeline:
        return "retriever"
    return "SASRec" if "SASRec" in pipeline else "baseline"


COLOURS = {"baseline": "#999999", "SASRec": "#2ca02c", "retriever": "#1f77b4", "LLM": "#ff7f0e"}


def collect(results: Path) -> list[dict]:
    """Each panel's rows (pipeline, NDCG@10, interval, targets) from the committed results files."""
    panels = []
    for title, run, protocol, population, pipelines in PANELS:
        path = results / run / "results.json"
        if not path.exists():
            raise SystemExit(f"{path} not found: run `promptrec eval` for {run} first (README, Evaluation).")
        res = json.loads(path.read_text())
        table = res["protocols"][protocol][population]
        missing = [p for p in pipelines if p not in table]
        if missing:
            raise SystemExit(f"{path}: no pipeline {missing} in protocol {protocol} / {population}; "
                             f"it has {sorted(table)}.")
        targets = res["llm_sample"] if population == "llm_sample" else res["test_targets"]
        panels.append({"title": title, "results": f"eval/results/{run}/results.md", "protocol": protocol,
                       "population": population, "targets": targets, "date": res["date"],
                       "rows": [{"pipeline": p, "kind": kind(p), METRIC: table[p][METRIC],
                                 "ci95": table[p][f"{METRIC}_ci95"]} for p in pipelines]})
    return panels


# README's column headers: (protocol or None for the table's own, metric in results.json)
README_COLUMNS = {"Acc@1": (None, "HR@1"), "Acc@5": (None, "HR@5"), "Acc@10": (None, "HR@10"),
                  "NDCG@10": (None, "NDCG@10"), "MRR": (None, "MRR"),
                  "full ranking NDCG@10": ("full", "NDCG@10"), "true item + 19 sampled NDCG@10": ("sampled", "NDCG@10")}


def readme_mismatches(readme: str, results: Path) -> list[str]:
    """Cells of the tables in README's *Results at a glance* that differ from the results file the table's
    paragraph names (`eval/results/<run>/results.md`), at the 3 decimals shown. A row is a pipeline as named in
    that run (bold and a trailing parenthesis are decoration); the tables of other sections are not read."""
    section = readme.split("## Results at a glance", 1)[-1].split("\n## ", 1)[0]
    problems, run = [], None
    lines = section.splitlines()
    for i, line in enumerate(lines):
        named = re.findall(r"`eval/results/([\w.-]+)/results\.md`", line)
        if named and not line.startswith("|"):
            run = named[0]
        if not (line.startswith("| pipeline |") and run):
            continue
        header = [c.strip() for c in line.strip("|").split("|")][1:]
        unknown = [h for h in header if h not in README_COLUMNS]
        if unknown:
            problems.append(f"README glance table for {run}: no rule for the columns {unknown}")
            continue
        table = json.loads((results / run / "results.json").read_text())["protocols"]
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            cells = [c.replace("**", "").strip() for c in row.strip("|").split("|")]
            pipeline = re.sub(r"\s*\([^()]*\)$", "", cells[0])
            for column, cell in zip(header, cells[1:]):
                protocol, metric = README_COLUMNS[column]
                scores = table[protocol or "full"]["all"].get(pipeline)
                if scores is None:
                    problems.append(f"README glance, {run}: no pipeline {pipeline!r} in its results")
                    break
                if cell != f"{scores[metric]:.3f}":
                    problems.append(f"README glance, {run}, {pipeline!r}, {column}: README says {cell}, "
                                    f"the results say {scores[metric]:.3f}")
    return problems


def markdown(result: dict) -> str:
    lines = ["# Results at a glance", "",
             f"Command: `{result['command']}` ({result['date']}). {METRIC} with its 95% bootstrap interval, read from "
             "each committed results file (the run's date beside it); nothing recomputed.", "",
             "![results at a glance](glance.png)", ""]
    for panel in result["panels"]:
        lines += [f"## {panel['title']} ({panel['targets']:,} targets)", "",
                  f"`{panel['results']}`, run {panel['date']}", "",
                  f"| pipeline | {METRIC} [95% interval] |", "|---|---|"]
        lines += [f"| {r['pipeline']} | {r[METRIC]:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] |"
                  for r in panel["rows"]]
        lines.append("")
    return "\n".join(lines)


def plot(panels: list[dict], out: Path) -> None:
    import textwrap

    from matplotlib.patches import Patch

    from promptrec.plots import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(3, 2, figsize=(15, 11))
    for ax, panel in zip(axes.ravel(), panels):
        rows = panel["rows"]
        values = [r[METRIC] for r in rows]
        errors = [[r[METRIC] - r["ci95"][0] for r in rows], [r["ci95"][1] - r[METRIC] for r in rows]]
        labels = [textwrap.fill(r["pipeline"], 30) for r in rows]
        ax.barh(labels, values, xerr=errors, color=[COLOURS[r["kind"]] for r in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, max(r["ci95"][1] for r in rows) * 1.18)
        for y, r in enumerate(rows):
            ax.text(r["ci95"][1], y, f" {r[METRIC]:.3f}", va="center", fontsize=8)
        ax.set_title(f"{panel['title']} ({panel['targets']:,})", fontsize=10)
        ax.set_xlabel(f"{METRIC} (95% interval)")
    fig.legend(handles=[Patch(color=c, label=k) for k, c in COLOURS.items()], loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out / "glance.png", dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS), help="folder of the committed eval results")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    panels = collect(Path(args.results))
    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"), "panels": panels}
    (out / "glance.json").write_text(json.dumps(result, indent=2))
    (out / "glance.md").write_text(markdown(result))
    plot(panels, out)
    print(f"wrote {out}/glance.md, .json and .png")
    readme = Path(__file__).resolve().parents[1] / "README.md"
    for problem in readme_mismatches(readme.read_text(), Path(args.results)):
        print(f"update README: {problem}")


if __name__ == "__main__":
    main()
