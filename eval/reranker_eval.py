"""Reranking quality on MovieLens 100K: retriever top 20 -> LLM (zero-shot) -> optional fusion.

    python eval/reranker_eval.py --data ../shared/data/ml-100k --users 300 --out eval/results/reranker_ml100k

Protocol: leave-last-out (same-second ties at random, seed 0; history strictly before `now`).
The tuned time-aware retriever proposes 20 candidates among all unseen items; the true item
counts as a miss when it is not among them. Compared on the same candidates: the retriever's
order, the LLM alone (label scoring, with and without 3-shuffle bootstrapping) and the fusion
of both, whose weight is tuned on validation users (a separate seeded sample). 95% intervals
from 1,000 bootstrap resamples of the test users.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def ranks_of(orders: list[list[str]], truths: list[str]) -> np.ndarray:
    return np.array([o.index(t) if t in o else 10**6 for o, t in zip(orders, truths)])


def main() -> None:
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import leave_last_out
    from promptrec.eval.metrics import hit_rate, mrr, ndcg
    from promptrec.index.item_index import ItemIndex, ItemIndexError
    from promptrec.reranker.reranker import Reranker, fuse
    from promptrec.retriever.retriever import TimeAwareRetriever

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--users", type=int, default=300, help="test users sampled (seeded); as many validation users")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--index-root", default="indexes")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    ds = load_dataset(args.data)
    split = leave_last_out(ds.interactions)
    try:
        index = ItemIndex.load(ds.name, root=args.index_root)
    except ItemIndexError:
        index = ItemIndex.build(ds.catalog, ds.name, root=args.index_root)
    retriever = TimeAwareRetriever().fit(split.train, ds.catalog, index, log=split.full)
    retriever.tune(split.validation)
    pick = lambda targets: [targets[i] for i in sorted(rng.choice(len(targets), min(args.users, len(targets)), replace=False))]
    test, valid = pick(split.test), pick(split.validation)
    reranker = Reranker(backend=args.backend, catalog=ds.catalog, timezone=ds.interactions.timezone)

    def run(targets, bootstrap: int):
        cands = retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=20)
        reranker.bootstrap = bootstrap
        reqs = [reranker.request(split.history(t), c, t.now, t.user_id) for t, c in zip(targets, cands)]
        out = []
        for i in range(0, len(reqs), 32):
            out += reranker.rerank_many(reqs[i:i + 32])
            print(f"  {len(out)}/{len(reqs)} users (bootstrap {bootstrap})", flush=True)
        return cands, out

    started = time.perf_counter()
    results: dict = {}
    truths = [t.item_id for t in test]
    for bootstrap in (1, 3):
        v_cands, v_ranked = run(valid, bootstrap)
        t_cands, t_ranked = run(test, bootstrap)
        # fusion weight tuned on validation users
        grid = np.round(np.linspace(0, 1, 11), 2)

        def fused_orders(cands, ranked, a):
            orders = []
            for c, r in zip(cands, ranked):
                ids = [x.item_id for x in c]
                llm = {i.item_id: i.llm_score for i in r.items}
                f = fuse(np.array([llm[i] for i in ids]), np.array([x.score for x in c]), a)
                orders.append([ids[j] for j in np.lexsort((np.arange(len(f)), -f))])
            return orders

        curve = {float(a): ndcg(ranks_of(fused_orders(v_cands, v_ranked, a), [t.item_id for t in valid]), 10) for a in grid}
        best = max(curve, key=lambda a: (curve[a], a))
        tag = "" if bootstrap == 1 else ", bootstrap x3"
        results[f"LLM alone (zero-shot{tag})"] = ranks_of([r.item_ids for r in t_ranked], truths)
        results[f"fusion{tag} (weight {best:g} tuned on validation)"] = ranks_of(fused_orders(t_cands, t_ranked, best), truths)
        results[f"_curve{tag}"] = curve
        if bootstrap == 1:
            results["retriever order (tuned blend)"] = ranks_of([[c.item_id for c in cs] for cs in t_cands], truths)
    curves = {k: v for k, v in results.items() if k.startswith("_curve")}
    rows = []
    for name, ranks in results.items():
        if name.startswith("_"):
            continue
        idx = rng.integers(0, len(ranks), (1000, len(ranks)))
        boot = np.array([ndcg(ranks[i], 10) for i in idx])
        rows.append({"name": name, "HR@1": hit_rate(ranks, 1), "HR@5": hit_rate(ranks, 5), "HR@10": hit_rate(ranks, 10),
                     "NDCG@10": ndcg(ranks, 10), "NDCG@10_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                     "MRR@20": mrr(ranks, 20), "HR@20 (candidate recall)": hit_rate(ranks, 20)})
    order = ["retriever order (tuned blend)"]
    rows.sort(key=lambda r: (r["name"] not in order, r["name"]))
    res = {"command": "python " + " ".join(sys.argv), "dataset": ds.name, "test_users": len(test),
           "validation_users": len(valid), "backend": args.backend, "model": reranker.model, "rows": rows,
           "fusion_curves_validation_ndcg@10": curves, "seconds": time.perf_counter() - started,
           "machine": platform.platform(), "date": time.strftime("%Y-%m-%d")}
    reranker.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    md = ["# Reranking on " + ds.name, "", f"Command: `{res['command']}` ({res['date']}, {res['machine']})", "",
          f"{len(test)} test users (and {len(valid)} validation users for the fusion weight), sampled with seed 0; "
          f"retriever top 20 as candidates; {args.backend} with {reranker.model}, label scoring. The true item counts "
          "as a miss when the retriever did not propose it.", "",
          "| ranking of the 20 candidates | HR@1 | HR@5 | HR@10 | NDCG@10 [95% CI] | MRR@20 |", "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["NDCG@10_ci95"]
        md.append(f"| {r['name']} | {r['HR@1']:.3f} | {r['HR@5']:.3f} | {r['HR@10']:.3f} | {r['NDCG@10']:.4f} "
                  f"[{lo:.3f}, {hi:.3f}] | {r['MRR@20']:.4f} |")
    md += ["", f"Candidate recall (true item among the 20): {rows[0]['HR@20 (candidate recall)']:.3f}.", ""]
    (args.out / "results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
