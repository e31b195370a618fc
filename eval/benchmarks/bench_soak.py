"""Soak test of `promptrec serve` on loopback: mixed posts and reads at 32 clients, retrieval-only and then
with the in-process vLLM reranker, minutes each; memory, latency over time, and every acknowledged event.

    python eval/benchmarks/bench_soak.py --data ../shared/data/ml-100k [--minutes 10] [--out eval/results]

The server runs with API keys (the clients send one; the rate limit is off so the soak measures capacity,
not refusals). Writes soak.json, soak.md and soak.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path


def main() -> None:
    from promptrec.cli.common import load
    from promptrec.retriever import fit_retriever
    from promptrec.serve.auth import add_key
    from promptrec.testing.process import ServerProcess
    from promptrec.testing.soak import SoakConfig, soak

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Dataset folder (default: the demo data).")
    ap.add_argument("--format", default="auto")
    ap.add_argument("--minutes", type=float, default=10.0, help="Length of each soak.")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--skip-retrieval", action="store_true", help="Only the reranked (vLLM) soak.")
    ap.add_argument("--write-share", type=float, default=0.2, help="Share of requests that post events (0: reads only).")
    ap.add_argument("--append", action="store_true", help="Add these runs to the existing soak.json.")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptrec-bench-soak"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--report-only", action="store_true", help="Redo the markdown and plot from the JSON.")
    args = ap.parse_args()
    if args.report_only:
        res = json.loads((args.out / "soak.json").read_text())
        (args.out / "soak.md").write_text(markdown(res))
        plot(res, args.out / "soak.png")
        return
    args.work.mkdir(parents=True, exist_ok=True)
    ds = load(args.data, args.format)
    retriever = fit_retriever(ds, index_root=str(args.work / "indexes"))
    retriever.save(args.work / "retriever")
    (args.work / "keys.json").unlink(missing_ok=True)
    token = add_key(args.work / "keys.json", "soak")
    users, items = [str(u) for u in ds.interactions.users], [str(i) for i in ds.catalog.ids]
    command = "python " + " ".join(sys.argv)
    res: dict = {"command": command, "machine": platform.platform(),
                 "date": time.strftime("%Y-%m-%d"), "dataset": ds.name, "users": len(users), "items": len(items),
                 "events": len(ds.interactions), "runs": []}
    if args.append:
        res = json.loads((args.out / "soak.json").read_text())
        res["command"] += f"; then {command}"
    suffix = "" if args.write_share else ", reads only"
    modes = ([] if args.skip_retrieval else [(f"retrieval only{suffix}", "none", False)]) + (
        [] if args.skip_llm else [(f"reranked (vLLM){suffix}", "vllm", True)])
    for label, llm, rerank in modes:
        db = args.work / f"soak-{llm}.sqlite"
        for f in args.work.glob(f"soak-{llm}.sqlite*"):
            f.unlink()
        server = ServerProcess("--retriever", str(args.work / "retriever"), "--db", str(db), "--llm", llm,
                               "--keys", str(args.work / "keys.json"), "--rate-limit", "0",
                               log=args.work / f"server-{llm}.log", ready_timeout=600)
        with server:
            print(f"{label}: soak of {args.minutes:g} min at {args.clients} clients", flush=True)
            config = SoakConfig(clients=args.clients, duration_s=60 * args.minutes, rerank=rerank,
                                write_share=args.write_share)
            result = soak(server.url, server.proc.pid, users, items, config, headers={"Authorization": f"Bearer {token}"})
        log_text = (args.work / f"server-{llm}.log").read_text()
        run = {"mode": label, **asdict(result), "server_tracebacks": log_text.count("Traceback")}
        res["runs"].append(run)
        print({k: v for k, v in run.items() if k not in ("rss_mb", "windows")}, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(res, indent=1, default=str))
    (args.out / "soak.md").write_text(markdown(res))
    plot(res, args.out / "soak.png")


def verdicts(run: dict) -> dict[str, bool]:
    """The soak's pass conditions. p99 stability is judged per kind of answer (reranked ones wait for the LLM,
    the others do not; the p99 of all answers in a window jumps with how many reranked ones fall in it): the
    all-answers ratio is in the table beside it."""
    by_kind = run.get("p99_ratio_by_kind") or {"all": run["p99_first_last_ratio"]}
    return {"no errors beyond documented refusals": run["errors"] == 0 and run["server_tracebacks"] == 0,
            "RSS growth after warm-up < 5%": run["rss_growth_after_warmup"] < 0.05,
            "p99 stable per kind of answer (last third / first third <= 1.5)": all(v <= 1.5 for v in by_kind.values()),
            "every acknowledged event present": run["missing_events"] == 0}


def markdown(res: dict) -> str:
    md = ["# promptrec serve: soak", "",
          f"Command: `{res['command']}` ({res['date']}, {res['machine']}, 2 CPU cores shared by server and clients)", "",
          f"Data: {res['dataset']} ({res['users']:,} users, {res['items']:,} items, {res['events']:,} events). "
          "Each client loops: 20% POST /events (1 to 3 events, received time; 0% in the runs marked reads only), "
          "5% GET history, the rest GET recommendations (k=10, `now` = the server clock); the server has API keys on (every request "
          "authenticated) and no rate limit. Memory is the server's RSS with its children (the vLLM engine "
          "core); warm-up is the first 60 s.", "",
          "| mode | minutes | clients | requests | by status | errors | events acknowledged / missing | RSS after "
          "warm-up -> end (MB) | growth | p99 first -> last third (ms) | p99 last/first: all, by kind | reranked |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        after = [m for t, m in r["rss_mb"] if t >= r["config"]["warmup_s"]]
        steady = [w for w in r["windows"] if w["start_s"] >= r["config"]["warmup_s"] and w["p99_ms"]]
        third = max(1, len(steady) // 3)
        p99s = ([sorted(w["p99_ms"] for w in steady[:third])[third // 2], sorted(w["p99_ms"] for w in steady[-third:])[third // 2]]
                if steady else ["-", "-"])
        md.append(f"| {r['mode']} | {r['seconds'] / 60:.1f} | {r['config']['clients']} | {r['requests']:,} | "
                  f"{', '.join(f'{k}: {v:,}' for k, v in r['by_status'].items())} | {r['errors']} | "
                  f"{r['acknowledged_events']:,} / **{r['missing_events']}** | {after[0]:.0f} -> {after[-1]:.0f} | "
                  f"{100 * r['rss_growth_after_warmup']:+.1f}% | {p99s[0]} -> {p99s[1]} | {r['p99_first_last_ratio']}; "
                  + ", ".join(f"{k} {v}" for k, v in (r.get("p99_ratio_by_kind") or {}).items())
                  + f" | {r['reranked']:,} |")
    md += ["", "| mode | " + " | ".join(verdicts(res["runs"][0])) + " |", "|---|" + "---|" * len(verdicts(res["runs"][0]))]
    for r in res["runs"]:
        md.append(f"| {r['mode']} | " + " | ".join("yes" if v else "**no**" for v in verdicts(r).values()) + " |")
    for r in res["runs"]:
        if r["fallbacks"]:
            md += ["", f"{r['mode']}: recommendations not reranked, by reason: "
                   + ", ".join(f"{k}: {v:,}" for k, v in r["fallbacks"].items())]
        if r.get("memory_by_process"):
            md += ["", f"{r['mode']}: resident memory after warm-up -> end, by process (MB): "
                   + "; ".join(_memory_change(r))]
        if r.get("llm_queue"):
            md += ["", f"{r['mode']}: the server's LLM queue at the end (`/health`): "
                   + ", ".join(f"{k} {v}" for k, v in r["llm_queue"].items())]
        if r["error_examples"]:
            md += ["", f"{r['mode']}: error examples: " + "; ".join(f"`{e}`" for e in r["error_examples"][:5])]
    md += ["", "![latency and memory over time](soak.png)", ""]
    return "\n".join(md)


def _memory_change(run: dict) -> list[str]:
    """Per process: anonymous (heap, tensors) and file-backed memory at the end of warm-up and at the end."""
    samples = [m for t, m in run["memory_by_process"] if t >= run["config"]["warmup_s"]]
    first, last = samples[0], samples[-1]
    return [f"{name} anonymous {first[name]['anon']:.0f} -> {last[name]['anon']:.0f}, file-backed or shared "
            f"{first[name]['file_or_shared']:.0f} -> {last[name]['file_or_shared']:.0f}"
            for name in first if name in last]


def plot_memory(ax, runs: list[tuple[str | None, dict]], ylabel: str, title: str) -> None:
    """Each (label, soak run)'s server RSS over minutes on ``ax``, and the end of the first run's warm-up."""
    for label, r in runs:
        ax.plot([t / 60 for t, _ in r["rss_mb"]], [m for _, m in r["rss_mb"]], "-", label=label)
    ax.axvline(runs[0][1]["config"]["warmup_s"] / 60, color="grey", ls=":", label="end of warm-up")
    ax.set(xlabel="minutes", ylabel=ylabel, title=title)


def plot(res: dict, path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(len(res["runs"]), 2, figsize=(11, 3.6 * len(res["runs"])), squeeze=False)
    for row, r in zip(axes, res["runs"]):
        w = [x for x in r["windows"] if x["p50_ms"] is not None]
        t = [(x["start_s"] + r["config"]["window_s"] / 2) / 60 for x in w]
        row[0].plot(t, [x["p50_ms"] for x in w], "o-", ms=3, label="p50")
        row[0].plot(t, [x["p99_ms"] for x in w], "s-", ms=3, label="p99")
        row[0].set(yscale="log", xlabel="minutes", ylabel="latency (ms)", title=f"{r['mode']}: latency per 30 s")
        plot_memory(row[1], [(None, r)], "server RSS (MB)", f"{r['mode']}: memory")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
