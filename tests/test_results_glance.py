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
