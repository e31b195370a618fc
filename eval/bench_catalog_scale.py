"""Retriever speed and memory as the catalogue grows: a synthetic city of N places, fitted and queried.

    python eval/bench_catalog_scale.py [--items 1000 10000 50000 200000] [--users 10000] [--out eval/results]
                                       [--baseline OTHER/catalog_scale.json --baseline-label "commit abc"] [--report-only]

Each size runs in a fresh process (so its peak memory is its own): generate check-ins (places with a kind,
coordinates and Zipf popularity; users who return to a few favourite places of their neighbourhood at their
own hours and try other places there), build the item index (all-MiniLM-L6-v2 vectors, cached under ``--cache`` across sizes), fit the
default retriever (``signals="auto"``: content, transition, trending, time of day, freshness, habit, place;
linear blend) and retrieve the top 100 for every user at the time of their last event. Writes
catalog_scale.{json,md,png}: fit seconds, users/s, peak memory per size.
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
START = pd.Timestamp("2026-03-02", tz="America/New_York")
DAYS = 42


def synthetic_city(n_items: int, n_users: int, mean_events: int = 30, seed: int = 0):
    """A check-in data set of ``n_items`` places: (Catalog, Interactions), deterministic for a seed."""
    from promptrec.data.catalog import Catalog
    from promptrec.data.interactions import Interactions

    # a place's kind and coordinates do not depend on n_items (each from its own stream): the first places of a
    # larger city are those of a smaller one, so the index cache reuses their vectors
    kind = np.random.default_rng([seed, 1]).integers(0, len(KINDS), n_items)
    lat = np.random.default_rng([seed, 2]).uniform(40.55, 40.90, n_items)
    lon = np.random.default_rng([seed, 3]).uniform(-74.05, -73.75, n_items)
    rng = np.random.default_rng([seed, n_items])
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    popularity = popularity[rng.permutation(n_items)] / popularity.sum()
    items = pd.DataFrame({"item_id": [f"p{i}" for i in range(n_items)],
                          "title": [f"{KINDS[k]} {i}" for i, k in enumerate(kind)],
                          "categories": [(KINDS[k],) for k in kind], "latitude": lat, "longitude": lon})
    # users live in a neighbourhood: the places of their home's grid cell (about 1.1 x 0.8 km) and the 8 around it
    cell = 0.01
    gx, gy = ((lat - 40.55) // cell).astype(int), ((lon + 74.05) // cell).astype(int)
    by_cell = pd.Series(np.arange(n_items)).groupby([gx, gy]).apply(np.asarray).to_dict()
    rows = []
    for u in range(n_users):
        hx, hy = int(rng.integers(gx.min(), gx.max() + 1)), int(rng.integers(gy.min(), gy.max() + 1))
        pool = np.concatenate([by_cell.get((hx + a, hy + b), np.zeros(0, int)) for a in (-1, 0, 1) for b in (-1, 0, 1)])
        if len(pool) < 20:  # a sparse city: the nearest places by grid distance
            pool = np.argsort(np.hypot(gx - hx, gy - hy), kind="stable")[:20]
        near = popularity[pool] / popularity[pool].sum()
        favourites = rng.choice(pool, size=min(int(rng.integers(3, 15)), len(pool)), replace=False, p=near)
        fav_hour = rng.integers(6, 23, len(favourites))
        n = max(5, int(rng.lognormal(np.log(mean_events), 0.5)))
        for d in np.sort(rng.uniform(0, DAYS, n)):
            if rng.random() < 0.7:
                j = int(rng.integers(len(favourites)))
                item, hour = favourites[j], (fav_hour[j] + rng.normal(0, 1.5)) % 24
            else:
                item, hour = rng.choice(pool, p=near), rng.uniform(7, 24)
            rows.append((f"u{u}", f"p{item}", START + pd.Timedelta(days=int(d), hours=float(hour))))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Catalog(items), Interactions(events, timezone="America/New_York")


def one_size(n_items: int, n_users: int, cache: Path) -> dict:
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    res: dict = {"items": n_items}
    t = time.perf_counter()
    catalog, inter = synthetic_city(n_items, n_users)
    res.update(generate_s=time.perf_counter() - t, users=len(inter.users), events=len(inter))
    t = time.perf_counter()
    index = ItemIndex.build(catalog, "scale", root=cache)  # vectors of earlier sizes' items are reused
    res["index_s"] = time.perf_counter() - t
    rss_before_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    retriever = TimeAwareRetriever().fit(inter, catalog, index)
    res["fit_s"] = time.perf_counter() - t
    res["signals"] = sorted(retriever.signals)
    place = retriever.signals.get("place")
    res["area_popularity"] = place is not None and getattr(place, "neighbours", None) is not None
    res.update(retrieve_at_last_events(retriever, inter), peak_rss_before_fit_mb=rss_before_fit)
    return res


def retrieve_at_last_events(retriever, inter) -> dict:
    """Top 100 for every user at the time of their last event: seconds, users/s, candidates, peak memory."""
    last = inter.frame.groupby("user_id", sort=False)["timestamp"].max()
    requests = list(zip(last.index, last.to_numpy()))
    t = time.perf_counter()
    out = retriever.retrieve_many(requests, k=100, progress=True)
    seconds = time.perf_counter() - t
    return {"retrieve_s": seconds, "users_per_s": len(requests) / seconds,
            "mean_candidates": float(np.mean([len(c) for c in out])),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _table(results: list[dict]) -> list[str]:
    rows = ["| items | users | events | signals | area | index s | fit s | retrieve s | users/s | peak MB | "
            "peak MB before fit |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['items']:,} | | | | | | | | failed: {r['error']} | | |")
            continue
        area = {True: "yes", False: "skipped"}.get(r.get("area_popularity"), "not recorded")
        rows.append(f"| {r['items']:,} | {r['users']:,} | {r['events']:,} | {len(r['signals'])} | {area} | "
                    f"{r['index_s']:.1f} | {r['fit_s']:.1f} | {r['retrieve_s']:.1f} | {r['users_per_s']:,.0f} | "
                    f"{r['peak_rss_mb']:,.0f} | {r['peak_rss_before_fit_mb']:,.0f} |")
    return rows


def write(run: dict, out: Path, baseline: dict | None = None, baseline_label: str = "baseline") -> None:
    """catalog_scale.{json,md,png} in ``out`` for ``run`` (meta + "sizes"); ``baseline``, another run's JSON
    (e.g. of an earlier commit, the same command), is shown beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    if baseline is not None:
        run = {**run, "baseline": {"label": baseline_label, **baseline}}
    (out / "catalog_scale.json").write_text(json.dumps(run, indent=2))
    md = ["# Retriever speed and memory by catalogue size", "",
          f"Command: `{run['command']}` ({run['date']}, {run['machine']}, {run['cpu']}).", "",
          "Synthetic check-ins (`synthetic_city` in the script), default retriever (`signals=\"auto\"`, linear "
          "blend), top 100 for every user at their last event. Peak memory is the process's (data, index and "
          "retriever included); \"before fit\" is the peak after generating data and building the index. \"area\": "
          "whether the place signal built its area statistic (skipped above `MAX_AREA_PAIRS` pairs of places "
          "within its distance scale).", ""] + _table(run["sizes"]) + [""]
    runs = [("this run", run["sizes"])]
    if baseline is not None:
        note = f" {baseline['note']}." if baseline.get("note") else ""
        md += [f"## {baseline_label}", "", f"Command: `{baseline['command']}` ({baseline['date']}).{note}", ""] + \
            _table(baseline["sizes"]) + [""]
        runs.append((baseline_label, baseline["sizes"]))
    (out / "catalog_scale.md").write_text("\n".join(md))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, sizes in runs:
        ok = [r for r in sizes if "error" not in r]
        x = [r["items"] for r in ok]
        a.plot(x, [r["users_per_s"] for r in ok], marker="o", label=label)
        b.plot(x, [r["peak_rss_mb"] for r in ok], marker="o", label=f"{label}: peak")
    a.set(xscale="log", yscale="log", xlabel="items", ylabel="users/s (top 100)", title="retrieval throughput")
    b.set(xscale="log", xlabel="items", ylabel="MB", title="peak memory (process)")
    a.legend()
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "catalog_scale.png", dpi=100)
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000, 50_000, 200_000])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/promptrec-bench-scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--baseline", type=Path, help="another run's catalog_scale.json to show beside this one")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--report-only", action="store_true", help="redraw --out's catalog_scale.* from its JSON")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one size, JSON out
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_size(args.items[0], args.users, args.cache)), flush=True)
        return
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    if baseline is not None:
        baseline.pop("baseline", None)
    if args.report_only:  # the baseline embedded in the JSON is kept unless --baseline replaces it
        run = json.loads((args.out / "catalog_scale.json").read_text())
        embedded = run.pop("baseline", None)
        if baseline is None and embedded is not None:
            baseline, args.baseline_label = embedded, embedded.pop("label", args.baseline_label)
        write(run, args.out, baseline, args.baseline_label)
        return
    from promptrec.models import cpu_model

    meta = {"command": "python " + shlex.join(sys.argv), "machine": platform.platform(), "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d %H:%M")}
    results = []
    for n in sorted(args.items):
        print(f"== {n:,} items", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", "--items", str(n), "--users", str(args.users),
                               "--cache", str(args.cache)], stdout=subprocess.PIPE, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        results.append(json.loads(line[7:]) if line else {"items": n, "error": f"exit code {proc.returncode}"})
        print(results[-1], flush=True)
    write({**meta, "sizes": results}, args.out, baseline, args.baseline_label)


if __name__ == "__main__":
    main()
