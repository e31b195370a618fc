"""Load test and crash test of `promptrec serve` on loopback.

    python eval/benchmarks/bench_serve.py [--data ../shared/data/ml-100k] [--out eval/results]

Fits and saves a retriever (demo data by default), then: recommendation latency (p50/p99) and
throughput at 1, 8 and 32 concurrent clients, retrieval-only (--llm none) and reranked by the
in-process vLLM engine (SmolLM2-135M, label scoring over 20 candidates, 10 s deadline); each
level bounded in time and request count. Then the crash test: writers post events, the server
is SIGKILLed mid-stream and restarted on the same store, and every acknowledged event must be
back. Writes serve_benchmark.json, .md and .png.

    python eval/benchmarks/bench_serve.py --replicas [--data ../shared/data/ml-100k]

Event stores instead (serve_replicas.json, .md, .png): the same mixed load (writers posting one event per
request, readers asking for recommendations) on one server with SQLite, one with PostgreSQL and two
replicas sharing PostgreSQL (clients spread over them); events per second, latencies, and every acknowledged
event looked up on every replica. PostgreSQL is a throwaway local server (Debian's binaries).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    from promptrec.cli.common import load
    from promptrec.retriever import fit_retriever
    from promptrec.testing.loadtest import crash_test, load_test
    from promptrec.testing.process import ServerProcess

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Dataset folder (default: the demo data).")
    ap.add_argument("--format", default="auto")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-serve"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=20.0, help="Time bound per retrieval-only level.")
    ap.add_argument("--rerank-seconds", type=float, default=90.0, help="Time bound per reranked level.")
    ap.add_argument("--rerank-requests", default="12,32,96", help="Reranked requests per level (count bound).")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="Redo the markdown and plot from the JSON.")
    ap.add_argument("--replicas", action="store_true", help="Compare event stores and replicas instead.")
    ap.add_argument("--mixed-seconds", type=float, default=30.0, help="Duration of each --replicas run.")
    args = ap.parse_args()
    if args.replicas:
        return replicas(args)
    if args.report_only:
        res = json.loads((args.out / "serve_benchmark.json").read_text())
        (args.out / "serve_benchmark.md").write_text(markdown(res))
        plot(res, args.out / "serve_benchmark.png")
        return
    levels = [int(x) for x in args.levels.split(",")]
    counts = [int(x) for x in args.rerank_requests.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    res: dict = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(),
                 "date": time.strftime("%Y-%m-%d"), "levels": levels}

    ds = load(args.data, args.format)
    retriever = fit_retriever(ds, index_root=str(args.work / "indexes"))
    retriever.save(args.work / "retriever")
    users = [str(u) for u in ds.interactions.users]
    now = (ds.interactions.time_range()[1] + pd.Timedelta(days=1)).isoformat()
    res.update(dataset=ds.name, items=len(ds.catalog), users=len(users), events=len(ds.interactions), now=now)
    base = ["--retriever", str(args.work / "retriever"), "--rate-limit", "0"]  # capacity, not refusals
    log = str(args.work / "server.log")
    print(f"{ds.name}: {len(users)} users, {len(ds.catalog)} items; now = {now}", flush=True)

    runs = []
    with ServerProcess(*base, "--db", str(args.work / "load.sqlite"), "--llm", "none", log=log) as server:
        for c in levels:
            runs.append(load_test(server.url, users, concurrency=c, rerank=False, now=now,
                                  duration_s=args.seconds, max_requests=200 * c))
            print(runs[-1], flush=True)
    if not args.skip_llm:
        with ServerProcess(*base, "--db", str(args.work / "load.sqlite"), "--llm", "vllm", log=log,
                           ready_timeout=600) as server:
            offset = 0  # each level asks for users no earlier level asked for: vLLM's prefix cache is cold
            for c, n in zip(levels, counts):
                runs.append(load_test(server.url, users[offset:offset + n] + users[-2:], concurrency=c, rerank=True,
                                      now=now, duration_s=args.rerank_seconds, max_requests=n))
                offset += n
                print(runs[-1], flush=True)
            res["llm_stats"] = server.client().get("/health").json()["llm"]
    res["runs"] = runs

    (args.work / "crash.sqlite").unlink(missing_ok=True)
    res["crash_test"] = crash_test([*base, "--db", str(args.work / "crash.sqlite"), "--llm", "none"], users,
                                   list(ds.catalog.ids), pd.Timestamp(now), writers=4, kill_after_s=5.0, log=log)
    print(res["crash_test"], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_benchmark.json").write_text(json.dumps(res, indent=2, default=str))
    (args.out / "serve_benchmark.md").write_text(markdown(res))
    plot(res, args.out / "serve_benchmark.png")


def replicas(args: argparse.Namespace) -> None:
    from promptrec.cli.common import load
    from promptrec.retriever import fit_retriever
    from promptrec.testing.loadtest import mixed_load
    from promptrec.testing.postgres_local import LocalPostgres
    from promptrec.testing.process import ServerProcess

    if not args.report_only:
        args.work.mkdir(parents=True, exist_ok=True)
        ds = load(args.data, args.format)
        retriever = fit_retriever(ds, index_root=str(args.work / "indexes"))
        retriever.save(args.work / "retriever")
        users, items = [str(u) for u in ds.interactions.users], [str(i) for i in ds.catalog.ids]
        now = ds.interactions.time_range()[1] + pd.Timedelta(days=1)
        res: dict = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(),
                     "date": time.strftime("%Y-%m-%d"), "dataset": ds.name, "users": len(users), "items": len(items),
                     "events": len(ds.interactions), "seconds_per_run": args.mixed_seconds, "runs": []}
        base = ["--retriever", str(args.work / "retriever"), "--rate-limit", "0", "--llm", "none"]
        log = str(args.work / "replicas.log")
        with LocalPostgres() as pg:
            (args.work / "replicas.sqlite").unlink(missing_ok=True)
            setups = [("1 replica, SQLite", [str(args.work / "replicas.sqlite")]),
                      ("1 replica, PostgreSQL", [pg.create_database("one")]),
                      ("2 replicas, PostgreSQL", [pg.create_database("two")] * 2)]
            for name, dbs in setups:
                servers = [ServerProcess(*base, "--db", db, log=log).start() for db in dbs]
                try:
                    run = mixed_load([s.url for s in servers], users, items, now, duration_s=args.mixed_seconds)
                finally:
                    for s in servers:
                        s.stop()
                run["setup"] = name
                run["acknowledged_missing_on_a_replica"] = list(run["acknowledged_missing_on_a_replica"].values())
                res["runs"].append(run)
                print(run, flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serve_replicas.json").write_text(json.dumps(res, indent=2, default=str))
    res = json.loads((args.out / "serve_replicas.json").read_text())
    (args.out / "serve_replicas.md").write_text(replicas_markdown(res))
    replicas_plot(res, args.out / "serve_replicas.png")


def replicas_markdown(res: dict) -> str:
    md = ["# promptrec serve: event stores and replicas", "",
          f"Command: `{res['command']}` ({res['date']}, {res['machine']}, 2 CPU cores shared by the servers, "
          "PostgreSQL and the clients)", "",
          f"Data: {res['dataset']} ({res['users']:,} users, {res['items']:,} items, {res['events']:,} events). Each run: "
          f"{res['seconds_per_run']:g} s of 8 writers posting one event per request and 16 readers asking for 10 "
          "recommendations, clients spread round-robin over the replicas, retrieval only. After each run every "
          "acknowledged event is looked up in every replica's histories.", "",
          "| setup | events/s | write p50 ms | write p99 ms | reads/s | read p50 ms | read p99 ms | acknowledged | "
          "missing on a replica |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        w, rd = r["writes"], r["reads"]
        md.append(f"| {r['setup']} | {w['per_s']} | {w['p50_ms']} | {w['p99_ms']} | {rd['per_s']} | {rd['p50_ms']} | "
                  f"{rd['p99_ms']} | {r['events_acknowledged']} | {', '.join(map(str, r['acknowledged_missing_on_a_replica']))} |")
    md += ["", "On one machine with 2 cores a second replica adds no cores, only a second copy of the retriever and "
           "the cost of reading the other's events (one indexed query per retrieval batch); the point here is that "
           "replicas stay consistent (no acknowledged event missing on either) and what PostgreSQL costs against "
           "the embedded SQLite file. On separate machines each replica brings its own cores.", "",
           "![events/s and latency](serve_replicas.png)", ""]
    return "\n".join(md)


def replicas_plot(res: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    names = [r["setup"] for r in res["runs"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = range(len(names))
    axes[0].bar([i - 0.2 for i in x], [r["writes"]["per_s"] for r in res["runs"]], 0.4, label="events/s")
    axes[0].bar([i + 0.2 for i in x], [r["reads"]["per_s"] for r in res["runs"]], 0.4, label="recommendations/s")
    axes[1].bar([i - 0.2 for i in x], [r["writes"]["p99_ms"] for r in res["runs"]], 0.4, label="write p99")
    axes[1].bar([i + 0.2 for i in x], [r["reads"]["p99_ms"] for r in res["runs"]], 0.4, label="read p99")
    axes[0].set(ylabel="per second", title="throughput")
    axes[1].set(ylabel="ms", title="p99 latency")
    for ax in axes:
        ax.set_xticks(list(x), names, fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


def markdown(res: dict) -> str:
    crash = res["crash_test"]
    md = ["# promptrec serve: load and crash test", "",
          f"Command: `{res['command']}` ({res['date']}, {res['machine']}, 2 CPU cores; the clients run on the same "
          "machine as the server, so they compete for the cores)", "",
          f"Data: {res['dataset']} ({res['users']:,} users, {res['items']:,} items, {res['events']:,} events); "
          f"every request asks for 10 items for a user at `now` = {res['now']}. Reranked: SmolLM2-135M-Instruct on "
          "the in-process vLLM CPU engine, label scoring of 20 candidates, requests batched across users "
          "(up to 16 per call), 10 s deadline after which the retriever answers.", "",
          "| mode | clients | requests | p50 ms | p99 ms | answers/s | reranked answers | reranked answers/s | fallbacks |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        fb = ", ".join(f"{k}: {v}" for k, v in r["fallbacks"].items() if not k.startswith("rerank=false")) or "-"
        md.append(f"| {'reranked' if r['rerank'] else 'retrieval only'} | {r['concurrency']} | {r['requests']} | "
                  f"{r['p50_ms']} | {r['p99_ms']} | {r['throughput_rps']} | {r['reranked'] if r['rerank'] else '-'} | "
                  f"{round(r['reranked'] / r['seconds'], 2) if r['rerank'] else '-'} | {fb} |")
    md += ["", "Latencies count every answer, reranked or not. Past the LLM's capacity (about 2.5 reranked answers/s "
           "on these 2 cores), requests that could not be reranked within the deadline are answered at once from "
           "the retriever (`LLM busy`: refused at admission, or dropped from a batch that would end too late); "
           "`LLM deadline passed` counts those the estimate let through and that still came late.", "",
           "![latency and throughput](serve_benchmark.png)", "",
           "## Crash test", "",
           f"{crash['requests_sent']} POST /events requests of 3 events from 4 writers; the server was killed "
           f"(SIGKILL) after 5 s and restarted on the same SQLite store (restart took {crash['restart_seconds']} s).", "",
           "| acknowledged events | found after restart | missing | stored but unacknowledged (in flight at the kill) |",
           "|---|---|---|---|",
           f"| {crash['acknowledged']} | {crash['found_after_restart']} | **{crash['missing']}** | "
           f"{crash['stored_but_unacknowledged']} |", ""]
    return "\n".join(md)


def plot(res: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for rerank, style in ((False, "o-"), (True, "s--")):
        runs = [r for r in res["runs"] if r["rerank"] == rerank and r["p50_ms"] is not None]
        if not runs:
            continue
        label = "reranked (vLLM)" if rerank else "retrieval only"
        c = [r["concurrency"] for r in runs]
        axes[0].plot(c, [r["p50_ms"] for r in runs], style, label=f"{label} p50")
        axes[0].plot(c, [r["p99_ms"] for r in runs], style, alpha=0.5, label=f"{label} p99")
        axes[1].plot(c, [r["throughput_rps"] for r in runs], style, label=f"{label}: all answers")
        if rerank:
            axes[1].plot(c, [r["reranked"] / r["seconds"] for r in runs], "s:", label=f"{label}: reranked answers")
    axes[0].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="latency (ms)", title="latency")
    axes[1].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="answers/s", title="throughput")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
