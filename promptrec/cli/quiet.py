"""Keep third-party chatter (vLLM, transformers, torch, tokenizers: log lines, warnings, progress bars) out of the
terminal: it goes to a log file, and one line at exit says where. ``--verbose`` or ``PROMPTREC_VERBOSE=1`` shows
everything as before. Called once by the CLI entry, before any command imports a heavy library.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import warnings
from pathlib import Path

VERBOSE_ENV = "PROMPTREC_VERBOSE"
QUIET_FLAG = "PROMPTREC_QUIET"  # set while quiet: promptrec's vLLM backend then starts without its loading bars
# Read by the libraries when they are imported, so set before that (a value the user set is kept).
QUIET_ENV = {
    "VLLM_CONFIGURE_LOGGING": "0",  # vLLM's loggers then reach the handler below instead of its own stdout handler
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ warnings on stderr (vLLM's "NUMA binding" notice)
    "TOKENIZERS_PARALLELISM": "false",  # no "the current process just got forked" warning
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # Hugging Face Hub's and transformers' own progress bars
    # tqdm's default for `disable` (read when tqdm is imported): bars that do not choose, i.e. third parties'
    # (GGUF conversion, shard writing); promptrec's bars pass disable= themselves and still show
    "TQDM_DISABLE": "1",
}
THIRD_PARTY_LOGGERS = ("vllm", "transformers", "torch", "sentence_transformers", "huggingface_hub", "tokenizers",
                       "faiss", "lightgbm", "datasets", "accelerate", "peft", "filelock", "numexpr", "urllib3",
                       "httpx", "ray", "triton")
# Commands whose output is a third party's: `serve-llm` runs vLLM's own server, whose log is what the user watches.
THIRD_PARTY_COMMANDS = ("serve-llm",)
_state: dict[str, Path] = {}


def verbose_requested() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def log_path(command: str | None) -> Path:
    """``$PROMPTREC_HOME/logs/<command>.log`` (default home ``~/.cache/promptrec``), rewritten on each run."""
    home = Path(os.environ.get("PROMPTREC_HOME", Path.home() / ".cache" / "promptrec"))
    return home / "logs" / f"{command or 'promptrec'}.log"


def quiet_third_parties(command: str | None = None, verbose: bool = False) -> Path | None:
    """Send third-party log records and warnings to ``log_path(command)``; returns it (None when verbose).

    promptrec's own loggers, warnings and progress bars are untouched. Idempotent."""
    if verbose or verbose_requested():
        os.environ[VERBOSE_ENV] = "1"  # for subprocesses and later calls
        return None
    if command in THIRD_PARTY_COMMANDS:
        return None
    if "path" in _state:
        return _state["path"]
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ[QUIET_FLAG] = "1"
    path = log_path(command)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        if logger.level == logging.NOTSET:  # vLLM's INFO lines say what it sized; other libraries' are noise
            # (and sentence-transformers shows progress bars when its logger is at INFO)
            logger.setLevel(logging.INFO if name == "vllm" else logging.WARNING)
    _route_warnings(handler)
    _state["path"] = path
    atexit.register(_say_where, path)
    return path


def _route_warnings(handler: logging.Handler) -> None:
    """Warnings raised from promptrec's own code still print; the rest go to the log file."""
    shown = warnings.showwarning
    log = logging.getLogger("promptrec.third_party_warnings")
    log.handlers, log.propagate = [handler], False
    own = str(Path(__file__).resolve().parents[1])

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(own):
            shown(message, category, filename, lineno, file, line)
        else:
            log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)

    warnings.showwarning = showwarning


def _say_where(path: Path) -> None:
    if path.exists() and path.stat().st_size:
        lines = sum(1 for _ in path.open(errors="replace"))
        print(f"({lines} lines of third-party messages in {path}; --verbose shows them here)", file=sys.stderr)
