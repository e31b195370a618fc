"""The SQLite event store (one file, WAL), the embedded default. An event is committed before its POST is
acknowledged; ``event_id`` makes retries idempotent. PostgreSQL (``store_postgres``) is shared by several
``promptrec serve`` replicas; ``stores.open_event_store`` picks one from ``--db``."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from promptrec.serve.event_rows import COLUMNS, QUARANTINE_COLUMNS

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
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY REFERENCES events (seq),
    reason TEXT NOT NULL,
    quarantined_ns INTEGER NOT NULL
);
"""


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
        """Stored rows with a sequence number above ``after_seq`` in arrival order (``seq`` and the COLUMNS,
        ``context`` as JSON text), the quarantined ones left out."""
        with self._lock:
            return pd.read_sql_query(
                f"SELECT seq, {', '.join(COLUMNS)} FROM events e WHERE seq > ? AND NOT EXISTS "
                "(SELECT 1 FROM quarantine q WHERE q.seq = e.seq) ORDER BY seq", self._db, params=(after_seq,))

    def quarantine(self, reasons: dict[int, str]) -> None:
        """Set stored rows aside (by ``seq``) with the reason they cannot be applied; idempotent."""
        now = time.time_ns()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO quarantine (seq, reason, quarantined_ns) VALUES (?, ?, ?)",
                                     [(int(seq), reason, now) for seq, reason in reasons.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def quarantined(self) -> pd.DataFrame:
        """Every quarantined row: seq, reason, when it was set aside, and the row as stored."""
        with self._lock:
            frame = pd.read_sql_query(
                f"SELECT q.seq, q.reason, q.quarantined_ns, {', '.join('e.' + c for c in COLUMNS)} FROM quarantine q "
                "JOIN events e ON e.seq = q.seq ORDER BY q.seq", self._db)
        frame.insert(2, "quarantined_at", pd.to_datetime(frame.pop("quarantined_ns"), unit="ns", utc=True))
        return frame[QUARANTINE_COLUMNS]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

