"""Model swaps under load: refit time and memory, swap time, and recommendation latency before, during and
after a swap, on a running `promptrec serve` with live events.

    python eval/benchmarks/bench_model_swap.py [--swaps 3] [--out eval/results]
    python eval/benchmarks/bench_model_swap.py --data ../shared/data/foursquare-nyc/checkins.csv --format checkins --append

Demo data by default. Fits a first model version (`promptrec retriever fit --versions`), starts the server on
that model folder with an SQLite store and API keys (an admin key for the swaps), and starts the load: readers
asking for recommendations back to back and a writer posting live events at a fixed rate, for the whole run.
Then, ``--swaps`` times: refit from the store in a child process (`promptrec retriever fit --events <store>
--versions ...`: wall time, CPU time and peak RSS of that process), wait, ``POST /admin/reload`` (its answer
time, and the time to the first answer carrying the new ``model_version``); then one ``POST /admin/rollback``.
Latency windows per swap (by the time each answer arrived): during the refit, a steady window before the reload
call, the swap (from the reload call until every answer carries the new version, plus ``--tail-seconds``) and a
steady window after. Finally a second server with ``--watch`` picks up one more refit by itself. Every
acknowledged event is looked up afterwards. Writes model_swap.json, .md and .png (``--append``: adds this run to
the existing model_swap.json, e.g. the NYC check-ins beside the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


# -- load --------------------------------------------------------------------------------------------------------
class Load:
    """Readers asking for recommendations back to back and one writer posting one event every 1/rate s, in an
    asyncio loop on a thread of its own; every answer recorded as (sent, done, kind, status, model_version)."""

    def __init__(self, url: str, token: str, users: list[str], items: list[str], now: str, event_start: Any, *,
                 readers: int, write_rate: float, prefix: str, seed: int = 0):
        self.url, self.headers = url, {"Authorization": f"Bearer {token}"}
        self.users, self.items, self.now, self.event_start = users, items, now, event_start
        self.readers, self.write_rate, self.prefix = readers, write_rate, prefix
        self.rng = np.random.default_rng(seed)
        self.records: list[tuple[float, float, str, int, str | None]] = []
        self.errors: list[str] = []
        self.acked: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load", daemon=True)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.readers + 2, max_keepalive_connections=self.readers + 2)
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=60, limits=limits) as client:
            await asyncio.gather(*[self._reader(client, r) for r in range(self.readers)], self._writer(client))

    def _record(self, sent: float, kind: str, status: int, version: str | None, error: str | None = None) -> None:
        self.records.append((sent, time.monotonic(), kind, status, version))
        if error is not None and len(self.errors) < 20:
            self.errors.append(error)

    async def _reader(self, client: Any, r: int) -> None:
        n = r
        params = {"k": 10, "now": self.now}
        while not self._stop.is_set():
            user = self.users[n % len(self.users)]
            n += self.readers
            sent = time.monotonic()
            try:
                resp = await client.get(f"/recommendations/{user}", params=params)
                ok = resp.status_code == 200
                self._record(sent, "recommend", resp.status_code, resp.json().get("model_version") if ok else None,
                             None if ok else f"GET {resp.status_code}: {resp.text[:200]}")
            except Exception as exc:  # noqa: BLE001 - a failed request is counted, not fatal
                self._record(sent, "recommend", 0, None, f"GET {type(exc).__name__}: {exc}")

    async def _writer(self, client: Any) -> None:
        import pandas as pd

        n, start = 0, time.monotonic()
        while not self._stop.is_set():
            user = self.users[int(self.rng.integers(len(self.users)))]
            event = {"user_id": user, "item_id": self.items[int(self.rng.integers(len(self.items)))],
                     "event_id": f"{self.prefix}-{n}", "event_type": "click",
                     "timestamp": (self.event_start + pd.Timedelta(seconds=n)).isoformat()}
            sent = time.monotonic()
            try:
                resp = await client.post("/events", json=event)
                ok = resp.status_code == 200
                if ok:
                    self.acked[event["event_id"]] = user
                self._record(sent, "post", resp.status_code, None, None if ok else f"POST {resp.status_code}: {resp.text[:200]}")
            except Exception as exc:  # noqa: BLE001
                self._record(sent, "post", 0, None, f"POST {type(exc).__name__}: {exc}")
            n += 1
            await asyncio.sleep(max(0.0, start + n / self.write_rate - time.monotonic()))

    def answers(self) -> list[tuple[float, float, str, int, str | None]]:
        return list(self.records)


class Sampler:
    """Every ``every`` s: the server's RSS (with its children) and the 1-minute load average."""

    def __init__(self, t0: float, every: float = 0.5):
        self.t0, self.every, self.pid = t0, every, None
        self.rss: list[tuple[float, float]] = []
        self.load: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            t = round(time.monotonic() - self.t0, 2)
            self.load.append((t, os.getloadavg()[0]))
            if self.pid:
                mb = tree_rss_mb(self.pid)
                if mb:
                    self.rss.append((t, round(mb, 1)))


def tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.Error:
        return 0.0


# -- refits ------------------------------------------------------------------------------------------------------
def run_refit(cmd: list[str], t0: float, log: Path) -> dict[str, Any]:
    """Run the refit command; wall time, CPU time and peak RSS (the kernel's, from wait4, and psutil's samples
    every 0.1 s of the process and its children)."""
    start = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        sampled = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            sampled = max(sampled, tree_rss_mb(proc.pid))
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    end = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"refit failed (exit {proc.returncode}); see {log}")
    return {"t_start": round(start - t0, 2), "t_end": round(end - t0, 2), "wall_s": round(end - start, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "sampled_peak_rss_mb": round(sampled, 1)}


def with_manifest(refit: dict[str, Any], models: Path, before: set[str]) -> dict[str, Any]:
    from promptrec.serve.versions import ModelVersions

    versions = ModelVersions(models)
    new = sorted(set(versions.all()) - before)
    assert len(new) == 1, new
    m = versions.manifest(new[0])
    return refit | {"version": new[0], "fit_seconds": m.fit_seconds, "events_log": m.events["log"],
                    "events_store": m.events["store"], "store_seq": m.store_seq}


# -- windows -----------------------------------------------------------------------------------------------------
def stats(records: list[tuple], start: float, end: float) -> dict[str, Any]:
    """Recommendation answers that arrived in [start, end): count, failed, latency percentiles, answers/s."""
    rows = [r for r in records if r[2] == "recommend" and start <= r[1] < end]
    ok = np.array([1e3 * (r[1] - r[0]) for r in rows if r[3] == 200])
    pct = lambda q: round(float(np.percentile(ok, q)), 1) if len(ok) else None  # noqa: E731
    return {"seconds": round(end - start, 1), "requests": len(rows), "failed": sum(r[3] != 200 for r in rows),
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": round(float(ok.max()), 1) if len(ok) else None,
            "per_s": round(len(ok) / (end - start), 1) if end > start else None}


def pooled(records: list[tuple], spans: list[tuple[float, float]]) -> dict[str, Any]:
    """stats() over the union of several windows."""
    rows = [r for r in records if any(a <= r[1] < b for a, b in spans)]
    out = stats(rows, -np.inf, np.inf)
    out["seconds"] = round(sum(b - a for a, b in spans), 1)
    out["per_s"] = round((out["requests"] - out["failed"]) / out["seconds"], 1) if out["seconds"] else None
    return out


def swap_timing(records: list[tuple], call: float, answered: float, old: str, new: str) -> dict[str, Any]:
    recs = [r for r in records if r[2] == "recommend" and r[3] == 200]
    first_new = min((r[1] for r in recs if r[4] == new and r[1] >= call), default=None)
    last_old = max((r[1] for r in recs if r[4] == old), default=None)
    stray = sum(1 for r in recs if r[0] > answered and r[4] != new)  # asked after the swap answered, not the new one
    all_new = max(answered, last_old or answered)
    return {"to_first_new_ms": None if first_new is None else round(1e3 * (first_new - call), 1),
            "to_last_old_ms": None if last_old is None else round(1e3 * (last_old - call), 1),
            "all_new_at": all_new, "answers_after_swap_not_new": stray}


def wait_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


# -- the run -----------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Dataset path (default: the demo data).")
    ap.add_argument("--format", default="auto")
    ap.add_argument("--swaps", type=int, default=3, help="Refit + reload cycles.")
    ap.add_argument("--readers", type=int, default=4, help="Concurrent readers, each asking back to back.")
    ap.add_argument("--write-rate", type=float, default=20.0, help="Events posted per second (one per request).")
    ap.add_argument("--warmup-seconds", type=float, default=10.0)
    ap.add_argument("--settle-seconds", type=float, default=3.0, help="Wait after a refit before the steady window.")
    ap.add_argument("--steady-seconds", type=float, default=15.0, help="Length of the windows before and after.")
    ap.add_argument("--tail-seconds", type=float, default=3.0, help="The swap window runs this long after every "
                                                                     "answer carries the new version.")
    ap.add_argument("--watch-every", type=float, default=1.0, help="--watch-every of the watching server (0: skip).")
    ap.add_argument("--signals", default=None, help="Refit signals (default: the CLI's, every signal the data supports).")
    ap.add_argument("--index-root", default="indexes", help="Item indexes (the CLI's default: loaded if built).")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-model-swap"))
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    ap.add_argument("--append", action="store_true", help="Add this run to the existing model_swap.json.")
    ap.add_argument("--report-only", action="store_true", help="Redo the markdown and plot from the JSON.")
    args = ap.parse_args()
    if args.report_only:
        return write(json.loads((args.out / "model_swap.json").read_text()), args.out)
    if args.data and not Path(args.data).exists():
        print(f"{args.data} is absent: skipping this benchmark (the demo data needs no --data).")
        return
    run = measure(args)
    res = {"runs": [run]}
    if args.append and (args.out / "model_swap.json").exists():
        res = json.loads((args.out / "model_swap.json").read_text())
        res["runs"] = [r for r in res["runs"] if r["dataset"] != run["dataset"]] + [run]
    args.out.mkdir(parents=True, exist_ok=True)
    write(res, args.out)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from promptrec.cli.common import load
    from promptrec.retriever.fitting import item_index_for
    from promptrec.serve.auth import ADMIN, add_key
    from promptrec.serve.versions import ModelVersions
    from promptrec.testing.loadtest import stored_event_ids
    from promptrec.testing.process import ServerProcess

    load_at_start = os.getloadavg()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    models, db, keys, indexes = w / "models", w / "events.sqlite", w / "keys.json", args.index_root
    for p in [keys, *w.glob("events.sqlite*"), *w.glob("*.log")]:
        p.unlink(missing_ok=True)
    if models.exists():
        import shutil

        shutil.rmtree(models)
    rw, admin = add_key(keys, "app"), add_key(keys, "ops", (ADMIN,))

    ds = load(args.data, args.format)
    users, items = [str(u) for u in ds.interactions.users], [str(i) for i in ds.catalog.ids]
    last = ds.interactions.time_range()[1]
    now, event_start = (last + pd.Timedelta(days=1)).isoformat(), last + pd.Timedelta(minutes=1)
    print(f"{ds.name}: {len(users):,} users, {len(items):,} items, {len(ds.interactions):,} events", flush=True)
    t = time.monotonic()
    item_index_for(ds, indexes)  # loaded, or built once: every fit below loads it, as a deployment's refits do
    index_s = time.monotonic() - t

    data_args = [args.data, "--format", args.format] if args.data else []
    sig = (["--signals", args.signals] if args.signals else []) + (
        ["--root", str(indexes)] if indexes != "indexes" else [])
    fit_cmd = ["promptrec", "retriever", "fit", *data_args, "--versions", str(models), *sig]
    refit_cmd = ["promptrec", "retriever", "fit", *data_args, "--events", str(db), "--versions", str(models), *sig]
    python = [sys.executable, "-m", "promptrec.cli.main"]
    t0 = time.monotonic()
    sampler = Sampler(t0).start()
    fit_log = w / "fit.log"
    initial = with_manifest(run_refit(python + fit_cmd[1:], t0, fit_log), models, set())
    print("initial fit (no server yet, no store):", initial, flush=True)

    server_args = ["--retriever", str(models), "--db", str(db), "--llm", "none", "--keys", str(keys),
                   "--rate-limit", "0"]
    refits, swaps = [], []
    server = ServerProcess(*server_args, log=w / "server.log", ready_timeout=600).start()
    sampler.pid = server.proc.pid
    load_ = Load(server.url, rw, users, items, now, event_start, readers=args.readers, write_rate=args.write_rate,
                 prefix="swap").start()
    try:
        time.sleep(args.warmup_seconds)
        import httpx

        ops = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=120)
        current = initial["version"]
        steps = [("reload", None)] * args.swaps + [("rollback", None)]
        for i, (kind, _) in enumerate(steps):
            refit = None
            if kind == "reload":
                before = set(ModelVersions(models).all())
                refit = with_manifest(run_refit(python + refit_cmd[1:], t0, fit_log), models, before)
                refits.append(refit)
                print(f"refit {len(refits)}:", refit, flush=True)
                wait_until(t0 + refit["t_end"] + args.settle_seconds + args.steady_seconds)
            call = time.monotonic()
            resp = ops.post("/admin/reload" if kind == "reload" else "/admin/rollback")
            answered = time.monotonic()
            if resp.status_code != 200:
                raise RuntimeError(f"{kind}: HTTP {resp.status_code}: {resp.text[:300]}")
            body = resp.json()
            target = refit["version"] if refit else ModelVersions(models).before(current)
            assert body["version"] == target, (body, target)
            time.sleep(1.0 + args.tail_seconds)
            timing = swap_timing(load_.answers(), call, answered, current, target)
            end = timing.pop("all_new_at") + args.tail_seconds
            wait_until(end + args.steady_seconds + 0.2)
            records = load_.answers()
            windows = {"before": stats(records, call - args.steady_seconds, call),
                       "swap": stats(records, call, end), "after": stats(records, end, end + args.steady_seconds)}
            if refit:
                windows = {"refit": stats(records, t0 + refit["t_start"], t0 + refit["t_end"]), **windows}
            swaps.append({"swap": i + 1, "kind": kind, "version": target, "previous": current,
                          "t_call": round(call - t0, 2), "t_all_new": round(end - args.tail_seconds - t0, 2),
                          "answer_ms": round(1e3 * (answered - call), 1), "load_ms": body.get("load_ms"),
                          "switch_ms": body.get("swap_ms"), "events_applied": body.get("events_applied"),
                          **timing, "windows": windows,
                          "spans": {"before": [round(call - args.steady_seconds - t0, 2), round(call - t0, 2)],
                                    "swap": [round(call - t0, 2), round(end - t0, 2)],
                                    "after": [round(end - t0, 2), round(end + args.steady_seconds - t0, 2)]}})
            print(f"{kind} {i + 1}:", {k: v for k, v in swaps[-1].items() if k != "spans"}, flush=True)
            current = target
    except BaseException:
        load_.stop()
        server.stop()
        sampler.stop()
        raise
    load_.stop()
    main_records = load_.answers()
    with server.client(headers={"Authorization": f"Bearer {rw}"}, timeout=120) as c:
        missing = len(set(load_.acked) - stored_event_ids(c, sorted(set(load_.acked.values()))))
    sampler.pid = None
    server.stop()
    t_main_end = time.monotonic() - t0

    watch = None
    watch_records: list[tuple] = []
    if args.watch_every > 0:
        watch, watch_records, watch_load = watch_swap(args, server_args, python + refit_cmd[1:], models, rw, users,
                                                      items, now, event_start, sampler, t0, fit_log)
        refits.append(watch.pop("refit"))
        missing += watch.pop("missing_events")
        acked = len(load_.acked) + len(watch_load.acked)
        errors = load_.errors + watch_load.errors
    else:
        acked, errors = len(load_.acked), load_.errors
    sampler.stop()
    load_at_end = os.getloadavg()

    records = main_records + watch_records
    reloads = [s for s in swaps if s["kind"] == "reload"]
    log_text = "".join(p.read_text() for p in w.glob("server*.log"))
    loads = [x for _, x in sampler.load]
    run = {"command": "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
           "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
           "load_average": {"before_start_1_5_15": [round(x, 2) for x in load_at_start],
                            "during_1min_mean": round(float(np.mean(loads)), 2),
                            "during_1min_max": round(float(np.max(loads)), 2),
                            "at_end_1_5_15": [round(x, 2) for x in load_at_end], "samples": sampler.load},
           "dataset": ds.name, "users": len(users), "items": len(items), "events": len(ds.interactions),
           "config": {"readers": args.readers, "write_rate": args.write_rate, "warmup_s": args.warmup_seconds,
                      "settle_s": args.settle_seconds, "steady_s": args.steady_seconds, "tail_s": args.tail_seconds,
                      "watch_every_s": args.watch_every, "now": now},
           "fit_command": " ".join(fit_cmd), "refit_command": " ".join(refit_cmd),
           "item_index_seconds": round(index_s, 1), "initial_fit": initial, "refits": refits, "swaps": swaps,
           "pooled": {name: pooled(main_records, [tuple(t0 + x for x in s["spans"][name]) for s in reloads])
                      for name in ("before", "swap", "after")} if reloads else {},
           "watch": watch,
           "requests": {"recommend": sum(r[2] == "recommend" for r in records), "post": sum(r[2] == "post" for r in records)},
           "failed": sum(r[3] != 200 for r in records), "error_examples": errors[:10],
           "acknowledged_events": acked, "missing_events": missing,
           "server_tracebacks": log_text.count("Traceback"), "server_rss_mb": sampler.rss,
           "seconds": round(time.monotonic() - t0, 1), "main_phase_end_s": round(t_main_end, 1),
           "per_second": per_second(records, t0), "per_5_seconds": per_second(records, t0, 5)}
    return run


def watch_swap(args, server_args, refit_cmd, models, rw, users, items, now, event_start, sampler, t0, fit_log):
    """A server with --watch: refit, and time from the new version's folder appearing to its first answer."""
    import pandas as pd

    from promptrec.serve.versions import ModelVersions
    from promptrec.testing.loadtest import stored_event_ids
    from promptrec.testing.process import ServerProcess

    log = args.work / "server-watch.log"
    server = ServerProcess(*server_args, "--watch", "--watch-every", f"{args.watch_every:g}", log=log,
                           ready_timeout=600).start()
    sampler.pid = server.proc.pid
    with server.client(headers={"Authorization": f"Bearer {rw}"}) as c:
        start_version = c.get("/health").json()["model"]["version"]
    load_ = Load(server.url, rw, users, items, now, event_start + pd.Timedelta(days=0.5), readers=args.readers,
                 write_rate=args.write_rate, prefix="watch", seed=1).start()
    appeared: dict[str, float] = {}
    stop = threading.Event()

    def look() -> None:
        known = set(ModelVersions(models).all())
        while not stop.wait(0.02):
            for v in set(ModelVersions(models).all()) - known:
                appeared.setdefault(v, time.monotonic())
            known |= set(appeared)

    watcher = threading.Thread(target=look, daemon=True)
    watcher.start()
    try:
        time.sleep(args.warmup_seconds / 2)
        before = set(ModelVersions(models).all())
        refit = with_manifest(run_refit(refit_cmd, t0, fit_log), models, before)
        print("refit (watch):", refit, flush=True)
        version = refit["version"]
        until = time.monotonic() + 60
        while not any(r[4] == version for r in load_.answers()):
            if time.monotonic() > until:
                raise RuntimeError(f"the --watch server did not serve {version} within 60 s; see {log}")
            time.sleep(0.1)
        time.sleep(1.0 + args.tail_seconds)
        seen = appeared[version]
        timing = swap_timing(load_.answers(), seen, seen, start_version, version)
        timing.pop("answers_after_swap_not_new")  # the watcher swaps up to --watch-every after the folder appears
        end = timing.pop("all_new_at") + args.tail_seconds
        wait_until(end + args.steady_seconds + 0.2)
        load_.stop()
        with server.client(headers={"Authorization": f"Bearer {rw}"}, timeout=120) as c:
            missing = len(set(load_.acked) - stored_event_ids(c, sorted(set(load_.acked.values()))))
    finally:
        stop.set()
        load_.stop()
        sampler.pid = None
        server.stop()
    records = load_.answers()
    line = re.search(r"now serving model version \S+ \(was \S+\): loaded in (\d+) ms, (\d+) live events applied, "
                     r"switched in (\d+) ms", log.read_text())
    result = {"watch_every_s": args.watch_every, "version": version, "previous": start_version,
              "t_appeared": round(seen - t0, 2), **timing,
              "load_ms": int(line.group(1)) if line else None, "events_applied": int(line.group(2)) if line else None,
              "switch_ms": int(line.group(3)) if line else None, "refit": refit, "missing_events": missing,
              "windows": {"swap": stats(records, seen, end), "after": stats(records, end, end + args.steady_seconds)},
              "spans": {"swap": [round(seen - t0, 2), round(end - t0, 2)]}}
    print("watch:", {k: v for k, v in result.items() if k != "refit"}, flush=True)
    return result, records, load_


def per_second(records: list[tuple], t0: float, width: int = 1) -> list[dict[str, Any]]:
    """Recommendation answers per ``width`` s bin of arrival: count, failed, p50, p99, max (for the plot)."""
    by: dict[int, list[tuple]] = {}
    for r in records:
        if r[2] == "recommend":
            by.setdefault(width * int((r[1] - t0) // width), []).append(r)
    out = []
    for s in sorted(by):
        lat = np.array([1e3 * (r[1] - r[0]) for r in by[s] if r[3] == 200])
        out.append({"t": s, "n": len(by[s]), "failed": sum(r[3] != 200 for r in by[s]),
                    **({"p50": round(float(np.percentile(lat, 50)), 1), "p99": round(float(np.percentile(lat, 99)), 1),
                        "max": round(float(lat.max()), 1)} if len(lat) else {})})
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- report ------------------------------------------------------------------------------------------------------
def write(res: dict[str, Any], out: Path) -> None:
    (out / "model_swap.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "model_swap.md").write_text(markdown(res))
    plot(res, out / "model_swap.png")


def _v(x: Any) -> str:
    return "-" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:,.1f}" if isinstance(x, float) else str(x)


def markdown(res: dict[str, Any]) -> str:
    md = ["# promptrec serve: model swaps under load", ""]
    for run in res["runs"]:
        md += run_markdown(run, heading=len(res["runs"]) > 1)
    md += ["![latency over time, swaps marked](model_swap.png)", ""]
    return "\n".join(md)


def run_markdown(run: dict[str, Any], heading: bool) -> list[str]:
    la, c = run["load_average"], run["config"]
    md = ([f"## {run['dataset']}", ""] if heading else []) + [
        f"Command: `{run['command']}` ({run['date']}, {run['machine']}, {run['cpu']}, {run['cores']} CPU cores "
        "shared by the server, the refits, the load generator and other jobs on the machine)", "",
        f"Load average: {', '.join(map(str, la['before_start_1_5_15']))} (1, 5, 15 min) before the run started, "
        f"{la['during_1min_mean']} on average during it (1-minute value, at most {la['during_1min_max']}; this "
        f"includes the run's own server, load generator and refits), {', '.join(map(str, la['at_end_1_5_15']))} at "
        "the end.", "",
        f"Data: {run['dataset']} ({run['users']:,} users, {run['items']:,} items, {run['events']:,} events). Load "
        f"throughout: {c['readers']} readers asking for 10 recommendations back to back (`now` = {c['now']}) and a "
        f"writer posting {c['write_rate']:g} events/s (one per request: a random user clicks a random catalogue item, "
        "after the data's last event, so the refits fit and tune on them), API keys on, no rate limit, retrieval only "
        f"(`--llm none`), SQLite store. Each refit runs in its own process beside the loaded server: "
        f"`{run['refit_command']}` (the first version: `{run['fit_command']}`, before the server started, on no stored events). "
        f"The item index was loaded (or built) once beforehand ({run['item_index_seconds']} s) and every fit loads "
        "it.", "",
        "### Refit", "",
        "| fit | stored events fitted | wall s | fit s (manifest) | CPU s | peak RSS MB (kernel) | peak RSS MB (sampled) |",
        "|---|---|---|---|---|---|---|"]
    fits = [("first version, before the server started", run["initial_fit"])] + [
        (f"refit {i + 1}, under load" + (" (for --watch)" if run["watch"] and i == len(run["refits"]) - 1 else ""), f)
        for i, f in enumerate(run["refits"])]
    for name, f in fits:
        md.append(f"| {name} | {f['events_store']:,} | {f['wall_s']} | {f['fit_seconds']} | {f['cpu_s']} | "
                  f"{f['peak_rss_mb']} | {f['sampled_peak_rss_mb']} |")
    md += ["", "Wall time is the whole command (start-up, loading the data and the store, fit, tuning, writing the "
           "version); fit s is the fit and tuning alone, from the version's manifest. Peak RSS (kernel) is the "
           "process's maximum resident set from `wait4`; sampled is psutil's every 0.1 s.", "",
           "### Swap time", "",
           "| swap | kind | answer of the call ms | server: load ms | server: apply events + switch ms | events applied "
           "| first answer from the new version ms | last answer from the old version ms |",
           "|---|---|---|---|---|---|---|---|"]
    for s in run["swaps"]:
        md.append(f"| {s['swap']} | {s['kind']} | {s['answer_ms']} | {_v(s['load_ms'])} | {_v(s['switch_ms'])} | "
                  f"{_v(s['events_applied'])} | {_v(s['to_first_new_ms'])} | {_v(s['to_last_old_ms'])} |")
    if run["watch"]:
        wt = run["watch"]
        md.append(f"| --watch-every {wt['watch_every_s']:g} | watch | - | {_v(wt['load_ms'])} | {_v(wt['switch_ms'])} | "
                  f"{_v(wt['events_applied'])} | {_v(wt['to_first_new_ms'])} | {_v(wt['to_last_old_ms'])} |")
    md += ["", "Times from the call (`POST /admin/reload` or `/admin/rollback`) as the client saw them; for --watch, from "
           "the moment the new version's folder appeared (polled every 20 ms) to the first and last answers. The "
           "server's load and switch times are its own (`load_ms`, `swap_ms` of the answer; for --watch its log).", "",
           "### Latency of recommendations around each swap", "",
           "| swap | window | seconds | answers | failed | p50 ms | p99 ms | max ms | answers/s |",
           "|---|---|---|---|---|---|---|---|---|"]
    names = {"refit": "during the refit", "before": "before (steady)", "swap": "during the swap",
             "after": "after (steady)"}
    for s in run["swaps"]:
        for w, st in s["windows"].items():
            md.append(f"| {s['swap']} ({s['kind']}) | {names[w]} | {st['seconds']} | {st['requests']:,} | "
                      f"**{st['failed']}** | {_v(st['p50_ms'])} | {_v(st['p99_ms'])} | {_v(st['max_ms'])} | "
                      f"{_v(st['per_s'])} |")
    if run["watch"]:
        for w, st in run["watch"]["windows"].items():
            md.append(f"| --watch | {names[w]} | {st['seconds']} | {st['requests']:,} | **{st['failed']}** | "
                      f"{_v(st['p50_ms'])} | {_v(st['p99_ms'])} | {_v(st['max_ms'])} | {_v(st['per_s'])} |")
    for w, st in run["pooled"].items():
        md.append(f"| the {sum(s['kind'] == 'reload' for s in run['swaps'])} reloads pooled | {names[w]} | "
                  f"{st['seconds']} | {st['requests']:,} | **{st['failed']}** | {_v(st['p50_ms'])} | "
                  f"{_v(st['p99_ms'])} | {_v(st['max_ms'])} | {_v(st['per_s'])} |")
    md += ["", f"Each answer counts in the window in which it arrived. Before: the {c['steady_s']:g} s before the call "
           f"(the refit ended at least {c['settle_s']:g} s earlier; for the rollback, the window after the last "
           f"reload). During the swap: from the call until every answer carries the new version, plus "
           f"{c['tail_s']:g} s. After: the next {c['steady_s']:g} s. Latencies are measured by the clients, which share "
           "the cores with the server.", "",
           f"In all: {run['requests']['recommend']:,} recommendation requests and {run['requests']['post']:,} event "
           f"posts, **{run['failed']} failed**; {run['acknowledged_events']:,} events acknowledged, "
           f"**{run['missing_events']}** missing from the histories afterwards; {run['server_tracebacks']} tracebacks "
           f"in the server logs. Answers asked after a swap's call was answered that did not carry the new version: "
           f"{sum(s['answers_after_swap_not_new'] for s in run['swaps'])}.", ""]
    if run["error_examples"]:
        md += ["Failed requests, examples: " + "; ".join(f"`{e}`" for e in run["error_examples"][:5]), ""]
    main = [m for t, m in run["server_rss_mb"] if t < run["main_phase_end_s"]]
    watch = [m for t, m in run["server_rss_mb"] if t >= run["main_phase_end_s"]]
    if main:
        md += [f"Server RSS (with its children, every 0.5 s; a swap loads the new version beside the served one): "
               f"{main[0]:.0f} MB at the first sample, {main[-1]:.0f} MB after the swaps, {max(main):.0f} MB at most"
               + (f"; the --watch server {watch[0]:.0f} MB at its first sample, {watch[-1]:.0f} MB after its swap"
                  if watch else "") + ".", ""]
    md += [f"Run time: {run['seconds']:.0f} s.", ""]
    return md


def _gapped(x: list[float], y: list[float], width: float) -> tuple[list[float], list[float]]:
    """x, y with a NaN wherever bins are missing, so a line is not drawn across a gap (a server restart)."""
    gx, gy = [], []
    for i, (a, b) in enumerate(zip(x, y)):
        if i and a - x[i - 1] > 1.5 * width:
            gx.append(a - width)
            gy.append(float("nan"))
        gx.append(a)
        gy.append(b)
    return gx, gy


def plot(res: dict[str, Any], path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()
    runs = res["runs"]
    fig, axes = plt.subplots(2 * len(runs), 1, figsize=(12, 6.5 * len(runs)), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1] * len(runs)})
    for k, run in enumerate(runs):
        ax, ax2 = axes[2 * k][0], axes[2 * k + 1][0]
        ps = [p for p in run["per_second"] if "p50" in p]
        t = [p["t"] + 0.5 for p in ps]
        p5 = [p for p in run.get("per_5_seconds", []) if "p99" in p]
        ax.plot(*_gapped(t, [p["max"] for p in ps], 1), "-", lw=0.6, color="0.6", label="max per second")
        ax.plot(*_gapped([p["t"] + 2.5 for p in p5], [p["p99"] for p in p5], 5), "-", lw=1.2, color="C1",
                label="p99 per 5 s")
        ax.plot(*_gapped(t, [p["p50"] for p in ps], 1), "-", lw=0.9, color="C0", label="p50 per second")
        fails = [p["t"] + 0.5 for p in run["per_second"] if p["failed"]]
        if fails:
            ax.plot(fails, [min(x["p50"] for x in ps)] * len(fails), "rx", label="failed requests")
        for i, f in enumerate(run["refits"]):
            for a in (ax, ax2):
                a.axvspan(f["t_start"], f["t_end"], color="0.85", zorder=0, label="refit (child process)" if i == 0 and a is ax else None)
        for i, s in enumerate(run["swaps"]):
            color = "C3" if s["kind"] == "reload" else "C4"
            for a in (ax, ax2):
                a.axvline(s["t_call"], color=color, lw=1.2, label=(f"POST /admin/{s['kind']}" if a is ax and
                          s is next(x for x in run["swaps"] if x["kind"] == s["kind"]) else None))
        if run["watch"]:
            for a in (ax, ax2):
                a.axvline(run["watch"]["t_appeared"], color="C2", lw=1.2, ls="--",
                          label="new version appears (--watch)" if a is ax else None)
                a.axvline(run["main_phase_end_s"], color="k", lw=0.8, ls=":",
                          label="second server (--watch) starts" if a is ax else None)
        ax.set(yscale="log", ylabel="latency per second (ms)",
               title=f"{run['dataset']}: recommendation latency, {run['config']['readers']} readers + "
                     f"{run['config']['write_rate']:g} events/s")
        ax.legend(fontsize=7, ncol=4, loc="upper left")
        ax2.plot(*_gapped(t, [p["n"] for p in ps], 1), "-", lw=0.8, color="C0", label="answers/s")
        ax2.set(xlabel="seconds since the first fit started", ylabel="answers/s")
        rax = ax2.twinx()
        rax.plot([x for x, _ in run["server_rss_mb"]], [m for _, m in run["server_rss_mb"]], "-", color="C5",
                 lw=1.0, label="server RSS (MB)")
        rax.set(ylabel="server RSS (MB)")
        ax2.legend(fontsize=7, loc="upper left")
        rax.legend(fontsize=7, loc="upper right")
        for a in (ax, ax2):
            a.grid(alpha=0.3)
            a.set_xlim(left=0)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
