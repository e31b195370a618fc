"""lab/sasrec_settings.py: SASRec's settings judged on a config's validation targets, each arm trained for real."""

import json

import pytest

import sasrec_settings as settings  # lab/, on sys.path by lab/conftest.py

CONFIG = """
name: test-sasrec-settings
dataset: demo
split: temporal
index_root: {root}
pipelines:
  - {{name: random, kind: random}}
  - {{name: SASRec, kind: sasrec, settings: {{epochs: 12, lr: 0.005, max_len: 20, dim: 32, cache: false}}}}
"""

def test_an_arm_replaces_settings_and_may_switch_to_the_time_aware_model():
    from promptrec.eval.config import PipelineConfig

    base = PipelineConfig("SASRec", "sasrec", {"settings": {"max_len": 50, "dropout": 0.5}})
    arm = settings.arm_pipeline(base, {"max_len": 100, "kind": "sasrec_time"})
    assert arm.kind == "sasrec_time" and arm.options["settings"] == {"max_len": 100, "dropout": 0.5}
    assert base.options["settings"]["max_len"] == 50  # the configured pipeline is left as it was
    assert settings.arm_label({}) == "as configured" and settings.arm_label({"dim": 16}) == "dim=16"
    with pytest.raises(SystemExit, match="sasrec and sasrec_time"):
        settings.arm_pipeline(base, {"kind": "retriever"})


def test_study_trains_each_arm_and_pairs_it_with_the_configured_model(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG.format(root=tmp_path / "indexes"))
    got = settings.study(str(tmp_path / "c.yaml"), "SASRec", [{"epochs": 1}], ["random"], n_boot=100, test=True)
    rows = {r["arm"]: r for r in got["rows"]}
    assert list(rows) == ["as configured", "epochs=1", "random"] and got["validation_targets"] > 500
    trained, once, rnd = rows["as configured"], rows["epochs=1"], rows["random"]
    assert trained["NDCG@10"] > rnd["NDCG@10_ci95"][1]  # twelve epochs learn something random does not
    assert once["settings"]["epochs"] == 1 and trained["settings"]["epochs"] == 12
    lead = once["lead"]["NDCG@10"]
    assert lead["lead"] == pytest.approx(once["NDCG@10"] - trained["NDCG@10"])
    assert lead["ci95"][0] <= lead["lead"] <= lead["ci95"][1] and "lead" not in trained
    assert got["test_targets"] > 500 and trained["test"]["NDCG@10"] > rnd["test"]["NDCG@10_ci95"][1]
    test_lead = once["test"]["lead"]["NDCG@10"]["lead"]
    assert test_lead == pytest.approx(once["test"]["NDCG@10"] - trained["test"]["NDCG@10"])
    result = {"command": "test", "date": "today", "machine": "here", "seconds": 1.0, "studies": [got]}
    from promptrec.eval.report import write_outputs

    write_outputs(result, tmp_path / "out", "sasrec_settings", settings.markdown, settings.plot)
    md = (tmp_path / "out" / "sasrec_settings.md").read_text()
    assert "| epochs=1 |" in md and "*random* (reference)" in md and "Test targets (" in md
    assert json.loads((tmp_path / "out" / "sasrec_settings.json").read_text())["studies"][0]["pipeline"] == "SASRec"
    assert (tmp_path / "out" / "sasrec_settings.png").stat().st_size > 0
