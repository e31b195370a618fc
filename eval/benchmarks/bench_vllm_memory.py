"""Memory of in-process vLLM label scoring over many batches of varied shapes, as a server sees them.

    python eval/benchmarks/bench_vllm_memory.py [--rounds 500] [--out eval/results/vllm_memory]
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 python eval/benchmarks/bench_vllm_memory.py --label "oneDNN default cache" ...

Each round scores 1 to 11 prompts of 50 to 650 words (seeded) against 20 labels. Every ``--every`` rounds it
records the process's anonymous memory by kind ([heap]; executable anonymous pages, i.e. JIT-compiled kernels;
all anonymous), then calls glibc's ``malloc_trim(0)`` and records it again: what remains after the trim is held,
the rest was freed memory the heap kept. Appends a run to OUT/vllm_memory.json and rewrites vllm_memory.md/.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import sys
import time
from pathlib import Path

WORDS = "the a movie film user watched liked rated drama comedy action night morning city place coffee gym bar".split()


def anonymous_mb() -> dict[str, float]:
    """This process's anonymous resident memory (MB): the [heap], executable mappings (JIT code) and in all."""
    out = {"heap": 0.0, "jit_code": 0.0, "anonymous": 0.0}
    perms = name = ""
    for line in open("/proc/self/smaps"):
        m = re.match(r"^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \d+\s*(.*)$", line)
        if m:
            perms, name = m.group(1), m.group(2).strip()
        elif line.startswith("Anonymous:"):
            mb = int(line.split()[1]) / 1024
            out["anonymous"] += mb
            if name == "[heap]":
                out["heap"] += mb
            elif "x" in perms:
                out["jit_code"] += mb
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--every", type=int, default=40, help="Rounds between measurements (and trims).")
    ap.add_argument("--label", default=None, help="Name of this run (default: from the oneDNN cache setting).")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "vllm_memory")
    ap.add_argument("--report-only", action="store_true", help="Redo the markdown and plot from the JSON.")
    args = ap.parse_args()
    path = args.out / "vllm_memory.json"
    if args.report_only:
        runs = json.loads(path.read_text())
        (args.out / "vllm_memory.md").write_text(markdown(runs))
        plot(runs, args.out / "vllm_memory.png")
        return
    asked = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")  # before the backend sets its default
    command = (f"ONEDNN_PRIMITIVE_CACHE_CAPACITY={asked} " if asked else "") + "python " + shlex.join(sys.argv)

    from promptrec.models import cpu_model
    from promptrec.reranker.backends.vllm_engine import VLLMBackend
    from promptrec.serve.memory import HeapTrimmer, tame_malloc

    tame_malloc()  # as promptrec serve does
    backend = VLLMBackend("SmolLM2-135M-Instruct", prefault_kv_cache=True)
    cache = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    label = args.label or f"oneDNN primitive cache {cache}"
    labels = [backend.tokenizer.encode(" " + c, add_special_tokens=False)[0] for c in "ABCDEFGHIJKLMNOPQRST"]
    trim, rng = HeapTrimmer(min_interval_s=0), random.Random(0)
    points, started, prompts_done = [{"round": 0, "seconds": 0.0, "before_trim": anonymous_mb()}], time.time(), 0
    for r in range(1, args.rounds + 1):
        n = rng.randint(1, 11)
        prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 650))) + "\nAnswer:" for _ in range(n)]
        backend.choice_logprobs(prompts, labels)
        prompts_done += n
        if r % args.every == 0:
            point = {"round": r, "seconds": round(time.time() - started, 1), "before_trim": anonymous_mb()}
            trim()
            point["after_trim"] = anonymous_mb()
            points.append(point)
            print(point, flush=True)
    run = {"label": label, "onednn_primitive_cache_capacity": cache, "rounds": args.rounds, "prompts": prompts_done,
           "seconds": round(time.time() - started, 1), "points": points, "command": command,
           "machine": platform.platform(), "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d")}
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["label"] != label] + [run]
    path.write_text(json.dumps(runs, indent=1))
    (args.out / "vllm_memory.md").write_text(markdown(runs))
    plot(runs, args.out / "vllm_memory.png")


def markdown(runs: list[dict]) -> str:
    md = ["# In-process vLLM label scoring: memory over batches of varied shapes", "",
          "Anonymous resident memory (MB) at the start and after the last round; *held* is after `malloc_trim(0)`, "
          "so the rest of *before trim* was freed memory the heap kept. JIT code: executable anonymous pages "
          "(oneDNN's compiled kernels).", "",
          "| run | rounds (prompts) | seconds | all anonymous: start -> before trim / held | [heap] before trim / held "
          "| JIT code held |", "|---|---|---|---|---|---|"]
    for r in runs:
        first, last = r["points"][0]["before_trim"], r["points"][-1]
        md.append(f"| {r['label']} | {r['rounds']} ({r['prompts']:,}) | {r['seconds']:.0f} | {first['anonymous']:.0f} -> "
                  f"{last['before_trim']['anonymous']:.0f} / {last['after_trim']['anonymous']:.0f} | "
                  f"{last['before_trim']['heap']:.0f} / {last['after_trim']['heap']:.0f} | "
                  f"{last['after_trim']['jit_code']:.0f} |")
    md += ["", "Commands: " + "; ".join(f"`{r['command']}` ({r['date']}, {r['cpu'] or r['machine']})"
                                        for r in runs), "",
           "![memory over rounds](vllm_memory.png)", ""]
    return "\n".join(md)


def plot(runs: list[dict], path: Path) -> None:
    from promptrec.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4))
    for r in runs:
        pts = r["points"][1:]
        line, = ax.plot([p["round"] for p in pts], [p["before_trim"]["anonymous"] for p in pts], "-",
                        label=f"{r['label']}: before trim")
        ax.plot([p["round"] for p in pts], [p["after_trim"]["anonymous"] for p in pts], "--", color=line.get_color(),
                label=f"{r['label']}: held (after trim)")
    ax.set(xlabel="rounds (1-11 prompts each)", ylabel="anonymous resident memory (MB)",
           title="in-process vLLM label scoring: memory")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
