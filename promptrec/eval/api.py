"""`evaluate(...)`: the Python twin of `promptrec eval CONFIG`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from promptrec.eval.config import EvalConfig, load_config
from promptrec.eval.runner import run_eval


def resolve_config(config: EvalConfig | str | Path, *, data: str | None = None,
                   llm_users: int | None = None) -> EvalConfig:
    """An eval config from a path (.yaml / .toml) or as given, with the dataset path and LLM sample replaced when
    asked; a config without a name takes its file's stem."""
    cfg = config if isinstance(config, EvalConfig) else load_config(config)
    if data is not None:
        cfg.dataset.path = data
    if llm_users is not None:
        cfg.llm_users = llm_users
    if cfg.name == "eval" and not isinstance(config, EvalConfig):
        cfg.name = Path(config).stem
    return cfg


def evaluate(config: EvalConfig | str | Path, out: str | Path | None = None, *, data: str | None = None,
             llm_users: int | None = None, fresh: bool = False, fresh_pipelines: Sequence[str] = (),
             progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Run every pipeline of ``config`` on its protocols and write results.json, results.md and plots to ``out``
    (default ``eval/results/<config name>``); returns the results (as results.json holds them).

    ``data``: a dataset path replacing the config's; ``llm_users``: test targets sampled for LLM pipelines;
    ``fresh``: discard the cached per-target records first; ``fresh_pipelines``: recompute these pipelines (and
    the rerank pipelines over them). An interrupted run resumes from the cache in ``out``."""
    cfg = resolve_config(config, data=data, llm_users=llm_users)
    target = Path(out) if out is not None else Path("eval") / "results" / cfg.name
    if cfg.split.name == "replay":  # day by day as deployed, frozen vs refitted (no per-target cache)
        from promptrec.eval.replay import run_replay

        return run_replay(cfg, target, progress=progress, command=command)
    return run_eval(cfg, target, resume=not fresh, progress=progress, command=command,
                    fresh_pipelines=tuple(fresh_pipelines))
