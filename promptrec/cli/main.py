"""The `promptrec` command line."""

from __future__ import annotations

import typer

from promptrec import __version__
from promptrec.cli import (batch, data, demo, evaluate, events, finetune, index, keys, llm, prompts, retriever,
                           sequential, serve)
from promptrec.cli.quiet import quiet_third_parties

app = typer.Typer(
    help="promptrec: time-aware recommendation with LLMs (retrieve by time, rerank with an LLM).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(ctx: typer.Context,
         verbose: bool = typer.Option(False, "--verbose", help="Show third-party log lines, warnings and progress "
                                      "bars (also PROMPTREC_VERBOSE=1); by default they go to a log file.")) -> None:
    """promptrec: time-aware recommendation with LLMs (retrieve by time, rerank with an LLM)."""
    quiet_third_parties(ctx.invoked_subcommand, verbose)


app.add_typer(data.app, name="data")
app.add_typer(index.app, name="index")
app.add_typer(prompts.app, name="prompts")
app.add_typer(retriever.app, name="retriever")
app.command(help="Candidates for a user at a time, with each signal's contribution.")(retriever.recommend)
app.add_typer(llm.models_app, name="models")
app.command(help="Retrieve, then rerank with the LLM, then print.")(llm.rerank)
app.command("serve-llm", help="Start an OpenAI-compatible vLLM server for the openai backend.")(llm.serve_llm)
app.command("eval", help="Offline evaluation from a config: baselines, retriever, rerankers; tables and plots.")(
    evaluate.evaluate)
app.command(help="Train a LoRA adapter for the reranker on the ranking task (training split only).")(
    finetune.finetune)
app.command("finetune-sanity", help="Fine-tune on a task whose answer is in the prompt's evidence (pipeline check).")(
    finetune.finetune_sanity)
app.command("finetune-merge", help="Merge a LoRA adapter into its base model (a plain model folder, base speed).")(
    finetune.finetune_merge)
app.command("train-sequential", help="Train SASRec (optionally time-aware) on a split's training events.")(
    sequential.train_sequential)
app.command(help="Serve recommendations over HTTP: events count at once, the LLM reranks within a deadline.")(
    serve.serve)
app.add_typer(keys.app, name="keys")
app.add_typer(events.app, name="events")
app.command(help="Recommendations for a whole user base, written as Parquet (Ray Data or in process).")(batch.batch)
app.command(help="Run the end-to-end path on the embedded demo data and print the result.")(demo.demo)


@app.command()
def version() -> None:
    """Print the promptrec version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
