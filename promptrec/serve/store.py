"""Durable event store: SQLite in WAL mode; an event is on disk before its POST is acknowledged."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

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


class EventStore:
    """Append-only events in one SQLite file. ``synchronous=FULL``: a committed event survives a crash of
    the process and of the machine. An ``event_id`` makes retries idempotent (a repeat is not stored twice)."""

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

    def append(self, rows: list[dict[str, Any]]) -> list[bool]:
        """Write events in one transaction; returns, per row, whether it was new (False: its event_id was
        already stored). Rows: the COLUMNS, ``context`` a dict."""
        new = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for r in rows:
                    cur = self._db.execute(
                        f"INSERT OR IGNORE INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                        [json.dumps(r[c], sort_keys=True) if c == "context" else r[c] for c in COLUMNS])
                    new.append(cur.rowcount == 1)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def load(self) -> pd.DataFrame:
        """Every stored event in arrival order, as event rows (UTC timestamps, context columns spread out)."""
        with self._lock:
            frame = pd.read_sql_query(f"SELECT seq, {', '.join(COLUMNS)} FROM events ORDER BY seq", self._db)
        return to_event_rows(frame)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def to_event_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Store rows -> event frame (user_id, item_id, timestamp, event_type, weight, event_id, context columns)."""
    out = pd.DataFrame({"user_id": frame["user_id"], "item_id": frame["item_id"],
                        "timestamp": pd.to_datetime(frame["ts_ns"], unit="ns", utc=True),
                        "event_type": frame["event_type"], "weight": frame["weight"].astype(float),
                        "event_id": frame["event_id"]})
    context = pd.DataFrame([json.loads(c) for c in frame["context"]], index=frame.index)
    return pd.concat([out, context], axis=1) if len(context.columns) else out
