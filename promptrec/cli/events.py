"""`promptrec events quarantine`: the stored events a server set aside because they cannot be applied."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from promptrec.cli.common import console, user_errors

app = typer.Typer(help="Inspect a serving event store.", no_args_is_help=True)
DB_HELP = "The event store: a SQLite file or a postgresql://user@host:port/db URL (as given to `promptrec serve --db`)."


@app.command()
def quarantine(db: str = typer.Option("promptrec-serve/events.sqlite", help=DB_HELP),
               as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table.")) -> None:
    """List quarantined events: each stored row a server could not apply, with the reason. They are kept, not
    deleted; fix the cause (or the row) and they can be posted again."""
    from promptrec.serve.stores import open_event_store

    with user_errors():
        store = open_event_store(db)
        try:
            frame = store.quarantined()
        finally:
            store.close()
    if as_json:
        for row in frame.to_dict("records"):
            typer.echo(json.dumps({k: str(v) if k == "quarantined_at" else v for k, v in row.items()}, default=str))
        return
    table = Table(title=f"{len(frame)} quarantined event(s) in {store.path}")
    for col in ("seq", "reason", "quarantined at", "user_id", "item_id", "context"):
        table.add_column(col, overflow="fold")
    for r in frame.to_dict("records"):
        table.add_row(str(r["seq"]), r["reason"], str(r["quarantined_at"]), repr(r["user_id"]), repr(r["item_id"]),
                      str(r["context"])[:200])
    console.print(table)
