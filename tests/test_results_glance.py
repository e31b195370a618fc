"""eval/results_glance.py: README's figure and tables come from the committed results files, and name real pipelines."""

import importlib.util
import json
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


def test_readme_tables_at_a_glance_match_the_results_they_name():
    readme = (_EVAL.parent / "README.md").read_text()
    assert glance.readme_mismatches(readme, _EVAL / "results") == [], (
        "README's tables at a glance differ from the committed results: update them (python eval/results_glance.py "
        "lists every cell)")


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
        "README glance, nyc, 'time-aware retriever', Acc@1: README says 0.308, the results say 0.307",
        "README glance, nyc: no pipeline 'user frequency' in its results"]
