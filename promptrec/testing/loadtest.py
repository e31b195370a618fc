"""Load test and crash test of a running `promptrec serve` (used by eval/benchmarks/bench_serve.py and the tests)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any, Sequence

import httpx
import numpy as np
import pandas as pd

from promptrec.testing.process import ServerProcess


async def _client_loop(client: httpx.AsyncClient, users: Sequence[str], params: dict[str, Any], counter: itertools.count,
                       max_requests: int, until: float, out: list[dict[str, Any]]) -> None:
    while time.monotonic() < until:
        n = next(counter)
        if n >= max_requests:
            return
        user = users[n % len(users)]
        t = time.perf_counter()
        try:
            r = await client.get(f"/recommendations/{user}", params=params)
            body = r.json() if r.status_code == 200 else {}
            out.append({"latency_s": time.perf_counter() - t, "status": r.status_code,
                        "reranked": body.get("reranked", False),
                        "fallback": (body.get("fallback_reason") or "").split(" (")[0] or None})
        except httpx.HTTPError as exc:
            out.append({"latency_s": time.perf_counter() - t, "status": 0, "reranked": False,
                        "fallback": type(exc).__name__})


def load_test(url: str, users: Sequence[str], *, concurrency: int, rerank: bool, now: str | None = None,
              k: int = 10, duration_s: float = 30.0, max_requests: int = 500, warmup: int = 2) -> dict[str, Any]:
    """``concurrency`` clients request recommendations back to back, bounded by time and count; latency
    percentiles, throughput, and how many answers were (not) reranked. Request n is for ``users[n]``
    (cycling); the last ``warmup`` users warm the server up first."""
    params = {"k": k, "rerank": str(rerank).lower(), **({"now": now} if now else {})}

    async def run() -> tuple[list[dict[str, Any]], float]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
            for u in users[len(users) - warmup:]:  # not among the measured users: no prefix-cache head start
                await client.get(f"/recommendations/{u}", params=params)
            out: list[dict[str, Any]] = []
            counter, start = itertools.count(), time.monotonic()
            await asyncio.gather(*[_client_loop(client, users, params, counter, max_requests, start + duration_s, out)
                                   for _ in range(concurrency)])
            return out, time.monotonic() - start

    results, elapsed = asyncio.run(run())
    lat = np.array([r["latency_s"] for r in results if r["status"] == 200]) * 1e3
    fallbacks = pd.Series([r["fallback"] for r in results if r["fallback"]]).value_counts().to_dict()
    return {"concurrency": concurrency, "rerank": rerank, "requests": len(results), "seconds": round(elapsed, 2),
            "ok": int((np.array([r["status"] for r in results]) == 200).sum()),
            "throughput_rps": round(len(lat) / elapsed, 2) if elapsed else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "reranked": int(sum(r["reranked"] for r in results)), "fallbacks": fallbacks}


def stored_event_ids(client: httpx.Client, users: Sequence[str]) -> set[str]:
    """The event_ids in these users' histories on the server (to check acknowledged events are there)."""
    found: set[str] = set()
    for user in sorted(set(users)):
        hist = client.get(f"/users/{user}/history", params={"limit": 10_000}).json()
        found |= {e["event_id"] for e in hist if e.get("event_id")}
    return found


def crash_test(server_args: Sequence[str], users: Sequence[str], items: Sequence[str], start: pd.Timestamp, *,
               writers: int = 4, kill_after_s: float = 3.0, batch: int = 3, log: str | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Post events from ``writers`` threads, SIGKILL the server mid-stream, restart it on the same store,
    and check that every acknowledged event is in the users' histories. Each request also carries one event
    without an id, and every third request re-sends an id already acknowledged (a retry): each acknowledged
    event must be there exactly once."""
    acked: dict[str, str] = {}  # event_id -> user_id
    anonymous: dict[tuple[str, str, str], int] = {}  # (user, item, time) of acknowledged events without an id
    sent = itertools.count()
    stop = threading.Event()
    server = ServerProcess(*server_args, log=log).start()

    def write(w: int) -> None:
        rng = np.random.default_rng([seed, w])
        mine: list[dict[str, Any]] = []  # this writer's acknowledged events, to retry
        with server.client(timeout=10) as client:
            while not stop.is_set():
                n = next(sent)
                pick = lambda seq: str(seq[int(rng.integers(len(seq)))])  # noqa: E731
                events = [{"user_id": pick(users), "item_id": pick(items),
                           "timestamp": (start + pd.Timedelta(seconds=n * (batch + 1) + j)).isoformat(),
                           "event_id": f"crash-{w}-{n}-{j}", "event_type": "click"} for j in range(batch)]
                events.append({"user_id": pick(users), "item_id": pick(items), "event_type": "click",
                               "timestamp": (start + pd.Timedelta(seconds=n * (batch + 1) + batch)).isoformat()})
                if mine and n % 3 == 0:
                    events.append(mine[int(rng.integers(len(mine)))])  # a retry of an acknowledged event
                try:
                    r = client.post("/events", json=events)
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                if r.status_code == 200:
                    for e in events:
                        if "event_id" in e:
                            acked[e["event_id"]] = e["user_id"]
                            mine.append(e)
                        else:
                            key = (e["user_id"], e["item_id"], e["timestamp"])
                            anonymous[key] = anonymous.get(key, 0) + 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    time.sleep(kill_after_s)
    server.kill()
    killed_at_acked = len(acked)
    stop.set()
    for t in threads:
        t.join()
    restarted = ServerProcess(*server_args, log=log)
    t0 = time.monotonic()
    restarted.start()
    restart_s = time.monotonic() - t0
    with restarted.client() as client:
        histories = {u: client.get(f"/users/{u}/history", params={"limit": 10_000}).json() for u in sorted(set(users))}
        health = client.get("/health").json()
    restarted.stop()
    ids = [e["event_id"] for h in histories.values() for e in h if e.get("event_id")]
    found = set(ids)
    seen_anonymous: dict[tuple[str, str, str], int] = {}
    for user, hist in histories.items():
        for e in hist:
            if not e.get("event_id"):
                key = (user, e["item_id"], pd.Timestamp(e["timestamp"]).isoformat())
                seen_anonymous[key] = seen_anonymous.get(key, 0) + 1
    missing = sorted(set(acked) - found)
    anonymous_missing = sum(max(0, n - seen_anonymous.get(k, 0)) for k, n in anonymous.items())
    return {"acknowledged": len(acked), "acknowledged_at_kill": killed_at_acked, "found_after_restart": len(found & set(acked)),
            "missing": len(missing), "missing_examples": missing[:5],
            "acknowledged_without_id": sum(anonymous.values()), "missing_without_id": anonymous_missing,
            "stored_twice": len(ids) - len(found),
            "stored_but_unacknowledged": len({f for f in found if f.startswith("crash-")} - set(acked)),
            "requests_sent": next(sent), "restart_seconds": round(restart_s, 1),
            "events_stored_after_restart": health["events_stored"]}


def mixed_load(urls: Sequence[str], users: Sequence[str], items: Sequence[str], now: pd.Timestamp, *,
               readers: int = 16, writers: int = 8, duration_s: float = 20.0, seed: int = 0) -> dict[str, Any]:
    """Writers post one event per request while readers ask for recommendations, for ``duration_s``;
    clients are spread round-robin over the ``urls`` (replicas of one service). Events per second and
    read/write latency; then every acknowledged event is looked up on every replica."""
    rng = np.random.default_rng(seed)
    acked: dict[str, str] = {}
    reads: list[tuple[float, int]] = []
    writes: list[tuple[float, int]] = []

    async def reader(client: httpx.AsyncClient, until: float, r: int) -> None:
        n = r
        while time.monotonic() < until:
            t = time.perf_counter()
            resp = await client.get(f"/recommendations/{users[n % len(users)]}", params={"k": 10, "now": now.isoformat()})
            reads.append((time.perf_counter() - t, resp.status_code))
            n += readers

    async def writer(client: httpx.AsyncClient, until: float, w: int) -> None:
        n = 0
        while time.monotonic() < until:
            user, item = str(users[int(rng.integers(len(users)))]), str(items[int(rng.integers(len(items)))])
            event = {"user_id": user, "item_id": item, "event_id": f"mixed-{w}-{n}",
                     "timestamp": (now - pd.Timedelta(hours=1) + pd.Timedelta(milliseconds=n)).isoformat()}
            t = time.perf_counter()
            resp = await client.post("/events", json=event)
            writes.append((time.perf_counter() - t, resp.status_code))
            if resp.status_code == 200:
                acked[event["event_id"]] = user
            n += 1

    async def run() -> float:
        clients = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
        start = time.monotonic()
        until = start + duration_s
        await asyncio.gather(*[reader(clients[r % len(urls)], until, r) for r in range(readers)],
                             *[writer(clients[w % len(urls)], until, w) for w in range(writers)])
        elapsed = time.monotonic() - start
        for c in clients:
            await c.aclose()
        return elapsed

    elapsed = asyncio.run(run())
    missing = {}
    for url in urls:
        with httpx.Client(base_url=url, timeout=120) as client:
            missing[url] = len(set(acked) - stored_event_ids(client, list(acked.values())))

    def summary(rows: list[tuple[float, int]]) -> dict[str, Any]:
        lat = np.array([s for s, code in rows if code == 200]) * 1e3
        return {"requests": len(rows), "ok": int(len(lat)), "per_s": round(len(lat) / elapsed, 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None}

    return {"replicas": len(urls), "readers": readers, "writers": writers, "seconds": round(elapsed, 1),
            "writes": summary(writes), "reads": summary(reads), "events_acknowledged": len(acked),
            "acknowledged_missing_on_a_replica": missing}
