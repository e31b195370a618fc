"""Item-index benchmark: embedding throughput, and FAISS index types against NumPy brute force.

    python eval/benchmarks/bench_index.py [--sizes 100000 1000000] [--queries 1000] [--out eval/results]

Writes ``index_benchmark.json`` and ``index_benchmark.md`` with the command that made them.

Vectors: "clustered" sets are drawn like real embeddings (a mixture of 2,000 Gaussian
clusters in 384 dimensions, normalised); queries come from the same distribution but are
not in the index. A uniform-random set (no structure at all, the hardest case for any
approximate index) is reported at the smallest size for comparison.
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
import psutil

DIM = 384
K = 10


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def clustered(n: int, rng: np.random.Generator, centers: np.ndarray, noise: float = 0.6) -> np.ndarray:
    """Unit-norm cluster centres plus noise of norm ~``noise``: same-cluster cosine ~0.74, like close neighbours
    in real sentence embeddings, other clusters ~0."""
    x = centers[rng.integers(0, len(centers), n)] + noise * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_topk(base: np.ndarray, q: np.ndarray, k: int = K) -> np.ndarray:
    scores = q @ base.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, 1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, 1)


def latencies(fn, queries: np.ndarray, n: int) -> dict:
    times = []
    for q in queries[:n]:
        t = time.perf_counter()
        fn(q[None, :])
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def throughput(fn, queries: np.ndarray) -> float:
    t = time.perf_counter()
    fn(queries)
    return len(queries) / (time.perf_counter() - t)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)]))


def bench_vectors(name: str, base: np.ndarray, queries: np.ndarray, single_n: int) -> dict:
    import faiss

    from promptrec.index.faiss_backend import IndexSpec, new_index

    n = len(base)
    out: dict = {"set": name, "n": n, "dim": DIM, "queries": len(queries), "methods": {}}
    print(f"[{name} n={n:,}] numpy brute force", flush=True)
    np_single = latencies(lambda q: numpy_topk(base, q), queries, min(single_n, 200))
    t = time.perf_counter()
    truth = np.concatenate([numpy_topk(base, queries[i:i + 100]) for i in range(0, len(queries), 100)])
    np_batch = len(queries) / (time.perf_counter() - t)
    out["methods"]["numpy"] = {"recall@10": 1.0, "single": np_single, "batch_qps": np_batch, "build_s": 0.0,
                               "memory_mb": base.nbytes / 2**20}
    fids = np.arange(n, dtype=np.int64)
    configs = [("flat", {}, {})]
    configs.append(("hnsw", {"M": 32, "ef_construction": 80, "ef_search": 64}, {"ef_search": [16, 32, 64, 128, 256]}))
    nlist = int(4 * np.sqrt(n))
    configs.append(("ivfpq", {"nlist": nlist, "m": 48, "nbits": 8, "nprobe": 16}, {"nprobe": [8, 16, 32, 64]}))
    for kind, params, sweep in configs:
        print(f"[{name} n={n:,}] {kind} build", flush=True)
        spec = IndexSpec(kind, params).resolved(n, DIM)
        mem0 = rss_mb()
        t = time.perf_counter()
        train = base[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)] if kind == "ivfpq" else None
        index = new_index(spec, DIM, train)
        index.add_with_ids(base, fids)
        build_s = time.perf_counter() - t
        size_mb = faiss.serialize_index(index).nbytes / 2**20
        base_index = faiss.downcast_index(index.index)
        points = []
        for key, values in (sweep or {"-": [None]}).items():
            for v in values:
                if key == "ef_search":
                    base_index.hnsw.efSearch = v
                elif key == "nprobe":
                    base_index.nprobe = v
                _, found = index.search(queries, K)
                points.append({key: v, "recall@10": recall(found, truth),
                               "single": latencies(lambda q: index.search(q, K), queries, single_n),
                               "batch_qps": throughput(lambda q: index.search(q, K), queries)})
        if kind == "ivfpq":  # promptrec's own search path: PQ candidates re-ranked exactly (refine)
            item_index = as_item_index(index, spec, base)
            for v in sweep["nprobe"]:
                base_index.nprobe = v
                found = item_index.search_vectors(queries, K)[0].astype(np.int64)
                points.append({"nprobe": v, "refine": spec.params["refine"], "recall@10": recall(found, truth),
                               "single": latencies(lambda q: item_index.search_vectors(q, K), queries, single_n),
                               "batch_qps": throughput(lambda q: item_index.search_vectors(q, K), queries)})
        out["methods"][kind] = {"params": spec.params, "build_s": build_s, "index_mb": size_mb,
                                "rss_growth_mb": rss_mb() - mem0, "sweep": points}
        del index
    return out


def as_item_index(index, spec, base: np.ndarray):
    """Wrap a built FAISS index in promptrec's ItemIndex (item ids are the row numbers as strings)."""
    import pandas as pd

    from promptrec.index.item_index import ItemIndex

    n = len(base)
    manifest = {"name": "bench", "index_type": spec.index_type, "index_params": spec.params, "dimension": DIM,
                "embedding_model": "random", "item_count": n, "next_id": n}
    table = pd.DataFrame({"item_id": np.arange(n).astype(str), "fid": np.arange(n), "text_hash": "", "title": ""})
    return ItemIndex(Path("/tmp/bench-index"), manifest, table, base, index)


def bench_embedding(texts: list[str]) -> dict:
    """The default embedder (its default backend) per thread count and batch size; backends against each other,
    with recall and load averages: bench_embedding.py."""
    from promptrec.index.embedder import Embedder

    results = []
    for threads in (1, 2):
        emb = Embedder(threads=threads)  # the thread count is the embedder's (ONNX Runtime fixes it per session)
        emb.encode(texts[:64])  # warm up
        for batch in (32, 64, 128, 256):
            emb.batch_size = batch
            load = os.getloadavg()[0]
            t = time.perf_counter()
            emb.encode(texts, progress=False)
            results.append({"threads": threads, "batch_size": batch, "backend": emb.backend, "load1": load,
                            "items_per_s": len(texts) / (time.perf_counter() - t)})
            print(f"embedding {emb.backend} threads={threads} batch={batch}: {results[-1]['items_per_s']:.0f} items/s "
                  f"(load {load:.2f})", flush=True)
    return {"model": emb.name, "backend": emb.backend, "texts": len(texts),
            "mean_chars": float(np.mean([len(t) for t in texts])),
            "runs": results, "best": max(results, key=lambda r: r["items_per_s"])}


def item_texts(ml100k: Path | None) -> tuple[str, list[str]]:
    from promptrec.data.demo import generate_demo
    from promptrec.data.loaders import load_dataset
    from promptrec.index.item_text import ItemTextRenderer

    renderer = ItemTextRenderer()
    if ml100k and (ml100k / "u.item").exists():
        return "MovieLens 100K items (title + genres)", list(renderer.render_catalog(load_dataset(ml100k).catalog).values())
    return "demo items (title + genres + description), x5", list(renderer.render_catalog(generate_demo().dataset.catalog).values()) * 5


def markdown(res: dict) -> str:
    lines = ["# Item index benchmark", "", f"Command: `{res['command']}`", "",
             f"Machine: {res['machine']['cpus']} CPUs, {res['machine']['platform']}, faiss {res['machine']['faiss']}, "
             f"run {res['machine']['date']}.", ""]
    e = res.get("embedding")
    lines += [] if e is None else [f"## Embedding ({e['model']}, {e['texts']:,} texts of {e['mean_chars']:.0f} chars: {e['source']})", "",
              "| backend | threads | batch | items/s | load |", "|---|---|---|---|---|"]
    if e is not None:
        lines += [f"| {r.get('backend', 'torch')} | {r['threads']} | {r['batch_size']} | {r['items_per_s']:.0f} | "
                  f"{r['load1']:.2f} |" if "load1" in r else
                  f"| {r.get('backend', 'torch')} | {r['threads']} | {r['batch_size']} | {r['items_per_s']:.0f} | - |"
                  for r in e["runs"]]
        b = e["best"]
        lines += ["", f"Best: {b['items_per_s']:.0f} items/s with {b['threads']} threads, batch {b['batch_size']} "
                      "(the Embedder's default batch size is 64). Backends, recall and load averages: "
                      "embedding_benchmark.md (bench_embedding.py).", ""]
    for v in res["vectors"]:
        np_single = v["methods"]["numpy"]["single"]["p50_ms"]
        lines += [f"## {v['set']} vectors: {v['n']:,} x {v['dim']}, {v['queries']:,} queries, top-{K}", "",
                  "| method | setting | recall@10 | single p50 ms | single p99 ms | speed-up vs NumPy (p50) | batch q/s | build s | size MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        m = v["methods"]["numpy"]
        lines.append(f"| NumPy brute force | - | 1.000 | {np_single:.2f} | {m['single']['p99_ms']:.2f} | 1x | "
                     f"{m['batch_qps']:.0f} | - | {m['memory_mb']:.0f} |")
        for kind in ("flat", "hnsw", "ivfpq"):
            m = v["methods"][kind]
            for p in m["sweep"]:
                setting = ", ".join(f"{k}={val}" for k, val in p.items() if k not in ("recall@10", "single", "batch_qps") and val is not None) or "exact"
                who = "ItemIndex ivfpq + exact re-rank" if "refine" in p else f"FAISS {kind}"
                lines.append(f"| {who} | {setting} | {p['recall@10']:.3f} | {p['single']['p50_ms']:.3f} | "
                             f"{p['single']['p99_ms']:.3f} | {np_single / p['single']['p50_ms']:.0f}x | {p['batch_qps']:.0f} | "
                             f"{m['build_s']:.1f} | {m['index_mb']:.0f} |")
        lines.append("")
    if res.get("targets"):
        lines += ["## Targets", ""] + [f"- {t}" for t in res["targets"]] + [""]
    return "\n".join(lines)


def check_targets(res: dict) -> list[str]:
    out = []
    for v in res["vectors"]:
        if v["n"] < 1_000_000 or not v["set"].startswith("clustered"):
            continue
        np_p50 = v["methods"]["numpy"]["single"]["p50_ms"]
        ok = [p for p in v["methods"]["hnsw"]["sweep"] if p["recall@10"] >= 0.95]
        if not ok:
            out.append(f"HNSW at {v['n']:,}: no setting reached recall@10 0.95 - NOT MET")
            continue
        best = min(ok, key=lambda p: p["single"]["p50_ms"])
        p50 = best["single"]["p50_ms"]
        verdict = "met" if p50 < 1.0 and np_p50 / p50 >= 50 else "NOT MET"
        out.append(f"HNSW at {v['n']:,} (ef_search={best['ef_search']}): recall@10 {best['recall@10']:.3f}, "
                   f"p50 {p50:.3f} ms, {np_p50 / p50:.0f}x NumPy - {verdict} (target: >= 0.95, < 1 ms, >= 50x)")
    return out


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=500, help="queries timed one at a time")
    ap.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-100k")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    ap.add_argument("--skip-embedding", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    res: dict = {"command": "python " + " ".join(sys.argv),
                 "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "faiss": faiss.__version__,
                             "date": time.strftime("%Y-%m-%d")}}
    if not args.skip_embedding:
        source, texts = item_texts(args.ml100k)
        res["embedding"] = {**bench_embedding(texts), "source": source}
    centers = rng.standard_normal((2000, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    res["vectors"] = []
    for i, n in enumerate(sorted(args.sizes)):
        data = clustered(n + args.queries, rng, centers)
        res["vectors"].append(bench_vectors("clustered", data[: n], data[n:], args.single))
        del data
        if i == 0:
            u = uniform(n + args.queries, rng)
            res["vectors"].append(bench_vectors("uniform", u[:n], u[n:], args.single))
            del u
    res["targets"] = check_targets(res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_benchmark.json").write_text(json.dumps(res, indent=2))
    (args.out / "index_benchmark.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
