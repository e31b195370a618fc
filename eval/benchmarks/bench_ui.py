"""Server time of the web console's user view on the demo data.

    python eval/benchmarks/bench_ui.py [--retriever DIR] [--day YYYY-MM-DD] [--out eval/results]

Starts `promptrec serve --llm none` with an API key on a demo retriever (fitted and saved first unless
--retriever is given), then asks what the page asks when a control changes: /ui/api/recommend (top 20),
/ui/api/timeline (200 events) and /ui/api/times (8 top-5 lists), for users x hours x devices, one request at
a time. Server time is the handler's own (the Server-Timing header); wall time includes loopback HTTP.
Writes ui_benchmark.json and .md. With --retriever (e.g. one fitted on the NYC check-ins) the requests are made
on the day of the console's default time (the hour after the log's end) unless --day is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ENDPOINTS = ("recommend", "timeline", "times")
TARGET_MS = 300.0


def fit_demo(folder: Path) -> Path:
    from promptrec.data.demo import generate_demo
    from promptrec.data.splits import leave_last_out
    from promptrec.index.item_index import ItemIndex
    from promptrec.retriever.retriever import TimeAwareRetriever

    ds = generate_demo().dataset
    split = leave_last_out(ds.interactions)
    index = ItemIndex.build(ds.catalog, "demo", root=folder / "indexes")
    TimeAwareRetriever().fit(split.train, ds.catalog, index, log=split.full).save(folder / "retriever")
    return folder / "retriever"


def server_ms(response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retriever", type=Path, default=None, help="A saved retriever (default: fit the demo's).")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--day", default=None, help="Local day of the requests (default: 2024-04-30 for the demo, else "
                                                "the day of the console's default time).")
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    args = ap.parse_args()

    from promptrec.serve.auth import add_key
    from promptrec.testing.process import ServerProcess

    tmp = Path(tempfile.mkdtemp(prefix="bench_ui_"))
    t0 = time.perf_counter()
    retriever = args.retriever or fit_demo(tmp)
    fit_s = time.perf_counter() - t0
    token = add_key(tmp / "keys.json", "bench")
    samples: dict[str, dict[str, list[float]]] = {e: {"server": [], "wall": []} for e in ENDPOINTS}
    with ServerProcess("--retriever", str(retriever), "--llm", "none", "--keys", str(tmp / "keys.json"),
                       "--db", str(tmp / "events.sqlite"), "--rate-limit", "0", log=tmp / "server.log") as server:
        client = server.client(headers={"Authorization": f"Bearer {token}"})
        users = client.get("/ui/api/users", params={"limit": args.users}).json()
        meta = client.get("/ui/api/meta").json()
        day = args.day or ("2024-04-30" if args.retriever is None else meta["default_now"][:10])
        client.get("/ui/api/recommend", params={"user": users[0]})  # warm-up
        for user in users:
            for hour in (7, 12, 18, 22):
                for device in ("", "mobile", "tv"):
                    now = f"{day}T{hour:02d}:00"
                    calls = {"recommend": ("/ui/api/recommend", {"user": user, "now": now, "device": device, "k": 20}),
                             "timeline": ("/ui/api/timeline", {"user": user, "limit": 200}),
                             "times": ("/ui/api/times", {"user": user, "now": now, "device": device})}
                    for name, (path, params) in calls.items():
                        w0 = time.perf_counter()
                        r = client.get(path, params=params)
                        samples[name]["wall"].append(1e3 * (time.perf_counter() - w0))
                        r.raise_for_status()
                        samples[name]["server"].append(server_ms(r))
    stats = {name: {kind: {"median_ms": round(float(np.median(v)), 2), "p90_ms": round(float(np.percentile(v, 90)), 2),
                           "max_ms": round(float(np.max(v)), 2)} for kind, v in s.items()} | {"requests": len(s["wall"])}
             for name, s in samples.items()}
    view = [sum(x) for x in zip(*(samples[e]["server"] for e in ENDPOINTS))]
    data = ("demo (400 users, 330 items, ~25k events)" if args.retriever is None else
            f"{args.retriever} ({meta['users']} users, {meta['items']} items)")
    command = "python eval/benchmarks/bench_ui.py" + (f" --retriever {args.retriever}" if args.retriever else "")
    result = {"command": command, "data": data, "day": day,
              "users": len(users), "contexts_per_user": 12, "endpoints": stats,
              "user_view_server_ms": {"median_ms": round(float(np.median(view)), 2),
                                      "p90_ms": round(float(np.percentile(view, 90)), 2)},
              "target_median_ms": TARGET_MS, "meets_target": bool(np.median(view) < TARGET_MS),
              "fit_s": round(fit_s, 1), "machine": {"python": sys.version.split()[0], "platform": platform.platform()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ui_benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {s['requests']} | {s['server']['median_ms']} | {s['server']['p90_ms']} | "
                     f"{s['wall']['median_ms']} | {s['wall']['p90_ms']} |" for name, s in stats.items())
    (args.out / "ui_benchmark.md").write_text(
        "# Web console: server time of the user view\n\n"
        f"`{result['command']}`: `promptrec serve --llm none` on {data}, {len(users)} users x 4 hours on {day} x "
        "3 devices, one request at a time; server time from the handler's Server-Timing header, wall time over "
        "loopback HTTP.\n\n"
        "| endpoint | requests | server median ms | server p90 ms | wall median ms | wall p90 ms |\n"
        "|---|---|---|---|---|---|\n" + rows + "\n\n"
        f"The whole user view (the three answers a control change asks for): median "
        f"{result['user_view_server_ms']['median_ms']} ms, p90 {result['user_view_server_ms']['p90_ms']} ms of server "
        f"time (target: median under {TARGET_MS:g} ms: {'met' if result['meets_target'] else 'NOT met'}).\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
