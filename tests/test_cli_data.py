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
