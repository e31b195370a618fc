"""Durable event stores. An event is committed before its POST is acknowledged; ``event_id`` makes retries
idempotent. SQLite (one file, WAL) is the embedded default; PostgreSQL (``store_postgres``) is shared by
several ``promptrec serve`` replicas. :func:`open_event_store` picks one from ``--db``."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    weight REAL NOT NULL,
    context TEXT NOT NULL,
    received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, ts_ns);
"""
COLUMNS = ("event_id", "user_id", "item_id", "ts_ns", "event_type", "weight", "context", "received_ns")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreUnavailable(RuntimeError):
    """The event store cannot be reached (e.g. the database server is down); retry later (HTTP 503)."""


class Store(Protocol):
    """What the service needs of an event store."""

    path: Any  # where the events are (a file, or a database URL without its password)
    shared: bool  # other processes may append: the service reads their events before answering

    def append(self, rows: list[dict[str, Any]]) -> list[int | None]: ...
    def load(self, after_seq: int = 0) -> pd.DataFrame: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...


def open_event_store(target: str | Path) -> Store:
    """A PostgreSQL store for a ``postgresql://`` URL, else a SQLite store at the path."""
    if str(target).startswith(POSTGRES_SCHEMES):
        from promptrec.serve.store_postgres import PostgresEventStore

        return PostgresEventStore(str(target))
    return EventStore(target)


class EventStore:
    """Append-only events in one SQLite file. ``synchronous=FULL``: a committed event survives a crash of
    the process and of the machine. An ``event_id`` makes retries idempotent (a repeat is not stored twice).
    One process writes it (``shared`` is False); several replicas need PostgreSQL."""

    shared = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a promptrec event store ({exc}); give another --db path.") from exc
        self._lock = threading.Lock()

    def append(self, rows: list[dict[str, Any]]) -> list[int | None]:
        """Write events in one transaction; returns, per row, its sequence number, or None if its event_id
        was already stored. Rows: the COLUMNS, ``context`` a dict."""
        seqs: list[int | None] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for r in rows:
                    cur = self._db.execute(
                        f"INSERT OR IGNORE INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                        [json.dumps(r[c], sort_keys=True) if c == "context" else r[c] for c in COLUMNS])
                    seqs.append(cur.lastrowid if cur.rowcount == 1 else None)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seqs

    def load(self, after_seq: int = 0) -> pd.DataFrame:
        """Stored events with a sequence number above ``after_seq`` in arrival order, as event rows indexed
        by sequence number."""
        with self._lock:
            frame = pd.read_sql_query(f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq > ? ORDER BY seq",
                                      self._db, params=(after_seq,))
        return to_event_rows(frame)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def to_event_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Store rows (seq and the COLUMNS) -> event frame indexed by seq (user_id, item_id, timestamp,
    event_type, weight, event_id, context columns)."""
    if frame.empty:  # the common answer to a replica's catch-up query: keep it cheap
        return pd.DataFrame(columns=["user_id", "item_id", "timestamp", "event_type", "weight", "event_id"])
    frame = frame.set_index("seq")
    out = pd.DataFrame({"user_id": frame["user_id"], "item_id": frame["item_id"],
                        "timestamp": pd.to_datetime(frame["ts_ns"].astype("int64"), unit="ns", utc=True),
                        "event_type": frame["event_type"], "weight": frame["weight"].astype(float),
                        "event_id": frame["event_id"]}, index=frame.index)
    context = pd.DataFrame([c if isinstance(c, dict) else json.loads(c) for c in frame["context"]], index=frame.index)
    return pd.concat([out, context], axis=1) if len(context.columns) else out
