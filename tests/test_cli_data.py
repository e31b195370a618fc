from typer.testing import CliRunner

from promptrec.cli.main import app

runner = CliRunner()


def test_help_on_every_command():
    for args in (["--help"], ["data", "--help"], ["data", "info", "--help"], ["data", "split", "--help"],
                 ["demo", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_demo_runs_end_to_end(tmp_path, default_model_dir):
    # the transformers backend keeps this test light; tests/test_reranker.py runs the vLLM engine
    result = runner.invoke(app, ["demo", "--root", str(tmp_path), "--backend", "transformers", "--show-prompt"])
    assert result.exit_code == 0, result.output
    assert "3. item index: 330 items" in result.output
    assert "4. retriever blend (tuned on validation)" in result.output
    assert "Which of these candidates will the user watch next?" in result.output
    assert "7. reranked by the LLM (label_scoring on transformers" in result.output
    assert "held-out next item" in result.output
    assert (tmp_path / "demo" / "manifest.json").exists()


def test_data_info_on_demo_and_bad_path(tmp_path):
    result = runner.invoke(app, ["data", "info", "--json"])
    assert result.exit_code == 0 and '"users": 400' in result.output
    result = runner.invoke(app, ["data", "info", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "not found" in result.output


def test_export_demo_roundtrips_through_the_tabular_loader(tmp_path):
    result = runner.invoke(app, ["data", "export-demo", str(tmp_path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "info", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"events": 23,488' in result.output or '"events": 23488' in result.output


def test_data_info_real_movielens(ml100k_path):
    result = runner.invoke(app, ["data", "info", str(ml100k_path), "--format", "movielens-100k"])
    assert result.exit_code == 0
    assert "943" in result.output and "1,682" in result.output and "100,000" in result.output


def test_data_split_in_local_days():
    """`promptrec data split --split temporal --test-days N --valid-days M` cuts at local midnights."""
    import pandas as pd

    result = runner.invoke(app, ["data", "split", "--split", "temporal", "--test-days", "14", "--valid-days", "7"])
    assert result.exit_code == 0, result.output
    cuts = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip("│|").split("│")]
        if len(cells) == 2 and cells[0] in ("valid_start", "test_start", "test_end"):
            cuts[cells[0]] = pd.Timestamp(cells[1]).tz_convert("America/New_York")  # the demo's zone
    assert set(cuts) == {"valid_start", "test_start", "test_end"}
    assert all(t == t.normalize() for t in cuts.values())  # local midnights
    assert (cuts["test_end"] - cuts["test_start"]).days == 14 and (cuts["test_start"] - cuts["valid_start"]).days == 7
    bad = runner.invoke(app, ["data", "split", "--split", "temporal", "--test-days", "0"])
    assert bad.exit_code != 0 and "whole number of days" in bad.output
