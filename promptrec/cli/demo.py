"""`promptrec demo`: the end-to-end path that exists so far, on the embedded demo data.

demo data -> leave-last-out split -> item index -> candidates for a test user at its `now`
-> the prompt the LLM reranker will see.
"""

from __future__ import annotations

import numpy as np
import typer
from rich.table import Table

from promptrec.cli.common import console, kv_table


def demo(
    user: str = typer.Option(None, help="Demo user to show (default: the first test user)."),
    seed: int = typer.Option(7, help="Demo data seed."),
    root: str = typer.Option("indexes", help="Where the demo index is kept."),
    show_prompt: bool = typer.Option(True, help="Print the full prompt."),
) -> None:
    from promptrec.data.demo import generate_demo
    from promptrec.data.splits import leave_last_out
    from promptrec.index.item_index import ItemIndex
    from promptrec.models import load_tokenizer, prepare_default_model
    from promptrec.prompt.builder import PromptBuilder

    with console.status("generating demo data"):
        ds = generate_demo(seed=seed).dataset
    d = ds.describe()
    console.print(kv_table("1. demo data", {k: d[k] for k in ("users", "items", "events", "time_range")}))
    split = leave_last_out(ds.interactions)
    console.print(kv_table("2. leave-last-out split", split.describe()))
    target = next((t for t in split.test if t.user_id == user), None) if user else split.test[0]
    if target is None:
        console.print(f"[bold red]error:[/] user '{user}' has no test event; try u0000.")
        raise typer.Exit(1)
    history = split.history(target)
    tz = ds.interactions.timezone

    with console.status("3. building the item index (sentence-transformers + FAISS)"):
        index = ItemIndex.build(ds.catalog, "demo", root=root)
    console.print(f"3. item index: {len(index)} items, {index.manifest['index_type']}, {index.dimension}-d, "
                  f"saved to {index.path}")

    table = Table(title=f"4. user {target.user_id}: last events before {target.now.tz_convert(tz):%a %Y-%m-%d %H:%M %Z}")
    for col in ("when (local)", "item", "title", "category", "device"):
        table.add_column(col)
    for row in history.tail(6).itertuples():
        item = ds.catalog[row.item_id]
        table.add_row(f"{row.timestamp.tz_convert(tz):%a %m-%d %H:%M}", row.item_id, item.title,
                      ", ".join(item.categories), str(row.device))
    console.print(table)

    # candidates by content: the recency-weighted profile of the last items (the time-aware retriever replaces this)
    recent = history["item_id"].tolist()[-10:]
    weights = 0.5 ** (np.arange(len(recent))[::-1] / 3)
    profile = (index.vectors(recent) * weights[:, None]).sum(axis=0)
    seen = set(history["item_id"])
    hits = [h for h in index.search(profile / np.linalg.norm(profile), k=20 + len(seen)) if h.item_id not in seen][:20]
    truth = ds.catalog[target.item_id]
    rank = next((r for r, h in enumerate(hits, 1) if h.item_id == target.item_id), None)
    console.print(f"5. 20 content candidates from the user's recent history; the held-out next item "
                  f"[bold]{truth.title}[/] ({', '.join(truth.categories)}) is "
                  + (f"candidate #{rank}" if rank else "not among them"))

    with console.status("6. preparing the default LLM's tokenizer (SmolLM2-135M-Instruct, once)"):
        prepare_default_model()
        builder = PromptBuilder(tokenizer=load_tokenizer(), timezone=tz)
    prompt = builder.build("label_scoring", history, [ds.catalog[h.item_id] for h in hits], target.now, ds.catalog)
    if show_prompt:
        console.rule("6. the prompt the LLM reranker sees")
        console.print(prompt.text, markup=False, highlight=False, soft_wrap=True)
        console.rule()
    console.print(f"6. prompt: {prompt.token_count} tokens, {prompt.history_shown} history events shown, "
                  f"{prompt.history_summarized} summarised, {len(prompt.candidate_ids)} candidates labelled "
                  f"{prompt.labels[0]}-{prompt.labels[-1]}")
