"""`promptrec keys`: API keys for `promptrec serve` (the token is shown once; the file keeps its digest)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promptrec.cli.common import console, user_errors

app = typer.Typer(help="API keys for promptrec serve.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Option(..., help="A name for the key (shown in logs and error messages)."),
    file: Path = typer.Option(Path("promptrec-serve/keys.json"), help="Key file to add it to (created, mode 0600)."),
    scope: Optional[list[str]] = typer.Option(None, help="events:write, recommendations:read and/or admin (reload and "
                                                         "roll back models); default: the first two."),
    rate_limit: Optional[float] = typer.Option(None, help="Requests per second for this key (default: the server's)."),
) -> None:
    """Create a key, store its SHA-256 digest in FILE, and print the token (only this once)."""
    from promptrec.serve.auth import DEFAULT_SCOPES, add_key

    with user_errors():
        token = add_key(file, name, tuple(scope) if scope else DEFAULT_SCOPES, rate_limit)
    console.print(f"key '{name}' added to {file}; its token (shown only now, keep it secret):", style="bold")
    typer.echo(token)


@app.command("list")
def list_keys(file: Path = typer.Option(Path("promptrec-serve/keys.json"), help="Key file.")) -> None:
    """The keys in FILE: name, scopes, rate limit (tokens are not stored, so not shown)."""
    from promptrec.serve.auth import read_key_file

    with user_errors():
        for key in read_key_file(file):
            rate = f"{key.rate_per_s:g}/s" if key.rate_per_s else "server default rate"
            typer.echo(f"{key.name}\t{','.join(key.scopes)}\t{rate}")
