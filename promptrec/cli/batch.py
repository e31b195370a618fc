"""`promptrec batch`: top-k for every user at a time, written as Parquet (Ray Data, or in process)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from promptrec.cli.common import console, user_errors
from promptrec.cli.serve import LLM_HELP


def batch(
    retriever_path: Path = typer.Option(..., "--retriever", help="A saved retriever folder (promptrec retriever fit --out DIR)."),
    out: Path = typer.Option(..., help="Output folder: Parquet parts (pandas.read_parquet(OUT) reads them all), "
                                       "_manifest.json, _report.json. Rerunning resumes it."),
    users: Optional[str] = typer.Option(None, help="Comma-separated user ids (default: every user of the retriever)."),
    users_file: Optional[Path] = typer.Option(None, help="A .txt (one id a line), .csv or .parquet with user_id and, "
                                                         "optionally, now (ISO with zone) per user."),
    now: Optional[str] = typer.Option(None, help="Time of the recommendations, ISO with zone (default: one second "
                                                 "after the retriever's last event)."),
    k: int = typer.Option(10, help="Recommendations per user."),
    candidates: int = typer.Option(20, help="Retrieved candidates the LLM orders."),
    batch_size: int = typer.Option(64, help="Users per batch (the unit of work, retries and resuming)."),
    retries: int = typer.Option(2, help="Further attempts of a failed batch before it is reported."),
    llm: str = typer.Option("none", help=LLM_HELP),
    model: str = typer.Option("SmolLM2-135M-Instruct", help="Model folder, or the name the server serves."),
    llm_url: str = typer.Option("http://127.0.0.1:8000/v1", help="Server URL for --llm openai."),
    adapter: Optional[str] = typer.Option(None, help="A LoRA adapter folder from `promptrec finetune`."),
    strategy: str = typer.Option("label_scoring", help="label_scoring, listwise or pointwise."),
    bootstrap: int = typer.Option(1, help="Shuffles of the candidate order to average."),
    fusion: float = typer.Option(0.0, help="Weight of the retriever score in the final score (0: LLM only)."),
    runner: str = typer.Option("auto", help="ray (Ray Data), local (in process) or auto (Ray if installed)."),
    workers: int = typer.Option(1, help="Ray actors (each loads the retriever and owns an LLM engine)."),
    ray_address: Optional[str] = typer.Option(None, help="An existing Ray cluster (e.g. 10.0.0.5:6379 or auto); "
                                                         "default: start Ray on this machine."),
    overwrite: bool = typer.Option(False, help="Delete OUT first instead of resuming it."),
) -> None:
    """Precompute recommendations for a user base (e-mail, push, a nightly cache): retrieval plus optional
    LLM reranking, on Ray Data or in process; resumable, failed batches retried and then reported."""
    from promptrec.batch import BatchConfig, RerankSpec, recommend_all

    logging.basicConfig(level=logging.WARNING)
    if llm not in ("vllm", "openai", "transformers", "none"):
        console.print(f"[bold red]error:[/] --llm {llm!r}: choose {LLM_HELP}")
        raise typer.Exit(2)
    spec = None if llm == "none" else RerankSpec(backend=llm, model=model, strategy=strategy, bootstrap=bootstrap,
                                                 fusion=fusion, adapter=adapter, base_url=llm_url)
    config = BatchConfig(k=k, candidates=candidates, batch_size=batch_size, retries=retries, rerank=spec)
    with user_errors():
        report = recommend_all(retriever_path, out, users=None if users is None else [u.strip() for u in users.split(",")],
                               users_file=users_file, now=now, config=config, runner=runner, workers=workers,
                               ray_address=ray_address, overwrite=overwrite)
    table = Table(title=f"promptrec batch -> {report.output}", show_header=False)
    for name, value in (("runner", report.runner), ("users", f"{report.users:,}"),
                        ("batches", f"{report.batches} ({report.already_done} already done, {report.computed} computed, "
                                    f"{len(report.failed)} failed)"),
                        ("rows written", f"{report.rows:,}"), ("time", f"{report.seconds:.1f} s"),
                        ("users/s", f"{report.users_per_s:g}")):
        table.add_row(name, value)
    console.print(table)
    if report.failed:
        for f in report.failed[:10]:
            console.print(f"[red]batch {f.batch_id}[/] ({f.users} users, {f.attempts} attempts): {f.error}")
        console.print(f"[bold red]{len(report.failed)} batch(es) failed[/]; their users have no output yet. Fix the "
                      "cause and run the same command again: finished batches are kept, failed ones retried.")
        raise typer.Exit(1)
