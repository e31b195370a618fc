"""Retriever speed and memory as the catalogue grows: a synthetic city of N places, fitted and queried.

    python eval/benchmarks/bench_catalog_scale.py [--items 1000 10000 50000 200000] [--users 10000] [--out eval/results]
                                       [--modes exhaustive pooled]
                                       [--baseline OTHER/catalog_scale.json --baseline-label "commit abc"] [--report-only]

Each size and mode runs in a fresh process (so its peak memory is its own): generate check-ins (places with a kind,
coordinates and Zipf popularity; users who return to a few favourite places of their neighbourhood at their
own hours and try other places there), build the item index (all-MiniLM-L6-v2 vectors, cached under ``--cache`` across sizes), fit the
default retriever (``signals="auto"``: content, transition, trending, time of day, freshness, habit, place;
linear blend) and retrieve the top 100 for every user at the time of their last event. Two modes: every signal
scores the whole catalogue (``exhaustive``, ``pool=None``) or only each request's candidate pool (``pooled``,
``pool="on"``: promptrec.retriever.pool). Writes catalog_scale.{json,md,png}: fit seconds, users/s, peak memory,
how often the last event's place is in the top 10 / 100, and how much of the exhaustive top 100 the pooled one keeps.
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


MODES = {"exhaustive": None, "pooled": "on"}
ONE_NOW_USERS = 2000


def one_size(n_items: int, n_users: int, cache: Path, mode: str = "exhaustive") -> dict:
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    res: dict = {"items": n_items, "mode": mode}
    t = time.perf_counter()
    catalog, inter = synthetic_city(n_items, n_users)
    res.update(generate_s=time.perf_counter() - t, users=len(inter.users), events=len(inter))
    t = time.perf_counter()
    index = ItemIndex.build(catalog, "scale", root=cache)  # vectors of earlier sizes' items are reused
    res["index_s"] = time.perf_counter() - t
    rss_before_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    retriever = TimeAwareRetriever(pool=MODES[mode]).fit(inter, catalog, index)
    res["fit_s"] = time.perf_counter() - t
    res["signals"] = sorted(retriever.signals)
    place = retriever.signals.get("place")
    res["area_popularity"] = place is not None and getattr(place, "neighbours", None) is not None
    found = retrieve_at_last_events(retriever, inter)
    (cache / f"top100_{n_items}_{mode}.json").write_text(json.dumps(found.pop("top")))  # for the modes' overlap
    res.update(found, peak_rss_before_fit_mb=rss_before_fit)
    # serving: many users asking at the same moment (everybody's statistics are shared by the whole run)
    users = inter.frame["user_id"].unique()[:ONE_NOW_USERS]
    now = inter.frame["timestamp"].max() + pd.Timedelta(minutes=1)
    t = time.perf_counter()
    retriever.retrieve_many([(u, now) for u in users], k=100)
    res["one_now_users_per_s"] = len(users) / (time.perf_counter() - t)
    return res


def retrieve_at_last_events(retriever, inter) -> dict:
    """Top 100 for every user at the time of their last event: seconds, users/s, candidates, peak memory, how
    often that event's item is in the top 10 / 100 (its history is strictly before it), and the top 100s."""
    last = inter.frame.sort_values("timestamp", kind="stable").groupby("user_id", sort=False).tail(1)
    requests = list(zip(last["user_id"], last["timestamp"]))
    t = time.perf_counter()
    out = retriever.retrieve_many(requests, k=100, progress=True)
    seconds = time.perf_counter() - t
    top = [[c.item_id for c in cands] for cands in out]
    truth = last["item_id"].astype(str).to_numpy()
    return {"retrieve_s": seconds, "users_per_s": len(requests) / seconds,
            "mean_candidates": float(np.mean([len(c) for c in out])),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "hr@10": float(np.mean([t in ids[:10] for t, ids in zip(truth, top)])),
            "hr@100": float(np.mean([t in ids for t, ids in zip(truth, top)])), "top": top}


def _table(results: list[dict]) -> list[str]:
    rows = ["| items | mode | users | events | signals | area | index s | fit s | retrieve s | users/s | users/s at one "
            "now | peak MB | peak MB before fit | HR@10 | HR@100 | top 100 shared with exhaustive |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def num(r: dict, key: str, fmt: str = ".3f") -> str:
        return "" if r.get(key) is None else format(r[key], fmt)

    for r in results:
        mode = r.get("mode", "exhaustive")
        if "error" in r:
            rows.append(f"| {r['items']:,} | {mode} | | | | | | | | failed: {r['error']} | | | | | | |")
            continue
        area = {True: "yes", False: "skipped"}.get(r.get("area_popularity"), "not recorded")
        rows.append(f"| {r['items']:,} | {mode} | {r['users']:,} | {r['events']:,} | {len(r['signals'])} | {area} | "
                    f"{r['index_s']:.1f} | {r['fit_s']:.1f} | {r['retrieve_s']:.1f} | {r['users_per_s']:,.0f} | "
                    f"{num(r, 'one_now_users_per_s', ',.0f')} | {r['peak_rss_mb']:,.0f} | {r['peak_rss_before_fit_mb']:,.0f} | {num(r, 'hr@10')} | "
                    f"{num(r, 'hr@100')} | {num(r, 'overlap_with_exhaustive')} |")
    return rows


def add_overlap(results: list[dict], cache: Path) -> None:
    """Each pooled row's mean share of the exhaustive top 100 (same size) that its own top 100 keeps."""
    for r in results:
        exhaustive = cache / f"top100_{r['items']}_exhaustive.json"
        mine = cache / f"top100_{r['items']}_{r.get('mode')}.json"
        if r.get("mode") == "pooled" and "error" not in r and exhaustive.exists() and mine.exists():
            a, b = json.loads(exhaustive.read_text()), json.loads(mine.read_text())
            r["overlap_with_exhaustive"] = float(np.mean([len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(a, b)]))


def write(run: dict, out: Path, baseline: dict | None = None, baseline_label: str = "baseline") -> None:
    """catalog_scale.{json,md,png} in ``out`` for ``run`` (meta + "sizes"); ``baseline``, another run's JSON
    (e.g. of an earlier commit, the same command), is shown beside it."""
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    out.mkdir(parents=True, exist_ok=True)
    if baseline is not None:
        run = {**run, "baseline": {"label": baseline_label, **baseline}}
    (out / "catalog_scale.json").write_text(json.dumps(run, indent=2))
    md = ["# Retriever speed and memory by catalogue size", "",
          f"Command: `{run['command']}` ({run['date']}, {run['machine']}, {run['cpu']})."
          + (f" {run['note']}" if run.get("note") else ""), "",
          "Synthetic check-ins (`synthetic_city` in the script), default retriever (`signals=\"auto\"`, linear "
          "blend), top 100 for every user at their last event (its history strictly before it). Modes: every "
          "signal scores the whole catalogue (exhaustive, `pool=None`) or each request's candidate pool (pooled, "
          "`pool=\"on\"`, the default above 50,000 items). Peak memory is the process's (data, index and "
          "retriever included); \"before fit\" is the peak after generating data and building the index (\"index s\"; "
          "the second mode of a size reuses the vectors the first one embedded). \"area\": "
          "whether the place signal built its area statistic (skipped above `MAX_AREA_PAIRS` pairs of places "
          "within its distance scale). users/s: every user at the time of their last event (spread over six weeks: "
          "everybody's statistics are computed for about a thousand hourly slots); at one now: the first "
          f"{ONE_NOW_USERS:,} users at one moment after the log (serving). HR@10 / HR@100: how often the last "
          "event's place is in the top 10 / 100; the last column: the mean share of the exhaustive top 100 that "
          "the pooled top 100 keeps.", ""] + \
        _table(run["sizes"]) + [""]
    runs = [("this run", run["sizes"])]
    if baseline is not None:
        note = f" {baseline['note'].rstrip('.')}." if baseline.get("note") else ""
        md += [f"## {baseline_label}", "", f"Command: `{baseline['command']}` ({baseline['date']}).{note}", ""] + \
            _table(baseline["sizes"]) + [""]
        runs.append((baseline_label, baseline["sizes"]))
    (out / "catalog_scale.md").write_text("\n".join(md))
    fig, (a, b, c, d) = plt.subplots(1, 4, figsize=(20, 4))
    for label, sizes in runs:
        for mode in dict.fromkeys(r.get("mode", "exhaustive") for r in sizes):
            ok = [r for r in sizes if "error" not in r and r.get("mode", "exhaustive") == mode]
            x, name = [r["items"] for r in ok], f"{label.split(' (')[0]}, {mode}"  # the label's gist: legends stay short
            a.plot(x, [r["users_per_s"] for r in ok], marker="o", label=name)
            b.plot(x, [r["peak_rss_mb"] for r in ok], marker="o", label=name)
            if all("hr@10" in r for r in ok):
                c.plot(x, [r["hr@10"] for r in ok], marker="o", label=name)
                d.plot(x, [r["hr@100"] for r in ok], marker="o", label=name)
    a.set(xscale="log", yscale="log", xlabel="items", ylabel="users/s (top 100)", title="retrieval throughput")
    b.set(xscale="log", xlabel="items", ylabel="MB", title="peak memory (process)")
    c.set(xscale="log", xlabel="items", ylabel="HR@10 (last event)", title="quality: top 10")
    d.set(xscale="log", xlabel="items", ylabel="HR@100 (last event)", title="quality: top 100")
    for ax in (a, b, c, d):
        ax.legend(fontsize=8)
    save_figure(fig, out / "catalog_scale.png", dpi=100)
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000, 50_000, 200_000])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/promptrec-bench-scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--baseline", type=Path, help="another run's catalog_scale.json to show beside this one")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--report-only", action="store_true", help="redraw --out's catalog_scale.* from its JSON")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one size, JSON out
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_size(args.items[0], args.users, args.cache, args.modes[0])), flush=True)
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
        for mode in args.modes:
            print(f"== {n:,} items, {mode}", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--one", "--items", str(n), "--users", str(args.users),
                                   "--cache", str(args.cache), "--modes", mode], stdout=subprocess.PIPE, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            results.append(json.loads(line[7:]) if line else
                           {"items": n, "mode": mode, "error": f"exit code {proc.returncode}"})
            print(results[-1], flush=True)
    add_overlap(results, args.cache)
    write({**meta, "sizes": results}, args.out, baseline, args.baseline_label)


if __name__ == "__main__":
    main()
