"""`promptrec demo`: the whole path on the embedded demo data.

demo data -> leave-last-out split -> item index -> time-aware retriever (tuned on validation)
-> candidates for a test user at its `now` -> the prompt -> the LLM reranker (vLLM) -> result.
"""

from __future__ import annotations

import typer
from rich.table import Table

from promptrec.cli.common import console, kv_table


def demo(
    user: str = typer.Option(None, help="Demo user to show (default: the first test user)."),
    seed: int = typer.Option(7, help="Demo data seed."),
    root: str = typer.Option("indexes", help="Where the demo index is kept."),
    backend: str = typer.Option("vllm", help="LLM backend: vllm (in-process) or transformers."),
    candidates: int = typer.Option(20, help="Candidates the LLM reranks."),
    show_prompt: bool = typer.Option(False, help="Print the full prompt the LLM sees."),
) -> None:
    from promptrec.data.demo import generate_demo
    from promptrec.data.splits import leave_last_out
    from promptrec.index.item_index import ItemIndex
    from promptrec.models import prepare_default_model
    from promptrec.reranker.reranker import Reranker
    from promptrec.retriever.fitting import fit_retriever

    with console.status("1. generating demo data"):
        ds = generate_demo(seed=seed).dataset
    d = ds.describe()
    console.print(kv_table("1. demo data (planted time effects)", {k: d[k] for k in ("users", "items", "events", "time_range")}))
    split = leave_last_out(ds.interactions)
    console.print(f"2. leave-last-out split: {len(split.train):,} training events, {len(split.validation)} validation "
                  f"and {len(split.test)} test targets")
    target = next((t for t in split.test if t.user_id == user), None) if user else split.test[0]
    if target is None:
        console.print(f"[bold red]error:[/] user '{user}' has no test event; try u0000.")
        raise typer.Exit(1)
    tz = ds.interactions.timezone

    with console.status("3. building the item index (sentence-transformers + FAISS)"):
        index = ItemIndex.build(ds.catalog, "demo", root=root)
    console.print(f"3. item index: {len(index)} items, {index.manifest['index_type']}, {index.dimension}-d, at {index.path}")

    with console.status("4. fitting the time-aware retriever and tuning its blend on validation targets"):
        retriever = fit_retriever(ds, split, index=index)
        tuning = retriever.tuning
    blend = ("learned blend (LightGBM)" if retriever.ranker is not None else
             "linear weights " + ", ".join(f"{k} {v:g}" for k, v in retriever.weights.items()))
    console.print(f"4. retriever blend (tuned on validation): {blend}; validation NDCG@10 "
                  f"{tuning['objective_start']:.3f} (equal weights) -> {tuning['objective_end']:.3f}")

    history = split.history(target)
    table = Table(title=f"5. user {target.user_id}: last events before {target.now.tz_convert(tz):%a %Y-%m-%d %H:%M %Z}")
    for col in ("when (local)", "title", "category", "device"):
        table.add_column(col)
    for row in history.tail(5).itertuples():
        item = ds.catalog[row.item_id]
        table.add_row(f"{row.timestamp.tz_convert(tz):%a %m-%d %H:%M}", item.title, ", ".join(item.categories),
                      str(row.device))
    console.print(table)
    cands = retriever.retrieve(target.user_id, target.now, k=candidates)

    with console.status(f"6. starting the LLM (SmolLM2-135M-Instruct on {backend}); the first run converts it"):
        prepare_default_model()
        reranker = Reranker(backend=backend, catalog=ds.catalog, timezone=tz, max_candidates=max(20, candidates),
                            backend_options={"gpu_memory_utilization": 0.3} if backend == "vllm" else None)
    with console.status("7. reranking with label scoring"):
        ranked = reranker.rerank(history, cands, now=target.now,
                                 evidence=retriever.explain(target.user_id, target.now, [c.item_id for c in cands]))
    if show_prompt:
        console.rule("the prompt")
        console.print(ranked.calls[0].prompt, markup=False, highlight=False, soft_wrap=True)
        console.rule()
    retr_rank = {c.item_id: c.rank for c in cands}
    result = Table(title=f"7. reranked by the LLM ({ranked.strategy} on {ranked.backend}, prompt "
                         f"{ranked.prompt_tokens} tokens)")
    for col in ("#", "title", "LLM log-prob", "retriever rank", "retrieved for"):
        result.add_column(col)
    by_id = {c.item_id: c for c in cands}
    for it in ranked.items[:10]:
        item, c = ds.catalog[it.item_id], by_id[it.item_id]
        reason = max(c.components, key=c.components.get)
        mark = " <- held out" if it.item_id == target.item_id else ""
        result.add_row(str(it.rank), f"{item.title} [{', '.join(item.categories)}]{mark}", f"{it.llm_score:.2f}",
                       str(retr_rank[it.item_id]), reason)
    console.print(result)
    truth = ds.catalog[target.item_id]
    llm_rank = next((i.rank for i in ranked.items if i.item_id == target.item_id), None)
    where = (f"retriever rank {retr_rank[target.item_id]}, LLM rank {llm_rank}" if llm_rank else
             f"not among the {len(cands)} candidates")
    console.print(f"held-out next item: [bold]{truth.title}[/] ({', '.join(truth.categories)}): {where}")
    reranker.close()
