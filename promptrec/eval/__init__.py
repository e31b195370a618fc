"""Offline evaluation: configs, protocols, baselines, reports (`evaluate(...)` = `promptrec eval`)."""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "promptrec.eval.api", "run_eval": "promptrec.eval.runner",
    "load_config": "promptrec.eval.config", "parse_config": "promptrec.eval.config",
    "EvalConfig": "promptrec.eval.config", "ConfigError": "promptrec.eval.config",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
