"""eval/results_glance.py: README's figure and tables come from the committed results files, and name real pipelines."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

_EVAL = Path(__file__).resolve().parents[1] / "eval"
_spec = importlib.util.spec_from_file_location("results_glance", _EVAL / "results_glance.py")
glance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(glance)


def test_every_panel_reads_its_pipelines_from_the_committed_results():
    panels = glance.collect(_EVAL / "results")
    assert len(panels) == len(glance.PANELS)
    for panel in panels:
        assert panel["targets"] > 0 and len(panel["rows"]) >= 4
        for row in panel["rows"]:
            low, high = row["ci95"]
            assert 0 <= low <= row["NDCG@10"] <= high <= 1, row
    nyc = {r["pipeline"]: r["NDCG@10"] for r in panels[0]["rows"]}
    assert nyc["time-aware retriever"] > max(v for k, v in nyc.items() if k != "time-aware retriever")
    committed = json.loads((_EVAL / "results" / "glance.json").read_text())["panels"]
    assert [p["rows"] for p in committed] == [p["rows"] for p in panels], (
        "eval/results/glance.* is older than the results it reads: run python eval/results_glance.py "
        "(and update README's tables at a glance)")


def test_a_missing_pipeline_says_which_ones_the_run_has(tmp_path):
    run = tmp_path / "foursquare-nyc"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"protocols": {"full": {"all": {"random": {}}}},
                                                  "test_targets": 3, "llm_sample": 0, "date": "today"}))
    with pytest.raises(SystemExit, match=r"no pipeline .*item co-occurrence.* it has \['random'\]"):
        glance.collect(tmp_path)


def test_readme_results_table_matches_the_results_it_names():
    readme = (_EVAL.parent / "README.md").read_text()
    assert "| pipeline |" in readme.split("## Results", 1)[1], "README's results table is gone or renamed"
    assert glance.readme_mismatches(readme, _EVAL / "results") == [], (
        "README's results table differs from the committed results: update it (python eval/results_glance.py "
        "lists every cell)")


def test_docs_results_tables_match_the_results_they_name():
    page = _EVAL.parent / "docs" / "results.md"
    assert page.read_text().count("| pipeline |") >= 4, "docs/results.md's tables are gone or renamed"
    assert glance.docs_mismatches(_EVAL.parent, _EVAL / "results") == [], (
        "docs/results.md differs from the committed results: update it (python eval/results_glance.py lists every "
        "cell)")


def test_the_docs_glance_figure_is_the_committed_one():
    docs_png = _EVAL.parent / "docs" / "assets" / "glance.png"
    assert docs_png.read_bytes() == (_EVAL / "results" / "glance.png").read_bytes(), (
        "docs/assets/glance.png is older than eval/results/glance.png: cp eval/results/glance.png docs/assets/")


def test_a_stale_readme_number_is_named_with_the_results_value(tmp_path):
    run = tmp_path / "nyc"
    run.mkdir()
    scores = {"HR@1": 0.30749, "HR@10": 0.6696, "NDCG@10": 0.4827, "MRR": 0.429}
    (run / "results.json").write_text(json.dumps({"protocols": {"full": {"all": {"time-aware retriever": scores}}}}))
    readme = ("## Results at a glance\n\nThe check-ins (`eval/results/nyc/results.md`):\n\n"
              "| pipeline | Acc@1 | Acc@10 | NDCG@10 | MRR |\n|---|---|---|---|---|\n"
              "| **time-aware retriever** (learned) | **0.308** | **0.670** | **0.483** | **0.429** |\n"
              "| user frequency | 0.1 | 0.5 | 0.3 | 0.2 |\n\n## Python\n\n"
              "| pipeline | Acc@1 |\n|---|---|\n| anything | 0.9 |\n")
    assert glance.readme_mismatches(readme, tmp_path) == [
        "README, nyc, 'time-aware retriever', Acc@1: README says 0.308, the results say 0.307",
        "README, nyc: no pipeline 'user frequency' in its results (full, all)"]


def test_rows_name_their_run_protocol_and_population(tmp_path):
    for run, sample in (("a", 10), ("b", 4)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "results.json").write_text(json.dumps({
            "test_targets": 100, "llm_sample": sample,
            "protocols": {"full": {"all": {"x (y)": {"NDCG@10": 0.5}},
                                   "llm_sample": {"LLM": {"NDCG@10": 0.25}}},
                          "sampled": {"all": {"x (y)": {"NDCG@10": 0.75}}}}}))
    text = ("| data set | pipeline | targets | full ranking NDCG@10 | true item + 19 sampled NDCG@10 | results |\n"
            "|---|---|---|---|---|---|\n"
            "| A | **x (y)** | 100 | 0.500 | 0.750 | [a](eval/results/a/results.md) |\n"
            "| | LLM | 10 | 0.250 | - | |\n"
            "| B | LLM | 4 | 0.260 | - | [b](eval/results/b/results.md) |\n"
            "| | LLM | 7 | 0.250 | - | |\n")
    assert glance.table_mismatches(text, tmp_path, "page") == [
        "page, b, 'LLM', full ranking NDCG@10: page says 0.260, the results say 0.250",
        "page, b, 'LLM': 7 targets: the run has 100 test targets and an LLM sample of 4"]


NUMBER = re.compile(r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")


def numbers_missing_from_named_results(page_text: str, root: Path) -> list[str]:
    """For each `## ` section of a page: the numbers of its prose (code blocks and inline code aside) that the
    results files it names (`eval/results/....md` in inline code) do not contain."""
    problems = []
    for section in re.split(r"^## ", page_text, flags=re.M)[1:]:
        title, body = section.split("\n", 1)
        files = re.findall(r"`(eval/results/[\w./-]+\.md)`", body)
        if not files:
            problems.append(f"{title}: names no results file")
            continue
        source = " ".join((root / f).read_text() for f in files)
        prose = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", body, flags=re.S))
        problems += [f"{title}: {n} is not in {', '.join(files)}" for n in NUMBER.findall(prose)
                     if not re.search(rf"(?<![\d.,]){re.escape(n)}(?![\d])", source)]
    return problems


def test_every_benchmark_number_is_in_the_results_file_its_section_names():
    page = (_EVAL.parent / "docs" / "benchmarks.md").read_text()
    assert page.count("\n## ") >= 8
    assert numbers_missing_from_named_results(page, _EVAL.parent) == [], (
        "docs/benchmarks.md shows numbers its results files do not hold: copy them from the file again")


def test_a_benchmark_number_not_in_its_file_is_named(tmp_path):
    (tmp_path / "eval" / "results").mkdir(parents=True)
    (tmp_path / "eval" / "results" / "b.md").write_text("| x | 1,264 | 0.5 |")
    page = "# B\n\n## Speed\n\n`eval/results/b.md`: 1,264 users/s, 4xx, `3` and 0.6.\n\n## Other\n\nNone.\n"
    assert numbers_missing_from_named_results(page, tmp_path) == [
        "Speed: 0.6 is not in eval/results/b.md", "Other: names no results file"]
