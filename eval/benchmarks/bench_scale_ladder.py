"""The retriever's cost as the event log grows: 1M, 10M and 50M synthetic check-ins, each size in its own process.

    python eval/benchmarks/bench_scale_ladder.py [--events 1000000 10000000 50000000] [--out eval/results]
                                                 [--cache /tmp/promptrec-bench-ladder] [--report-only]

Users and places grow with the log (a user logs about 33 events over six weeks; a place gets about 250). Each size
records: generating the log, loading it into promptrec (``Interactions``: sorting, user index), building the item
index (MiniLM vectors of the places the index saved by the previous size lacks: a larger city's first places are a
smaller one's), fitting the default retriever (``signals="auto"``, candidate pools above 50,000 places, no tuning),
peak and current memory after the fit, retrieval users/s for a sample of 1,000 users at their last event (spread
over the six weeks: each distinct hour recounts the trending and area statistics over the events before it, a cost
that grows with the log) and for 2,000 users at one ``now`` after the log, and the latency of one request at one
``now`` (p50 / p99 of single ``retrieve`` calls in the process: what ``promptrec serve`` adds on top is HTTP and
JSON). Writes scale_ladder.{json,md,png}; the plot is log-log with each cost's growth exponent (slope) in the
legend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ["Coffee Shop", "Gym", "Bar", "Office", "Subway Station", "Pizza Place", "Park", "Bakery", "Museum",
         "Bookstore", "Deli", "Grocery Store", "Cinema", "Sushi Restaurant", "Library", "Yoga Studio",
         "Hotel", "Pharmacy", "Burger Joint", "Music Venue", "Laundromat", "Tea Room", "Art Gallery", "Pub"]
START = np.datetime64("2026-03-02T00:00")
DAYS = 42
EVENTS_PER_USER, EVENTS_PER_ITEM = 33, 250
SAMPLE_USERS, ONE_NOW_USERS, LATENCY_REQUESTS = 1_000, 2_000, 500
CELL = 0.01  # a neighbourhood: about 1.1 x 0.8 km


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    if "VmRSS" in status:
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak, peak


def synthetic_log(n_events: int, seed: int = 0):
    """(catalogue frame, events frame with categorical ids) of about ``n_events`` check-ins, vectorised.

    Places have a kind, coordinates and Zipf popularity (each drawn from its own stream, so the first places of a
    larger city are those of a smaller one); users live in a neighbourhood, return to a few favourite places
    there at their own hours (70% of events) and otherwise try places of their neighbourhood or popular ones."""
    n_items = max(2_000, n_events // EVENTS_PER_ITEM)
    n_users = max(100, n_events // EVENTS_PER_USER)
    kind = np.random.default_rng([seed, 1]).integers(0, len(KINDS), n_items)
    lat = np.random.default_rng([seed, 2]).uniform(40.55, 40.90, n_items)
    lon = np.random.default_rng([seed, 3]).uniform(-74.05, -73.75, n_items)
    rng = np.random.default_rng([seed, n_events])
    cell = ((lat - 40.55) // CELL).astype(np.int64) * 1000 + ((lon + 74.05) // CELL).astype(np.int64)
    by_cell = np.argsort(cell, kind="stable")  # places grouped by neighbourhood
    cells, first, size = np.unique(cell[by_cell], return_index=True, return_counts=True)
    home = rng.integers(0, len(cells), n_users)  # each user's neighbourhood
    favourites = by_cell[first[home][:, None] + rng.integers(0, 1 << 30, (n_users, 8)) % size[home][:, None]]
    fav_hour = rng.integers(6, 23, (n_users, 8))
    fav_count = rng.integers(3, 9, n_users)
    counts = np.maximum(5, rng.lognormal(np.log(EVENTS_PER_USER) - 0.125, 0.5, n_users).astype(np.int64))
    counts = np.maximum(1, np.round(counts * n_events / counts.sum()).astype(np.int64))
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    n = len(user)
    pick = (rng.random(n) * fav_count[user]).astype(np.int64)
    item = favourites[user, pick].astype(np.int32)
    hour = (fav_hour[user, pick] + rng.normal(0, 1.5, n)) % 24
    explore = rng.random(n) >= 0.7
    local = rng.random(n) < 0.7  # an exploration in the neighbourhood, else a popular place anywhere
    u = user[explore & local]
    item[explore & local] = by_cell[first[home[u]] + rng.integers(0, 1 << 30, len(u)) % size[home[u]]]
    popular = np.random.default_rng([seed, 4]).permutation(n_items)  # the Zipf rank of each place
    far = explore & ~local
    item[far] = popular[np.minimum(rng.zipf(1.3, int(far.sum())) - 1, n_items - 1)]
    hour[explore] = rng.uniform(7, 24, int(explore.sum()))
    day = rng.integers(0, DAYS, n)
    minutes = (day * 1440 + hour * 60).astype("timedelta64[m]")
    local_time = pd.DatetimeIndex(START + minutes)
    stamp = local_time.tz_localize("America/New_York", ambiguous="NaT", nonexistent="shift_forward").tz_convert("UTC")
    items = pd.DataFrame({"item_id": [f"p{i}" for i in range(n_items)],
                          "title": [f"{KINDS[k]} {i}" for i, k in enumerate(kind)],
                          "categories": [(KINDS[k],) for k in kind], "latitude": lat, "longitude": lon})
    keep = ~stamp.isna()
    events = pd.DataFrame({
        "user_id": pd.Categorical.from_codes(user[keep], categories=[f"u{i}" for i in range(n_users)]),
        "item_id": pd.Categorical.from_codes(item[keep], categories=items["item_id"]),
        "timestamp": stamp[keep]})
    return items, events


def one_size(n_events: int, cache: Path) -> dict:
    from promptrec.data.catalog import Catalog
    from promptrec.data.interactions import Interactions
    from promptrec.heap import return_freed_memory
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    res: dict = {"target_events": n_events}
    t = time.perf_counter()
    items, events = synthetic_log(n_events)
    res["generate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    catalog = Catalog(items)
    inter = Interactions(events, timezone="America/New_York")
    del events
    return_freed_memory()
    res.update(load_s=time.perf_counter() - t, events=len(inter), users=len(inter.users), items=len(catalog),
               frame_mb=float(inter.frame.memory_usage(deep=True).sum() / 2**20),
               object_columns=[c for c in inter.frame.columns if inter.frame[c].dtype == object])
    t = time.perf_counter()
    index = ItemIndex.build(catalog, "ladder", root=cache)
    res["index_s"] = time.perf_counter() - t
    res["rss_before_fit_mb"], res["peak_before_fit_mb"] = rss_mb()
    t = time.perf_counter()
    retriever = TimeAwareRetriever().fit(inter, catalog, index)
    res["fit_s"] = time.perf_counter() - t
    res["rss_after_fit_mb"], res["peak_after_fit_mb"] = rss_mb()
    res["fitted_bytes_per_event"] = (res["rss_after_fit_mb"] - res["rss_before_fit_mb"]) * 2**20 / len(inter)
    res["signals"], res["pooled"] = sorted(retriever.signals), retriever.pool is not None
    frame = inter.frame
    ends = inter._ends - 1  # each user's last event (the frame is sorted by user, then time)
    sample = np.random.default_rng(0).choice(len(ends), min(SAMPLE_USERS, len(ends)), replace=False)
    rows = ends[np.sort(sample)]
    users = frame["user_id"].to_numpy()[rows].astype(str)
    stamps = frame["timestamp"].iloc[rows]
    truth = frame["item_id"].to_numpy()[rows].astype(str)
    t = time.perf_counter()
    found = retriever.retrieve_many(list(zip(users, stamps)), k=100)
    res["sample_users_per_s"] = len(users) / (time.perf_counter() - t)
    res["sample_hours"] = int(stamps.dt.floor("h").nunique())  # distinct slots: statistics counted once each
    res["hr@10"] = float(np.mean([x in [c.item_id for c in cands[:10]] for x, cands in zip(truth, found)]))
    del found
    now = frame["timestamp"].max() + pd.Timedelta(minutes=1)
    t = time.perf_counter()
    retriever.retrieve_many([(u, now) for u in users[:ONE_NOW_USERS]], k=100)
    res["one_now_users_per_s"] = min(ONE_NOW_USERS, len(users)) / (time.perf_counter() - t)
    latency = []
    for u in users[:LATENCY_REQUESTS]:
        t = time.perf_counter()
        retriever.retrieve(u, now, k=20)
        latency.append(1000 * (time.perf_counter() - t))
    res["request_p50_ms"], res["request_p99_ms"] = (float(np.percentile(latency, q)) for q in (50, 99))
    res["rss_end_mb"], res["peak_mb"] = rss_mb()
    return res


COSTS = [("load_s", "loading s"), ("index_s", "index s"), ("fit_s", "fit s"), ("peak_mb", "peak MB"),
         ("rss_after_fit_mb", "MB after fit")]


def slope(rows: list[dict], key: str) -> float | None:
    """The growth exponent of ``key`` against events (least squares on log-log), None below two sizes."""
    ok = [r for r in rows if "error" not in r and r.get(key)]
    if len(ok) < 2:
        return None
    return float(np.polyfit(np.log([r["events"] for r in ok]), np.log([r[key] for r in ok]), 1)[0])


def write(run: dict, out: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    rows = run["sizes"]
    out.mkdir(parents=True, exist_ok=True)
    run["exponents"] = {key: slope(rows, key) for key, _ in COSTS}
    (out / "scale_ladder.json").write_text(json.dumps(run, indent=2))
    md = ["# The retriever's cost as the event log grows", "",
          f"Command: `{run['command']}` ({run['date']}, {run['machine']}, {run['cpu']}).", "",
          "Synthetic check-ins (`synthetic_log` in the script: about 33 events per user and 250 per place), "
          "default retriever (`signals=\"auto\"`, candidate pools above 50,000 places, not tuned). Each size runs "
          "in a fresh process: peak MB is that process's peak (data, index, fit and retrieval). \"B/event fitted\": "
          "resident memory after the fit minus before it, per event. users/s: a sample of "
          f"{SAMPLE_USERS:,} users at their last event (sample hours: the distinct hours among them), and {ONE_NOW_USERS:,} users at one moment after the log; "
          "p50 / p99: one `retrieve` call at that moment, in the process.", "",
          "| events | users | places | loading s | index s | fit s | peak MB | MB after fit | B/event fitted | "
          "users/s (sample) | sample hours | users/s (one now) | p50 ms | p99 ms | HR@10 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['target_events']:,} | failed: {r['error']} |" + " |" * 13)
            continue
        md.append(f"| {r['events']:,} | {r['users']:,} | {r['items']:,} | {r['load_s']:.1f} | {r['index_s']:.1f} | "
                  f"{r['fit_s']:.1f} | {r['peak_mb']:,.0f} | {r['rss_after_fit_mb']:,.0f} | "
                  f"{r['fitted_bytes_per_event']:.0f} | {r['sample_users_per_s']:,.0f} | {r.get('sample_hours', '')} | "
                  f"{r['one_now_users_per_s']:,.0f} | {r['request_p50_ms']:.1f} | {r['request_p99_ms']:.1f} | "
                  f"{r['hr@10']:.3f} |")
    growth = ", ".join(f"{label} {e:.2f}" for (key, label), e in zip(COSTS, run["exponents"].values()) if e is not None)
    md += ["", f"Growth exponents (slope of log cost against log events; 1 is linear): {growth}.", ""]
    if run.get("note"):
        md += [run["note"], ""]
    (out / "scale_ladder.md").write_text("\n".join(md))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    ok = [r for r in rows if "error" not in r]
    for (key, label), e in zip(COSTS, run["exponents"].values()):
        ax.plot([r["events"] for r in ok], [r[key] for r in ok], marker="o",
                label=label + ("" if e is None else f" (slope {e:.2f})"))
    ax.set(xscale="log", yscale="log", xlabel="events", ylabel="seconds / MB", title="cost against events")
    ax.legend(fontsize=8)
    save_figure(fig, out / "scale_ladder.png", dpi=100)
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/promptrec-bench-ladder"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--note", default="", help="a sentence kept with the results")
    ap.add_argument("--report-only", action="store_true", help="redraw --out's scale_ladder.* from its JSON")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one size, JSON out
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_size(args.events[0], args.cache)), flush=True)
        return
    if args.report_only:
        write(json.loads((args.out / "scale_ladder.json").read_text()), args.out)
        return
    from promptrec.models import cpu_model

    run = {"command": "python " + shlex.join(sys.argv), "machine": platform.platform(),
           "cpu": f"{cpu_model()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d %H:%M"),
           "note": args.note, "sizes": []}
    for n in sorted(args.events):
        print(f"== {n:,} events", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", "--events", str(n), "--cache", str(args.cache)],
                              stdout=subprocess.PIPE, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        run["sizes"].append(json.loads(line[7:]) if line else {"target_events": n, "error": f"exit code {proc.returncode}"})
        print(run["sizes"][-1], flush=True)
    write(run, args.out)


if __name__ == "__main__":
    main()
