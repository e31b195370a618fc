"""`promptrec eval CONFIG`: offline evaluation on held-out events, with baselines, tables and plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from promptrec.cli.common import console, user_errors


def evaluate(
    config: Path = typer.Argument(..., help="Eval config (.yaml or .toml), e.g. eval/configs/ml100k.yaml."),
    out: Optional[Path] = typer.Option(None, help="Results folder (default: eval/results/<config name>)."),
    data: Optional[str] = typer.Option(None, help="Dataset folder, replacing the config's dataset path."),
    llm_users: Optional[int] = typer.Option(None, help="Test targets sampled for LLM pipelines (replaces the config's)."),
    fresh: bool = typer.Option(False, help="Discard cached per-target results in the results folder first."),
    fresh_pipeline: Optional[list[str]] = typer.Option(None, help="Recompute this pipeline (repeatable), and the "
                                                       "rerank pipelines over it, instead of reading its cached "
                                                       "records: the cache knows settings, not code."),
) -> None:
    """Run every pipeline of CONFIG on its protocols; write results.json, results.md and PNG plots.

    An interrupted run resumes from the per-target cache in the results folder (same config only).
    """
    from promptrec.eval.api import evaluate as run, resolve_config

    with user_errors():
        cfg = resolve_config(config, data=data, llm_users=llm_users)  # a ConfigError (ValueError) names the file and key
        target = out or Path("eval") / "results" / cfg.name
        command = "promptrec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        res = run(cfg, target, fresh=fresh, fresh_pipelines=fresh_pipeline or (), command=command)
    for line in res["reading"]:
        console.print(f"- {line}")
    console.print(f"[green]results written to {target}[/]: results.md (tables), results.json, "
                  f"{', '.join(p.name for p in sorted(target.glob('*.png')))}")
