"""`promptrec serve`: the HTTP recommendation service (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from promptrec.cli.common import DATA_HELP, FORMAT_HELP, console, user_errors

LLM_HELP = "vllm (in-process engine), openai (a `vllm serve` / OpenAI-compatible server), transformers, or none."


def serve(
    retriever_path: Optional[Path] = typer.Option(None, "--retriever", help="A saved retriever folder, or a model "
                                                  "folder of versions (promptrec retriever fit --versions DIR: the "
                                                  "newest is served); default: fit one now."),
    path: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    root: str = typer.Option("indexes", help="Folder of item indexes (when fitting)."),
    db: str = typer.Option("promptrec-serve/events.sqlite", help="Where posted events are kept: a SQLite file (WAL "
                           "mode; one server), or a postgresql://user@host:port/db URL that several replicas share."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8080, help="Port."),
    llm: str = typer.Option("vllm", help=LLM_HELP),
    model: str = typer.Option("SmolLM2-135M-Instruct", help="Model folder, or the name the server serves."),
    llm_url: str = typer.Option("http://127.0.0.1:8000/v1", help="Server URL for --llm openai."),
    adapter: Optional[str] = typer.Option(None, help="A LoRA adapter folder from `promptrec finetune`."),
    strategy: str = typer.Option("label_scoring", help="label_scoring, listwise or pointwise."),
    candidates: int = typer.Option(20, help="Retrieved candidates the LLM orders."),
    bootstrap: int = typer.Option(1, help="Shuffles of the candidate order to average (position-bias bootstrapping)."),
    fusion: float = typer.Option(0.0, help="Weight of the retriever score in the final score (0: LLM only)."),
    llm_deadline: float = typer.Option(10.0, help="Seconds to wait for the LLM; then answer from the retriever."),
    max_batch: int = typer.Option(16, help="Rerank requests batched into one LLM call."),
    max_pending: int = typer.Option(64, help="Rerank requests allowed to wait; beyond, answers come from the retriever."),
    watch: bool = typer.Option(False, help="With a model folder: serve each newer version as it appears."),
    watch_every: float = typer.Option(5.0, help="Seconds between looks at the model folder (--watch)."),
    retrain_every: Optional[str] = typer.Option(None, help="With a model folder and --data: refit from the data plus "
                                                "the stored events in a separate process this often, then serve the "
                                                "new version. 7d is a good default: on replayed data a weekly refit "
                                                "gained nothing beyond noise over a model taking live events."),
    max_connections: int = typer.Option(256, help="Concurrent connections; beyond, HTTP 503 (JSON, Retry-After)."),
    header_timeout: float = typer.Option(10.0, help="Seconds a connection has to send a request's headers; then it "
                                                    "is closed (idle connections cannot hold slots longer)."),
    gpu_memory_utilization: float = typer.Option(0.3, help="vLLM memory fraction (on CPU: of the RAM)."),
    keys: Optional[Path] = typer.Option(None, help="API key file (promptrec keys create); keys also come from "
                                                   "$PROMPTREC_API_KEYS. Without keys, anyone who reaches the port may call."),
    insecure: bool = typer.Option(False, help="Allow binding a non-loopback address without API keys."),
    rate_limit: float = typer.Option(200.0, help="Requests per second per key (per client address without keys); 0: off."),
    burst: int = typer.Option(400, help="Requests a key may make at once before the rate limit applies."),
    failed_auth_rate: float = typer.Option(2.0, help="Requests with a missing or wrong key per second per client "
                                                     "address (after a burst of 20); beyond, HTTP 429; 0: off."),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, help="Largest request body (HTTP 413 beyond)."),
    request_timeout: Optional[float] = typer.Option(None, help="Seconds before HTTP 504 (default: LLM deadline + 20)."),
    max_k: int = typer.Option(100, help="Largest k a request may ask for."),
    results: Optional[Path] = typer.Option(None, help="Results folder the web console (/ui) lists, read-only "
                                           "(default: ./eval/results if it exists)."),
) -> None:
    """Serve recommendations over HTTP; posted events count in the next recommendation and survive restarts."""
    import uvicorn

    from promptrec.serve.auth import ENV_VAR, KeyRing
    from promptrec.serve.limits import Limits

    from promptrec.cli.llm import make_reranker
    from promptrec.cli.retriever import load_or_fit_retriever
    from promptrec.models import prepare_if_packaged
    from promptrec.serve.app import create_app
    from promptrec.serve.model_swap import ModelSwitcher, parse_duration
    from promptrec.serve.versions import ModelVersions
    from promptrec.serve.connections import guarded_protocol
    from promptrec.serve.service import RecommendationService, ServeConfig
    from promptrec.serve.memory import tame_malloc
    from promptrec.serve.stores import open_event_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tame_malloc()  # before any thread starts: resident memory that follows state, not uptime
    if llm not in ("vllm", "openai", "transformers", "none"):
        console.print(f"[bold red]error:[/] --llm {llm!r}: choose {LLM_HELP}")
        raise typer.Exit(2)
    with user_errors():
        keyring = KeyRing.load(keys)
        if not keyring and not _loopback(host) and not insecure:
            raise ValueError(f"refusing to serve {host} without API keys: anyone on the network could post events for "
                             f"any user. Create keys (promptrec keys create --file keys.json; serve --keys keys.json, "
                             f"or set ${ENV_VAR}), or pass --insecure")
        timeout = request_timeout if request_timeout is not None else llm_deadline + 20.0
        if timeout <= llm_deadline:
            raise ValueError(f"--request-timeout ({timeout:g} s) must exceed --llm-deadline ({llm_deadline:g} s)")
        limits = Limits(rate_per_s=rate_limit, burst=burst, failed_auth_per_s=failed_auth_rate,
                        max_body_bytes=max_body_bytes, request_timeout_s=timeout,
                        max_k=max_k)
        versions = ModelVersions(retriever_path) if retriever_path and ModelVersions.is_versions_folder(
            retriever_path) else None
        if (watch or retrain_every) and versions is None:
            raise ValueError("--watch and --retrain-every need --retriever <model folder> with versions "
                             "(promptrec retriever fit --versions DIR)")
        if retrain_every and not path:
            raise ValueError("--retrain-every needs --data: the original log the model is refitted on")
        retrain_s = parse_duration(retrain_every) if retrain_every else None
        served = versions.manifest(versions.newest()) if versions else None
        retriever = versions.load(served.version) if versions else load_or_fit_retriever(retriever_path, path, format,
                                                                                         root)
        store = open_event_store(db)
        reranker = None
        if llm != "none":
            prepare_if_packaged(model)
            reranker = make_reranker(llm, model, strategy, retriever, candidates=candidates, bootstrap=bootstrap,
                                     fusion=fusion, adapter=adapter, base_url=llm_url, backend_options=(
                                         # a server reserves its KV cache at start, not as the prefix cache fills
                                         {"gpu_memory_utilization": gpu_memory_utilization, "prefault_kv_cache": True}
                                         if llm == "vllm" else None))
        service = RecommendationService(retriever, store, reranker, model=served, config=ServeConfig(
            candidates=candidates, llm_deadline_s=llm_deadline, max_batch=max_batch, max_pending=max_pending))
    access = (f"{len(keyring.keys)} API key(s)" if keyring else
              f"no API keys (open to anyone who reaches {host}); API docs at http://{host}:{port}/docs")
    console.print(f"promptrec serve: {len(retriever.catalog):,} items, {len(store):,} stored events replayed, "
                  f"LLM: {llm}; events in {store.path}; {access}")
    switcher = None
    if versions is not None:
        refit = [sys.executable, "-m", "promptrec.cli.main", "retriever", "fit", *([path] if path else []), "--format",
                 format, "--events", db, "--versions", str(retriever_path), "--root", root,
                 "--domain", retriever.catalog.domain.spelled(),  # the served model's words, not the format's
                 *(["--context", ",".join(retriever.context_columns)] if retriever.context_columns else [])]
        switcher = ModelSwitcher(service, versions, watch_s=watch_every if watch else None,
                                 retrain_every_s=retrain_s,
                                 retrain_command=refit).start()
        console.print(f"serving model version {served.version} (fitted {served.created_at})"
                      + (f"; watching for newer versions every {watch_every:g} s" if watch else "")
                      + (f"; refitting every {retrain_every}" if retrain_every else ""))
    app = create_app(service, keyring, limits, switcher)
    app.state.results_dir = results  # the console's Results view (promptrec.serve.ui)
    uvicorn.run(app, host=host, port=port,
                http=guarded_protocol(header_timeout, max_connections), timeout_graceful_shutdown=30, log_level="info")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
