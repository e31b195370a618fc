"""`promptrec retriever fit` and `promptrec recommend`: fit, tune and query the time-aware retriever."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from promptrec.cli.common import (CONTEXT_HELP, DATA_HELP, DOMAIN_HELP, FORMAT_HELP, console, kv_table, load,
                                  user_errors)

app = typer.Typer(help="Fit and inspect the time-aware retriever.", no_args_is_help=True)
SIGNALS_HELP = ("Comma-separated signals (default: auto, every signal the data supports): content, transition, "
                "trending, time_context, freshness, habit, place, device, returns, user_frequency, sasrec, ...")


def fit_for_cli(ds, *, split_name: str = "leave-last-out", signals: str | None = None, root: str = "indexes",
                pool: str = "auto"):
    """The library's fit (promptrec.retriever.fitting.fit_retriever) with the CLI's options, showing progress."""
    from promptrec.retriever.fitting import RetrieverSettings, fit_retriever, item_index_for

    settings = RetrieverSettings(signals=[s.strip() for s in signals.split(",")] if signals else "auto", pool=pool)
    index = None
    if settings.wants_index():
        with console.status(f"loading or building item index '{ds.name}'"):
            index = item_index_for(ds, root)
    with console.status("fitting the retriever and tuning its blend on the validation targets"):
        return fit_retriever(ds, split_name, index=index, settings=settings)


@app.command()
def fit(
    path: Optional[str] = typer.Argument(None, help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    out: Optional[Path] = typer.Option(None, help="Folder to save the fitted retriever (default indexes/<dataset>-retriever)."),
    split: str = typer.Option("leave-last-out", help="Split whose train part is fitted and validation part tunes."),
    signals: Optional[str] = typer.Option(None, help=SIGNALS_HELP),
    root: str = typer.Option("indexes", help="Folder of item indexes."),
    pool: str = typer.Option("auto", help="Candidate pools: auto (above 50,000 items), on or off (every signal "
                                          "scores every item)."),
    events: Optional[str] = typer.Option(None, help="Also fit on the live events of this `promptrec serve` store "
                                                    "(SQLite file or postgresql:// URL); writes a model version."),
    versions: Optional[Path] = typer.Option(None, help="Model folder: write a new version <DIR>/<version>/ with a "
                                                       "manifest (what `promptrec serve --retriever DIR` serves)."),
    domain: Optional[str] = typer.Option(None, help=DOMAIN_HELP),
    context: Optional[str] = typer.Option(None, help=CONTEXT_HELP),
) -> None:
    """Fit the retriever, tune its blend weights on validation targets, and save it (or add a model version)."""
    logging.basicConfig(level=logging.WARNING)
    with user_errors():
        ds = load(path, format, domain=domain, context=context)
        if events or versions:
            _fit_version(ds, events, versions or Path(root) / f"{ds.name}-models", split, signals, root, pool)
            return
        retriever = fit_for_cli(ds, split_name=split, signals=signals, root=root, pool=pool)
        target = retriever.save(out or Path(root) / f"{ds.name}-retriever")
    tuning = retriever.tuning or {}
    console.print(kv_table("fitted retriever", {
        "saved to": str(target), "weights": ", ".join(f"{k} {v:g}" for k, v in retriever.weights.items()),
        "candidate pool": "off: every signal scores every item" if retriever.pool is None else
                          f"on: up to {retriever.pool.config.max_size:,} items a request",
        "validation objective": f"{tuning.get('objective', '-')}: {tuning.get('objective_start', 0):.4f} (equal "
                                f"weights) -> {tuning.get('objective_end', 0):.4f} (tuned)"}))


def _fit_version(ds, events: str | None, folder: Path, split: str, signals: str | None, root: str, pool: str) -> None:
    from promptrec.retriever.fitting import RetrieverSettings
    from promptrec.serve.refit import refit_version
    from promptrec.serve.versions import ModelVersions

    settings = RetrieverSettings(signals=[s.strip() for s in signals.split(",")] if signals else "auto", pool=pool)
    with console.status(f"fitting a model version on {ds.name}" + (" and the stored live events" if events else "")):
        version = refit_version(ds, events, folder, split=split, settings=settings, index_root=root)
    m = ModelVersions(folder).manifest(version)
    console.print(kv_table(f"model version {version}", {
        "folder": str(folder / version), "data window": f"{m.data_window['first']} .. {m.data_window['last']}",
        "events": ", ".join(f"{k} {v:,}" for k, v in m.events.items()) + f" (store up to seq {m.store_seq})",
        "fit time": f"{m.fit_seconds:.1f} s", "validation": f"{m.validation.get('objective', '-')}: "
        f"{m.validation.get('objective_start', 0):.4f} -> {m.validation.get('objective_end', 0):.4f}",
        "code": m.code_version}))


def load_or_fit_retriever(retriever_path: Path | None, path: str | None, format: str, root: str):
    """The saved retriever at ``retriever_path``, or one fitted now on the dataset at ``path``."""
    from promptrec.retriever.retriever import TimeAwareRetriever

    if retriever_path:
        return TimeAwareRetriever.load(retriever_path)
    console.print("fitting the retriever (save one with `promptrec retriever fit` to skip this)")
    return fit_for_cli(load(path, format), root=root)


def retriever_for_user(retriever_path: Path | None, path: str | None, format: str, root: str, user: str,
                       now: str | None):
    """A saved retriever (or one fitted now), after checking the user exists; and ``now`` (default: the
    user's last event). Call inside ``user_errors()``."""
    retriever = load_or_fit_retriever(retriever_path, path, format, root)
    if not retriever.events.has_user(user):
        raise KeyError(f"user '{user}' has no events in the retriever's log")
    return retriever, now or str(retriever.events.history(user)["timestamp"].iloc[-1])


def recommend(
    user: str = typer.Argument(..., help="User id."),
    now: Optional[str] = typer.Option(None, help="Time of the recommendation, ISO with zone (default: the user's last event)."),
    k: int = typer.Option(20, help="How many candidates."),
    retriever_path: Optional[Path] = typer.Option(None, "--retriever", help="A saved retriever folder (promptrec retriever fit)."),
    path: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    root: str = typer.Option("indexes", help="Folder of item indexes."),
) -> None:
    """Candidates for a user at a time, with every signal's contribution to the score."""
    logging.basicConfig(level=logging.WARNING)
    with user_errors():
        retriever, when = retriever_for_user(retriever_path, path, format, root, user, now)
        candidates = retriever.retrieve(user, when, k=k)
    table = Table(title=f"candidates for {user} at {when}")
    short = {"content": "content", "transition": "trans", "trending": "trend", "time_context": "time",
             "freshness": "fresh"}
    for col, justify in (("#", "right"), ("item", "left"), ("title", "left"), ("score", "right"),
                         ("why: each signal's contribution", "left")):
        table.add_column(col, justify=justify)
    for c in candidates:
        why = ", ".join(f"{short.get(n, n)} {v:+.1f}" for n, v in sorted(c.components.items(), key=lambda kv: -abs(kv[1])))
        table.add_row(str(c.rank), c.item_id, retriever.catalog[c.item_id].title, f"{c.score:.2f}", why)
    console.print(table)
