"""README's results at a glance, drawn from the committed `promptrec eval` results: NDCG@10 with its 95% interval for
the baselines, SASRec, the time-aware retriever and the LLM on each data set, one panel per data set and protocol.
Reads eval/results/<run>/results.json only (nothing is recomputed); writes eval/results/glance.{md,json,png}, and
says which numbers of the hand-written results tables (README's *Results*, every docs/ page) no longer match the
results files they name.

    python eval/results_glance.py [--results eval/results] [--out eval/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
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


# Column headers of the hand-written tables: (protocol or None for the table's own, metric in results.json)
README_COLUMNS = {"Acc@1": (None, "HR@1"), "Acc@5": (None, "HR@5"), "Acc@10": (None, "HR@10"),
                  "NDCG@10": (None, "NDCG@10"), "MRR": (None, "MRR"), "recall@20": ("retrieval", "recall@20"),
                  "full ranking NDCG@10": ("full", "NDCG@10"), "true item + 19 sampled NDCG@10": ("sampled", "NDCG@10")}
# Columns that say where a row's numbers come from, or only describe it
SOURCE_COLUMNS = {"pipeline", "protocol", "targets", "results", "data set", "role"}
RUN_LINK = re.compile(r"eval/results/([\w.-]+)/results\.md")


def _cells(row: str) -> list[str]:
    return [c.replace("**", "").strip() for c in row.strip().strip("|").split("|")]


def _population(res: dict, targets: str) -> str:
    """'all' or 'llm_sample', from a row's target count (empty: all)."""
    n = int(targets.replace(",", "")) if targets.strip() else None
    if n is None or n == res.get("test_targets"):
        return "all"
    if n == res.get("llm_sample"):
        return "llm_sample"
    raise ValueError(f"{n:,} targets: the run has {res.get('test_targets')} test targets and an LLM sample of "
                     f"{res.get('llm_sample')}")


def table_mismatches(text: str, results: Path, label: str, fixes: list | None = None) -> list[str]:
    """Cells of every hand-written results table in ``text`` that differ from the results file it names, at the
    3 decimals shown. A table is one whose header has a `pipeline` column and metric columns (README_COLUMNS);
    its run is the row's `results` cell (a link to `eval/results/<run>/results.md`, carried down when empty)
    or else the last such path named in a paragraph above it. Optional columns: `protocol` (full, sampled,
    retrieval; default the metric's own, else full) and `targets` (the row's population: the run's test
    targets or its LLM sample; carried down when empty). A pipeline is named as in that run; bold and a trailing
    parenthesis that is not part of the name are decoration. Empty and "-" cells are not read. ``fixes``, if
    given, receives (line index, column index, value shown, value in the results) for every differing cell."""
    problems, run, lines = [], None, text.splitlines()
    for i, line in enumerate(lines):
        named = RUN_LINK.findall(line)
        if named and not line.startswith("|"):
            run = named[-1]
        if not line.startswith("|") or (i and lines[i - 1].startswith("|")):
            continue
        header = _cells(line)
        if "pipeline" not in header or not any(h in README_COLUMNS for h in header):
            continue
        unknown = [h for h in header if h not in README_COLUMNS and h not in SOURCE_COLUMNS]
        if unknown:
            problems.append(f"{label} table under {run}: no rule for the columns {unknown}")
            continue
        row_run, protocol_cell, targets_cell = run, "", ""
        for row_index, row in enumerate(lines[i + 2:], start=i + 2):
            if not row.startswith("|"):
                break
            cells = dict(zip(header, _cells(row)))
            linked = RUN_LINK.findall(cells.get("results", ""))
            row_run = linked[0] if linked else row_run
            protocol_cell = cells.get("protocol") or protocol_cell
            targets_cell = cells.get("targets") or targets_cell
            if row_run is None:
                problems.append(f"{label}: a table names no results file")
                break
            if not (results / row_run / "results.json").exists():
                problems.append(f"{label}: {results / row_run / 'results.json'} not found")
                break
            res = json.loads((results / row_run / "results.json").read_text())
            try:
                population = _population(res, targets_cell)
            except ValueError as e:
                problems.append(f"{label}, {row_run}, {cells['pipeline']!r}: {e}")
                continue
            for column, cell in cells.items():
                if column not in README_COLUMNS or cell in ("", "-", "–", "—"):
                    continue
                own, metric = README_COLUMNS[column]
                protocol = own or protocol_cell or "full"
                table = res["protocols"].get(protocol, {}).get(population, {})
                pipeline = cells["pipeline"]
                if pipeline not in table:
                    pipeline = re.sub(r"\s*\([^()]*\)$", "", pipeline)
                scores = table.get(pipeline)
                if scores is None:
                    problems.append(f"{label}, {row_run}: no pipeline {pipeline!r} in its results "
                                    f"({protocol}, {population})")
                    break
                if cell.split()[0] != f"{scores[metric]:.3f}":
                    if fixes is not None:
                        fixes.append((row_index, header.index(column), cell.split()[0], f"{scores[metric]:.3f}"))
                    problems.append(f"{label}, {row_run}, {pipeline!r}, {column}: {label} says {cell}, "
                                    f"the results say {scores[metric]:.3f}")
    return problems


def fixed_tables(text: str, results: Path) -> str:
    """``text`` with every results-table cell that differs from its results file set to the file's value (the
    cell's decoration, e.g. bold or an interval after the number, kept)."""
    fixes: list = []
    table_mismatches(text, results, "", fixes)
    lines = text.splitlines(keepends=True)
    for line_index, column, shown, value in fixes:
        parts = lines[line_index].split("|")
        parts[column + 1] = parts[column + 1].replace(shown, value, 1)  # parts[0] is before the leading '|'
        lines[line_index] = "|".join(parts)
    return "".join(lines)


def readme_mismatches(readme: str, results: Path) -> list[str]:
    """table_mismatches for README's results section (from its `## Results` heading to the next `## `)."""
    found = re.search(r"^## Results.*?(?=^## |\Z)", readme, re.S | re.M)
    return table_mismatches(found.group(0) if found else "", results, "README")


def docs_mismatches(root: Path, results: Path) -> list[str]:
    """table_mismatches for every page of docs/ (a page without results tables has none)."""
    problems = []
    for page in sorted((root / "docs").rglob("*.md")):
        problems += table_mismatches(page.read_text(), results, str(page.relative_to(root)))
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
    ap.add_argument("--fix", action="store_true", help="rewrite README's and docs' results-table cells that differ "
                                                        "from the committed results (then review the diff: the prose "
                                                        "around them is yours to update)")
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
    if args.fix:
        for page in [readme, *sorted((readme.parent / "docs").rglob("*.md"))]:
            text = page.read_text()
            fixed = fixed_tables(text, Path(args.results))
            if fixed != text:
                page.write_text(fixed)
                print(f"fixed: {page.relative_to(readme.parent)}")
        shutil.copy(out / "glance.png", readme.parent / "docs" / "assets" / "glance.png")  # the docs' copy
    for problem in readme_mismatches(readme.read_text(), Path(args.results)) + docs_mismatches(readme.parent,
                                                                                                Path(args.results)):
        print(f"update: {problem}")


if __name__ == "__main__":
    main()
