"""Hostile-input soak of `promptrec serve`: hostile and good events for minutes, five restarts (kill -9 and
SIGTERM in turn), on SQLite and (where its binaries exist) PostgreSQL.

    python eval/benchmarks/bench_hostile_soak.py [--minutes 2] [--out eval/results]

Every hostile event must get a 4xx, none a 5xx; the server must start after each restart; every acknowledged
good event must be in its user's history after each start. Writes hostile_soak.json and hostile_soak.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def run(store: str, retriever: Path, items: list[str], minutes: float, log: Path) -> dict:
    from promptrec.testing.process import ServerProcess
    from promptrec.testing.hostile import hostile_soak

    args = ("--retriever", str(retriever), "--db", store, "--llm", "none", "--rate-limit", "0",
            "--failed-auth-rate", "0")
    return hostile_soak(lambda: ServerProcess(*args, log=log).start(), items, duration_s=60 * minutes, restarts=5)


def markdown(res: dict) -> str:
    lines = ["# Hostile-input soak of `promptrec serve`", "", f"`{res['command']}`", "",
             f"{res['date']}, {res['machine']}; {res['minutes']:g} minutes per store, 5 restarts.", "",
             "| store | hostile sent | good sent | good acknowledged | hostile accepted | 5xx | acknowledged missing "
             "after a restart | restart s (max) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in res["stores"].items():
        lines.append(f"| {name} | {r['hostile_sent']:,} | {r['good_sent']:,} | {r['acknowledged_good']:,} | "
                     f"{r['hostile_accepted']} | {r['server_errors']} | "
                     f"{sum(x['missing_acknowledged'] for x in r['restarts'])} | "
                     f"{max(x['restart_s'] for x in r['restarts']):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-hostile"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()

    from promptrec import fit_retriever, generate_demo

    args.work.mkdir(parents=True, exist_ok=True)
    ds = generate_demo(n_users=120).dataset
    print("fitting the demo retriever", flush=True)
    fit_retriever(ds, index_root=args.work / "indexes", tune=False).save(args.work / "retriever")
    items = [str(i) for i in ds.catalog.ids[:50]]
    res = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": platform.platform(), "minutes": args.minutes, "stores": {}}
    db = args.work / f"events-{time.time_ns()}.sqlite"
    print(f"soaking SQLite for {args.minutes:g} minutes", flush=True)
    res["stores"]["SQLite"] = run(str(db), args.work / "retriever", items, args.minutes, args.work / "sqlite.log")
    if not args.skip_postgres:
        from promptrec.testing.postgres_local import LocalPostgres, postgres_bin

        if postgres_bin() is not None:
            print(f"soaking PostgreSQL for {args.minutes:g} minutes", flush=True)
            with LocalPostgres() as pg:
                res["stores"]["PostgreSQL"] = run(pg.create_database("soak"), args.work / "retriever", items,
                                                  args.minutes, args.work / "postgres.log")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hostile_soak.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "hostile_soak.md").write_text(markdown(res))
    print(markdown(res))
    bad = [n for n, r in res["stores"].items() if r["server_errors"] or r["hostile_accepted"] or
           any(x["missing_acknowledged"] for x in r["restarts"])]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
