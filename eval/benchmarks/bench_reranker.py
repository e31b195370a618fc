"""Reranker speed: users/s, prompt tokens/s and peak memory per strategy, on vLLM and transformers.

    python eval/benchmarks/bench_reranker.py [--users 96] [--batch 32] [--data ../shared/data/ml-100k] [--out eval/results]
                                  [--kv-cache-gb GB]

Same 20-candidate prompts for every row (retriever top 20 for MovieLens 100K test users, or the
demo data when the folder is absent), in batches of 32, in one run. Writes
reranker_benchmark.json and .md. vLLM's prefix cache is reset before each row, so the
bootstrap row's cache hits come from its own shuffles.

A vLLM-only run (``--backends vllm``) writes nothing to the main results; it appends its rows, KV-cache
size and load average to OUT/reranker_kv_runs.json. Alternate such runs with and without ``--kv-cache-gb``
on a quiet machine to compare KV-cache sizes; the next full run shows them side by side (median per size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil


class PeakRSS:
    """Samples this process's resident memory in the background; ``peak_mb`` after the block."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def main() -> None:
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import leave_last_out
    from promptrec.models import cpu_model, native_bf16, prepare_default_model
    from promptrec.reranker.reranker import Reranker
    from promptrec.retriever.retriever import TimeAwareRetriever

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-100k")
    ap.add_argument("--listwise-tokens", type=int, default=60)
    ap.add_argument("--backends", default="transformers,vllm", help="comma-separated subset to run")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--kv-cache-gb", type=float, default=None,
                    help="vLLM's KV-cache size (default: the backend's, what max_num_seqs x max_model_len need)")
    ap.add_argument("--dtype", default=None, help="the LLM's dtype (default: each backend's own)")
    args = ap.parse_args()
    prepare_default_model()
    ds = load_dataset(args.data if (args.data / "u.data").exists() else None)
    split = leave_last_out(ds.interactions)
    retriever = TimeAwareRetriever(signals=["transition", "trending", "freshness"]).fit(split.train, ds.catalog,
                                                                                        log=split.full)
    targets = split.test[: args.users]
    cands = retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=20)
    res: dict = {"command": "python " + " ".join(sys.argv), "dataset": ds.name, "users": len(targets),
                 "batch": args.batch, "candidates": 20, "dtype": args.dtype or "each backend's default", "machine": platform.platform(),
                 "cpu": cpu_model(), "cores": len(psutil.Process().cpu_affinity()), "native_bf16": native_bf16(), "date": time.strftime("%Y-%m-%d"),
                 "rows": []}

    def bench(reranker, name: str, evidence: bool = False, **settings) -> dict:
        for k, v in settings.items():
            setattr(reranker, k, v)
        if hasattr(reranker.backend, "llm") and reranker.backend.llm is not None:
            reranker.backend.llm.reset_prefix_cache()
            before = reranker.backend.stats()
        with PeakRSS() as mem:
            t0 = time.perf_counter()  # the evidence (retriever.explain) is part of a request's cost
            reqs = [reranker.request(split.history(t), c, t.now, t.user_id,
                                     evidence=retriever.explain(t.user_id, t.now, [x.item_id for x in c])
                                     if evidence else None) for t, c in zip(targets, cands)]
            ranked = []
            for i in range(0, len(reqs), args.batch):
                ranked += reranker.rerank_many(reqs[i:i + args.batch])
            seconds = time.perf_counter() - t0
        prompt_tokens = sum(c.prompt_tokens for r in ranked for c in r.calls)
        row = {"backend": reranker.backend.name, "dtype": reranker.backend.dtype, "strategy": name, "seconds": seconds,
               "users_per_s": len(reqs) / seconds, "prompt_tokens_per_s": prompt_tokens / seconds,
               "prompt_tokens_per_user": float(np.mean([r.prompt_tokens for r in ranked])),
               "llm_calls": sum(len(r.calls) for r in ranked), "peak_rss_mb": mem.peak_mb,
               "fell_back": int(sum(r.fell_back for r in ranked))}
        if hasattr(reranker.backend, "llm") and reranker.backend.llm is not None:
            after = reranker.backend.stats()
            q = after["prefix_cache_queries"] - before["prefix_cache_queries"]
            h = after["prefix_cache_hits"] - before["prefix_cache_hits"]
            row["prefix_cache_hit_rate"] = h / q if q else None
        print(json.dumps(row), flush=True)
        res["rows"].append(row)
        return row

    backends = args.backends.split(",")
    if "transformers" in backends:
        hf = Reranker(backend="transformers", catalog=ds.catalog, timezone=ds.interactions.timezone,
                      listwise_max_tokens=args.listwise_tokens, backend_options={"batch_size": args.batch, "dtype": args.dtype})
        bench(hf, "label_scoring", strategy="label_scoring", bootstrap=1)
        bench(hf, "listwise generation", strategy="listwise", bootstrap=1)
        del hf
        import gc

        from promptrec.serve.memory import HeapTrimmer

        gc.collect()  # the transformers rows' freed memory back to the OS, so the vLLM rows' peak RSS is vLLM's own
        HeapTrimmer(min_interval_s=0)()
    if "vllm" in backends:
        res["rss_mb_before_vllm"] = psutil.Process().memory_info().rss / 2**20
        vl = Reranker(backend="vllm", catalog=ds.catalog, timezone=ds.interactions.timezone,
                      listwise_max_tokens=args.listwise_tokens, backend_options={"kv_cache_gb": args.kv_cache_gb, "dtype": args.dtype})
        res["vllm_kv_cache_gb"] = vl.backend.kv_cache_bytes / 2**30 if vl.backend.kv_cache_bytes else None
        bench(vl, "label_scoring", strategy="label_scoring", bootstrap=1)
        bench(vl, "listwise generation", strategy="listwise", bootstrap=1)
        bench(vl, "label_scoring, bootstrap x3", strategy="label_scoring", bootstrap=3)
        bench(vl, "label_scoring + evidence", evidence=True, strategy="label_scoring", bootstrap=1)
        vl.close()
    args.out.mkdir(parents=True, exist_ok=True)
    kv_runs_path = args.out / "reranker_kv_runs.json"
    if set(backends) != {"transformers", "vllm"}:
        if backends == ["vllm"]:  # a settings comparison run (dtype, KV cache): recorded beside the results
            runs = json.loads(kv_runs_path.read_text()) if kv_runs_path.exists() else []
            runs.append({"command": res["command"], "date": res["date"], "kv_cache_gb": res["vllm_kv_cache_gb"],
                         "load_average_1m": os.getloadavg()[0], "rows": res["rows"]})
            kv_runs_path.write_text(json.dumps(runs, indent=2))
        return  # a partial run: rows printed above, nothing else written
    res["targets"] = targets_met(res)
    res["kv_runs"] = json.loads(kv_runs_path.read_text()) if kv_runs_path.exists() else []
    (args.out / "reranker_benchmark.json").write_text(json.dumps(res, indent=2))
    (args.out / "reranker_benchmark.md").write_text(markdown(res))
    print(markdown(res))


def run_setting(run: dict) -> str:
    """A vLLM-only run's setting: its dtype (runs before dtypes were recorded ran bfloat16) and KV-cache size."""
    dtype = next((row["dtype"] for row in run["rows"] if row.get("dtype")), "bfloat16")
    return f"{dtype}, KV {run['kv_cache_gb']:.2f} GB"


def kv_comparison(res: dict) -> list[str]:
    """Markdown: vLLM users/s and peak RSS per setting (dtype, KV-cache size), medians over the recorded vLLM-only
    runs."""
    runs = res.get("kv_runs") or []
    settings = sorted({run_setting(r) for r in runs})
    if len(settings) < 2:
        return []
    strategies = [r["strategy"] for r in runs[0]["rows"]]

    def median(setting: str, strategy: str, key: str) -> float:
        return float(np.median([row[key] for r in runs if run_setting(r) == setting
                                for row in r["rows"] if row["strategy"] == strategy]))

    count = {s: sum(run_setting(r) == s for r in runs) for s in settings}
    lines = ["## vLLM settings: dtype and KV-cache size", "",
             f"vLLM-only runs, alternated on the same machine ({len(runs)} runs, load average "
             f"{min(r['load_average_1m'] for r in runs):.1f} to {max(r['load_average_1m'] for r in runs):.1f} at "
             "their end); medians per setting. The 9.98 GB cache is what the backend reserved before it sized "
             "the cache to need (half the RAM available). Commands: `" + "`; `".join(sorted({r["command"] for r in runs}))
             + "`.", "",
             "| strategy | " + " | ".join(f"users/s, {s} ({count[s]} runs)" for s in settings) + " | "
             + " | ".join(f"peak RSS MB, {s}" for s in settings) + " |",
             "|---|" + "---|" * (2 * len(settings))]
    for strategy in strategies:
        speed = [f"{median(s, strategy, 'users_per_s'):.2f}" for s in settings]
        rss = [f"{median(s, strategy, 'peak_rss_mb'):.0f}" for s in settings]
        lines.append(f"| {strategy} | " + " | ".join(speed + rss) + " |")
    return lines + [""]


def targets_met(res: dict) -> list[str]:
    rows = {(r["backend"], r["strategy"]): r for r in res["rows"]}
    v_label = rows[("vllm", "label_scoring")]
    hf_gen = rows[("transformers", "listwise generation")]
    boot = rows[("vllm", "label_scoring, bootstrap x3")]
    speedup = v_label["users_per_s"] / hf_gen["users_per_s"]
    cost = v_label["users_per_s"] / boot["users_per_s"]
    per_cand = v_label["prompt_tokens_per_user"] / res["candidates"]
    ev = rows[("vllm", "label_scoring + evidence")]
    same_machine = ev["users_per_s"] / v_label["users_per_s"]
    return [
        f"label scoring with the retriever's evidence in the prompt (explain included): {ev['users_per_s']:.2f} "
        f"users/s, {ev['prompt_tokens_per_user']:.0f} prompt tokens/user "
        f"({'met' if ev['users_per_s'] >= 2.5 and ev['prompt_tokens_per_user'] <= 800 else 'NOT MET'}; "
        f"target >= 2.5 users/s, the rate measured before evidence on a CPU with native bf16, and <= 800 tokens)",
        f"evidence vs plain label scoring on this machine: {same_machine:.2f}x the plain rate "
        f"({'met' if same_machine >= 0.9 else 'NOT MET'}; target >= 0.9x: evidence must not slow reranking down)",
        f"vLLM label scoring {v_label['users_per_s']:.2f} users/s vs transformers listwise generate "
        f"{hf_gen['users_per_s']:.2f}: {speedup:.2f}x ({'met' if speedup >= 1.5 else 'NOT MET'}; target >= 1.5x)",
        f"bootstrap x3 costs {cost:.2f}x one pass, prefix-cache hit rate {boot.get('prefix_cache_hit_rate') or 0:.0%} "
        f"({'met' if cost <= 1.5 else 'NOT MET'}; target <= 1.5x)",
        f"prompt: {v_label['prompt_tokens_per_user']:.0f} tokens for 20 candidates ({per_cand:.1f} per candidate, "
        f"history included) ({'met' if v_label['prompt_tokens_per_user'] < 800 else 'NOT MET'}; target < 800)",
    ]


def markdown(res: dict) -> str:
    lines = ["# Reranker benchmark", "", f"Command: `{res['command']}` ({res['date']}, {res['machine']})", "",
             f"{res['users']} {res['dataset']} test users, retriever top {res['candidates']} as candidates, batches of "
             f"{res['batch']}, default model SmolLM2-135M-Instruct ({res.get('dtype', 'bfloat16')}).", "",
             f"CPU: {res.get('cpu', 'not recorded')}, {res.get('cores', '?')} cores, native bf16: "
             f"{res.get('native_bf16', 'not recorded')}.", "",
             "| backend | dtype | strategy | users/s | prompt tokens/s | prompt tokens/user | LLM calls | peak RSS MB | prefix-cache hits | parse fell back |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        hit = r.get("prefix_cache_hit_rate")
        lines.append(f"| {r['backend']} | {r.get('dtype', res.get('dtype', 'bfloat16'))} | {r['strategy']} | {r['users_per_s']:.2f} | {r['prompt_tokens_per_s']:.0f} | "
                     f"{r['prompt_tokens_per_user']:.0f} | {r['llm_calls']} | {r['peak_rss_mb']:.0f} | "
                     f"{'-' if hit is None else f'{hit:.0%}'} | {r['fell_back']} |")
    lines += ["", "## Targets", ""] + [f"- {t}" for t in res["targets"]] + [""]
    lines += [f"Peak RSS includes vLLM's preallocated KV cache ({res.get('vllm_kv_cache_gb') or 0:.2f} GB: "
              "max_num_seqs x max_model_len tokens unless --kv-cache-gb sets it); the process held "
              f"{res.get('rss_mb_before_vllm') or 0:.0f} MB before vLLM started.", ""]
    lines += kv_comparison(res)
    lines += [res["note"], ""] if res.get("note") else []
    return "\n".join(lines)


if __name__ == "__main__":
    main()
