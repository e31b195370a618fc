from typer.testing import CliRunner

from promptrec.cli.main import app

runner = CliRunner()


def test_index_build_info_search_similar(tmp_path):
    root = str(tmp_path)
    out = runner.invoke(app, ["index", "build", "--name", "demo", "--root", root])
    assert out.exit_code == 0, out.output
    assert "built index demo" in out.output and "flat" in out.output
    out = runner.invoke(app, ["index", "info", "demo", "--root", root])
    assert out.exit_code == 0 and "all-MiniLM-L6-v2" in out.output and "384" in out.output
    out = runner.invoke(app, ["index", "search", "live jazz piano", "--name", "demo", "--root", root, "--k", "3"])
    assert out.exit_code == 0 and out.output.count("MUS") == 3
    out = runner.invoke(app, ["index", "similar", "NEW0001", "--name", "demo", "--root", root, "--k", "5"])
    assert out.exit_code == 0 and "World Report Trade Deals" in out.output
    out = runner.invoke(app, ["index", "similar", "NOPE", "--name", "demo", "--root", root])
    assert out.exit_code == 1 and "not in index" in out.output
    out = runner.invoke(app, ["index", "info", "missing", "--root", root])
    assert out.exit_code == 1 and "promptrec index build" in out.output
