"""`open_event_store`: the SQLite store for a path, the PostgreSQL store for a ``postgresql://`` URL."""

from __future__ import annotations

from pathlib import Path

from promptrec.serve.event_rows import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_event_store(target: str | Path) -> Store:
    """A PostgreSQL store for a ``postgresql://`` URL, else a SQLite store at the path."""
    if str(target).startswith(POSTGRES_SCHEMES):
        from promptrec.serve.store_postgres import PostgresEventStore

        return PostgresEventStore(str(target))
    from promptrec.serve.store import EventStore

    return EventStore(target)
