"""Embedding throughput of the item index's text model per backend, thread count and text length, and how far
each backend's vectors are from sentence-transformers' float32 ones.

    python eval/benchmarks/bench_embedding.py [--n 1000] [--rounds 2] [--out eval/results]

Texts: MovieLens 100K items as the item index renders them (title + genres, ~39 characters; the demo catalogue
where MovieLens is absent) and synthetic place descriptions of 100-300 characters (``places``). Variants run in
alternation (A B C ... C B A per round), each timed with the 1-minute load average at its start: on shared cores
wall-clock items/s depends on the other jobs; items per CPU-second (the process's CPU time) does much less.
Quality: cosine of each vector to its float32 twin and recall@10 of item-to-item neighbours (exact inner product)
against the float32 vectors, on all texts of each set.

Writes ``embedding_benchmark.json`` and ``embedding_benchmark.md`` with the command and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ADJ = ["cosy", "busy", "quiet", "family-run", "modern", "old", "bright", "small", "spacious", "friendly"]
HOOD = ["Midtown", "the East Village", "Williamsburg", "Astoria", "Harlem", "SoHo", "Chelsea", "Park Slope"]
FEAT = ["outdoor seating", "free wifi", "late opening hours", "a rooftop terrace", "live music on weekends",
        "vegan options", "a loyalty card", "wheelchair access", "a kids' corner", "parking nearby",
        "student discounts", "seasonal specials", "a large selection of local products",
        "friendly staff who know the regulars", "quick service at lunch time"]


def place_texts(n: int, seed: int = 0) -> list[str]:
    """Places of the catalogue-scale benchmark's kinds with a description: 100-300 characters."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_catalog_scale import KINDS

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = KINDS[rng.integers(len(KINDS))]
        s = f"{k}. {k} {i}. A {ADJ[rng.integers(len(ADJ))]} {k.lower()} in {HOOD[rng.integers(len(HOOD))]}"
        target = 200 * rng.uniform(0.5, 1.5)
        while len(s) < target:
            s += f", with {FEAT[rng.integers(len(FEAT))]}"
        out.append(s[:299] + ".")
    return out


def movielens_texts(ml100k: Path) -> tuple[str, list[str]]:
    from promptrec.index.item_text import ItemTextRenderer

    renderer = ItemTextRenderer()
    if (ml100k / "u.item").exists():
        from promptrec.data.loaders import load_dataset

        return "MovieLens 100K items (title + genres)", list(renderer.render_catalog(load_dataset(ml100k).catalog).values())
    from promptrec.data.demo import generate_demo

    return "demo items (title + genres + description)", list(renderer.render_catalog(generate_demo().dataset.catalog).values())


def neighbours(v: np.ndarray, k: int = 10) -> np.ndarray:
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def recall_at_10(ref: np.ndarray, v: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(neighbours(ref), neighbours(v))]))


def variants(threads_list: list[int]) -> dict:
    """name -> Embedder (torch float32 as before, onnx, bf16) at each thread count."""
    from promptrec.index.embedder import Embedder, onnx_available
    from promptrec.models import native_bf16

    out = {}
    for t in threads_list:
        out[f"torch t{t}"] = Embedder(backend="torch", threads=t)
        if onnx_available():
            out[f"onnx t{t}"] = Embedder(backend="onnx", threads=t)
        if native_bf16():
            out[f"bf16 t{t}"] = Embedder(backend="bf16", threads=t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="texts per set timed in each run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ml100k", type=Path, default=ROOT / ".." / "shared" / "data" / "ml-100k")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    args = ap.parse_args()

    import torch

    from promptrec.index.embedder import Embedder, auto_threads
    from promptrec.models import cpu_model

    ml_source, ml = movielens_texts(args.ml100k)
    sets = {"movielens": (ml_source, ml), "places": ("synthetic place descriptions", place_texts(2000))}
    reference = Embedder(backend="torch", threads=max(args.threads))
    embedders = variants(args.threads)
    for e in embedders.values():
        e.batch_size = args.batch_size
    default = Embedder()
    res: dict = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
                 "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
                             "torch": torch.__version__},
                 "model": default.name, "default_backend": default.backend, "batch_size": args.batch_size,
                 "sets": {}, "quality": [], "runs": []}
    print(f"default backend here: {default.backend}, auto threads now: {auto_threads()}", flush=True)
    # quality: every text of each set, each backend against sentence-transformers' float32 vectors
    for set_name, (source, texts) in sets.items():
        chars = [len(t) for t in texts]
        res["sets"][set_name] = {"source": source, "texts": len(texts), "mean_chars": float(np.mean(chars)),
                                 "min_chars": int(min(chars)), "max_chars": int(max(chars))}
        ref = reference.encode(texts, progress=False)
        for backend in dict.fromkeys(v.split()[0] for v in embedders):
            e = next(e for name, e in embedders.items() if name.startswith(backend + " "))
            v = e.encode(texts, progress=False)
            cos = (v * ref).sum(1)
            q = {"set": set_name, "backend": backend, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
                 "recall@10": recall_at_10(ref, v)}
            res["quality"].append(q)
            print(json.dumps(q), flush=True)
    # speed: the variants in alternation, the first n texts of each set
    names = list(embedders)
    for rnd in range(args.rounds):
        for set_name, (_, texts) in sets.items():
            sample = texts[:args.n]
            for name in (names if rnd % 2 == 0 else names[::-1]):
                load = os.getloadavg()
                cpu, wall = time.process_time(), time.perf_counter()
                embedders[name].encode(sample, progress=False)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                run = {"round": rnd, "set": set_name, "variant": name, "texts": len(sample),
                       "items_per_s": len(sample) / wall, "items_per_cpu_s": len(sample) / cpu, "load1": load[0]}
                res["runs"].append(run)
                print(json.dumps(run), flush=True)
    res["summary"] = summary(res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedding_benchmark.json").write_text(json.dumps(res, indent=2))
    (args.out / "embedding_benchmark.md").write_text(markdown(res))
    print(markdown(res))


def summary(res: dict) -> list[dict]:
    out = []
    for set_name in res["sets"]:
        for variant in dict.fromkeys(r["variant"] for r in res["runs"]):
            rs = [r for r in res["runs"] if r["set"] == set_name and r["variant"] == variant]
            out.append({"set": set_name, "variant": variant, "best_items_per_s": max(r["items_per_s"] for r in rs),
                        "median_items_per_s": float(np.median([r["items_per_s"] for r in rs])),
                        "best_items_per_cpu_s": max(r["items_per_cpu_s"] for r in rs),
                        "load1_mean": float(np.mean([r["load1"] for r in rs]))})
    return out


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Embedding benchmark", "", f"Command: `{res['command']}` ({res['date']}).", "",
             f"Machine: {m['cores']} cores, {m['cpu']}, {m['platform']}, torch {m['torch']}. Model {res['model']}, "
             f"batch size {res['batch_size']}; the default backend here: {res['default_backend']}.", "",
             "| set | texts | mean chars | range |", "|---|---|---|---|"]
    for name, s in res["sets"].items():
        lines.append(f"| {name} ({s['source']}) | {s['texts']:,} | {s['mean_chars']:.0f} | {s['min_chars']}-{s['max_chars']} |")
    lines += ["", "## Vectors against sentence-transformers float32 (all texts of each set)", "",
              "| set | backend | cosine min | cosine mean | recall@10 of item neighbours |", "|---|---|---|---|---|"]
    for q in res["quality"]:
        lines.append(f"| {q['set']} | {q['backend']} | {q['cosine_min']:.6f} | {q['cosine_mean']:.6f} | {q['recall@10']:.4f} |")
    lines += ["", "## Throughput (variants in alternation; load = 1-minute load average at the start of each run)", "",
              "| set | variant | best items/s | median items/s | best items per CPU-second | mean load |",
              "|---|---|---|---|---|---|"]
    for s in res["summary"]:
        lines.append(f"| {s['set']} | {s['variant']} | {s['best_items_per_s']:.0f} | {s['median_items_per_s']:.0f} | "
                     f"{s['best_items_per_cpu_s']:.0f} | {s['load1_mean']:.1f} |")
    lines += ["", "## Every run", "", "| round | set | variant | items/s | items per CPU-second | load |",
              "|---|---|---|---|---|---|"]
    for r in res["runs"]:
        lines.append(f"| {r['round']} | {r['set']} | {r['variant']} | {r['items_per_s']:.0f} | "
                     f"{r['items_per_cpu_s']:.0f} | {r['load1']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
