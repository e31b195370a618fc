"""Helpers shared by CLI commands: loading a dataset and reporting errors readably."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from promptrec.data.problems import DataError

# Off a terminal (a pipe, a log file) rich assumes 80 columns and cuts tables: there tables get 100 and lines of
# text are not broken (a path or a message stays whole, for grep); COLUMNS still wins.
console = Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=100, soft_wrap=True)
DATA_HELP = ("Dataset folder (MovieLens 100K/1M, RecBole atomic files, or events.* + items.*) or a check-in CSV; "
             "omit for the demo data.")
FORMAT_HELP = "auto, demo, movielens-100k, movielens-1m, recbole, tabular, checkins or sequences."


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Show promptrec's own errors as a message and exit 1, not a traceback."""
    try:
        yield
    except (DataError, FileNotFoundError, ImportError, KeyError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


DOMAIN_HELP = ("The prompts' words for what users do with items: movies, places, products, games, music, books, "
               "generic ('interacted with'), or your own as did/will/history, e.g. 'bought/buy/purchase history'; "
               "default: the format's own (MovieLens: movies; check-ins: places; others: generic).")


CONTEXT_HELP = ("Event columns to use as context, comma-separated (e.g. weather,channel): each becomes a signal of the "
                "retriever, a query parameter of `promptrec serve` and a line of the prompt.")


def load(path: str | None, fmt: str, errors: str = "raise", seed: int = 0, domain: str | None = None,
         context: str | None = None):
    from promptrec.data.loaders import load_dataset

    if path is None:
        fmt = "demo"
    options: dict[str, Any] = {} if fmt == "demo" else {"errors": errors, "seed": seed, "progress": None}
    large = fmt != "demo" and path is not None and large_input(path)  # a progress bar instead of the spinner
    with contextlib.nullcontext() if large else console.status(f"loading {path or 'demo data'}"):
        return load_dataset(path, format=fmt, domain=domain,
                            context=[c.strip() for c in (context or "").split(",") if c.strip()], **options)


def large_input(path: str) -> bool:
    """Whether the data at ``path`` is big enough for the loaders to draw a progress bar."""
    from promptrec.data.loaders.event_chunks import show_progress

    p = Path(path)
    files = [p] if p.is_file() else [f for f in p.glob("*") if f.is_file()] if p.is_dir() else []
    return any(show_progress(f, None) for f in files)


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        table.add_row(k, v if isinstance(v, str) else repr(v) if not isinstance(v, (int, float)) else f"{v:,}")
    return table
