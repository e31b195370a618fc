"""`promptrec demo`: the end-to-end path that exists so far, on the embedded demo data."""

from __future__ import annotations

import typer
from rich.table import Table

from promptrec.cli.common import console, kv_table


def demo(
    user: str = typer.Option(None, help="Demo user to show (default: the first test user)."),
    seed: int = typer.Option(7, help="Demo data seed."),
) -> None:
    from promptrec.data.demo import generate_demo
    from promptrec.data.splits import leave_last_out

    with console.status("generating demo data"):
        ds = generate_demo(seed=seed).dataset
    d = ds.describe()
    console.print(kv_table("demo data", {k: d[k] for k in ("users", "items", "events", "time_range")}))
    split = leave_last_out(ds.interactions)
    console.print(kv_table("leave-last-out split", split.describe()))
    target = next((t for t in split.test if t.user_id == user), split.test[0]) if user else split.test[0]
    history = split.history(target)
    tz = ds.interactions.timezone
    table = Table(title=f"user {target.user_id}: last events before {target.now.tz_convert(tz):%a %Y-%m-%d %H:%M %Z}")
    for col in ("when (local)", "item", "title", "category", "device"):
        table.add_column(col)
    for row in history.tail(8).itertuples():
        item = ds.catalog[row.item_id]
        table.add_row(f"{row.timestamp.tz_convert(tz):%a %m-%d %H:%M}", row.item_id, item.title,
                      ", ".join(item.categories), str(row.device))
    console.print(table)
    truth = ds.catalog[target.item_id]
    console.print(f"held-out next item: [bold]{truth.title}[/] ({', '.join(truth.categories)})")
