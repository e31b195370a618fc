"""Soak test of a running `promptrec serve`: mixed posts and reads from many clients for minutes, the server's
memory sampled throughout, and every acknowledged event looked up afterwards."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import httpx
import numpy as np
import pandas as pd
import psutil

from promptrec.testing.loadtest import stored_event_ids

REFUSALS = {429, 503}  # documented refusals under load (rate limit, queue full); anything else non-2xx is an error


@dataclass
class SoakConfig:
    clients: int = 32
    duration_s: float = 600.0
    write_share: float = 0.2  # share of requests that post events (1 to 3 each)
    history_share: float = 0.05  # share that read a user's history; the rest ask for recommendations
    rerank: bool = False
    warmup_s: float = 60.0  # memory and latency are judged after this
    sample_every_s: float = 5.0
    window_s: float = 30.0  # latency percentiles per window
    seed: int = 0


@dataclass
class SoakResult:
    config: dict[str, Any]
    requests: int
    by_kind: dict[str, int]
    by_status: dict[str, int]
    errors: int  # responses that are neither 2xx nor a documented refusal, plus transport errors
    error_examples: list[str]
    acknowledged_events: int
    missing_events: int
    rss_mb: list[tuple[float, float]]  # (seconds since start, server RSS incl. children)
    rss_growth_after_warmup: float  # last sample / first sample after warm-up - 1
    windows: list[dict[str, Any]]  # per window: start_s, requests, ok, p50_ms, p99_ms
    p99_first_last_ratio: float  # p99 of the last third of post-warm-up windows over the first third
    seconds: float
    reranked: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)
    llm_queue: dict[str, Any] = field(default_factory=dict)  # the server's LLM queue statistics at the end (/health)
    # p99_first_last_ratio per kind of answer: "reranked" (waited for the LLM) and "direct" (everything else). With
    # an LLM, the p99 of a window of all answers jumps with how many reranked answers happen to fall in it.
    p99_ratio_by_kind: dict[str, float] = field(default_factory=dict)
    # (seconds since start, process_memory()): which process grows, and whether heap or mapped files
    memory_by_process: list[tuple[float, dict[str, dict[str, float]]]] = field(default_factory=list)


def process_memory(pid: int) -> dict[str, dict[str, float]]:
    """Resident memory of a process and each of its children (e.g. a vLLM engine core), in MB, split into
    anonymous memory (heaps, tensors: what a leak grows) and file-backed or shared pages (mapped model files,
    libraries). Keys: ``server`` for ``pid``, else ``<name> <pid>``."""
    proc = psutil.Process(pid)
    out = {}
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_info()
            name = "server" if p.pid == pid else f"{p.name()} {p.pid}"
        except psutil.NoSuchProcess:
            continue
        shared = getattr(info, "shared", 0)
        out[name] = {"rss": round(info.rss / 2**20, 1), "anon": round((info.rss - shared) / 2**20, 1),
                     "file_or_shared": round(shared / 2**20, 1)}
    return out


def _total_rss(memory: dict[str, dict[str, float]]) -> float:
    """The server's RSS with its children (MB), from :func:`process_memory`."""
    return round(sum(m["rss"] for m in memory.values()), 1)


def soak(url: str, server_pid: int, users: Sequence[str], items: Sequence[str], config: SoakConfig,
         headers: dict[str, str] | None = None, progress: bool = True) -> SoakResult:
    """Run ``config.clients`` clients against ``url`` for ``config.duration_s``; see the module docstring."""
    rng = random.Random(config.seed)
    log: list[tuple[float, str, int, float, bool, str | None]] = []  # t, kind, status, latency_s, reranked, fallback
    acked: dict[str, str] = {}
    errors: list[str] = []
    by_process: list[tuple[float, dict[str, dict[str, float]]]] = []
    ids = itertools.count()
    start = time.monotonic()
    until = start + config.duration_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < until:
            user, draw = rng.choice(users), rng.random()
            t = time.perf_counter()
            try:
                if draw < config.write_share:
                    kind = "post"
                    events = [{"user_id": user, "item_id": rng.choice(items), "event_id": f"soak-{next(ids)}",
                               "event_type": "click"} for _ in range(rng.randint(1, 3))]
                    r = await client.post("/events", json=events)
                    if r.status_code == 200:
                        acked.update({e["event_id"]: user for e in events})
                elif draw < config.write_share + config.history_share:
                    kind = "history"
                    r = await client.get(f"/users/{user}/history", params={"limit": 20})
                else:
                    kind = "recommend"
                    r = await client.get(f"/recommendations/{user}",
                                         params={"k": 10, "rerank": str(config.rerank).lower()})
                body = r.json() if kind == "recommend" and r.status_code == 200 else {}
                log.append((time.monotonic() - start, kind, r.status_code, time.perf_counter() - t,
                            bool(body.get("reranked")), (body.get("fallback_reason") or "").split(" (")[0] or None))
                if r.status_code >= 300 and r.status_code not in REFUSALS and len(errors) < 20:
                    errors.append(f"{kind} {r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                log.append((time.monotonic() - start, "transport", 0, time.perf_counter() - t, False, None))
                if len(errors) < 20:
                    errors.append(f"transport: {type(exc).__name__}: {exc}")

    def sample_memory(elapsed: float) -> None:
        by_process.append((round(elapsed, 1), process_memory(server_pid)))

    async def sampler() -> None:
        last_print = 0.0
        while time.monotonic() < until:
            elapsed = time.monotonic() - start
            sample_memory(elapsed)
            if progress and elapsed - last_print >= 60:
                last_print = elapsed
                recent = [x for x in log if x[0] > elapsed - 60]
                print(f"soak {elapsed:5.0f}/{config.duration_s:.0f} s: {len(log):,} requests, "
                      f"{len(recent) / 60:.1f}/s in the last minute, RSS {_total_rss(by_process[-1][1]):.0f} MB, "
                      f"{len(acked):,} events acknowledged; anonymous MB by process: "
                      + ", ".join(f"{k} {v['anon']:.0f}" for k, v in by_process[-1][1].items()), flush=True)
            await asyncio.sleep(config.sample_every_s)

    async def run() -> None:
        limits = httpx.Limits(max_connections=config.clients, max_keepalive_connections=config.clients)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers or {}) as client:
            await asyncio.gather(sampler(), *[client_loop(client) for _ in range(config.clients)])

    asyncio.run(run())
    seconds = time.monotonic() - start
    sample_memory(seconds)
    with httpx.Client(base_url=url, timeout=120, headers=headers or {}) as client:
        missing = len(set(acked) - stored_event_ids(client, list(acked.values())))
        llm = client.get("/health").json().get("llm", {})
    rss = [(t, _total_rss(memory)) for t, memory in by_process]
    result = _summarize(config, log, errors, acked, missing, rss, seconds)
    result.memory_by_process = by_process
    result.llm_queue = {k: llm[k] for k in ("batches", "processed", "largest_batch", "seconds_per_request",
                                            "refused_busy", "expired", "abandoned", "probes", "errors", "heap_trims")
                        if k in llm}
    return result


def _windows(frame: pd.DataFrame, config: SoakConfig, seconds: float) -> list[dict[str, Any]]:
    windows = []
    for w0 in np.arange(0, seconds, config.window_s):
        part = frame[(frame.t >= w0) & (frame.t < w0 + config.window_s) & (frame.status == 200)]
        lat = part.latency_s.to_numpy() * 1e3
        windows.append({"start_s": float(w0), "requests": int(((frame.t >= w0) & (frame.t < w0 + config.window_s)).sum()),
                        "ok": len(part), "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None})
    return windows


def _p99_ratio(windows: list[dict[str, Any]], config: SoakConfig, seconds: float) -> float:
    """Median p99 of the last third of the post-warm-up windows over that of the first third."""
    steady = [w for w in windows if w["start_s"] >= config.warmup_s and w["p99_ms"] is not None
              and w["start_s"] + config.window_s <= seconds]
    third = max(1, len(steady) // 3)
    first = np.median([w["p99_ms"] for w in steady[:third]]) if steady else float("nan")
    last = np.median([w["p99_ms"] for w in steady[-third:]]) if steady else float("nan")
    return round(float(last / first), 3) if first else float("nan")


def _summarize(config: SoakConfig, log, errors, acked, missing, rss, seconds) -> SoakResult:
    frame = pd.DataFrame(log, columns=["t", "kind", "status", "latency_s", "reranked", "fallback"])
    windows = _windows(frame, config, seconds)
    by_kind = {kind: _p99_ratio(_windows(part, config, seconds), config, seconds)
               for kind, part in (("reranked", frame[frame.reranked]), ("direct", frame[~frame.reranked])) if len(part)}
    after = [m for t, m in rss if t >= config.warmup_s]
    bad = frame[(frame.status != 200) & ~frame.status.isin(list(REFUSALS))]
    recs = frame[frame.kind == "recommend"]
    return SoakResult(
        config=asdict(config), requests=len(frame), by_kind=frame.kind.value_counts().to_dict(),
        by_status={str(k): int(v) for k, v in frame.status.value_counts().items()}, errors=len(bad),
        error_examples=errors, acknowledged_events=len(acked), missing_events=missing, rss_mb=rss,
        rss_growth_after_warmup=round(after[-1] / after[0] - 1, 4) if len(after) >= 2 else float("nan"),
        windows=windows, p99_first_last_ratio=_p99_ratio(windows, config, seconds), p99_ratio_by_kind=by_kind,
        seconds=round(seconds, 1), reranked=int(recs.reranked.sum()),
        fallbacks={k: int(v) for k, v in recs.fallback.value_counts().items()})
