"""PostgreSQL event store (psycopg 3 with a connection pool), shared by several ``promptrec serve`` replicas.

Same guarantees as the SQLite store: an event is committed (``synchronous_commit=on``) before its POST is
acknowledged, an ``event_id`` is stored once, a request's events are one transaction. Every append takes
one transaction-scoped advisory lock before drawing sequence numbers, so sequence numbers become visible
in commit order: a replica that has read every event up to sequence ``n`` has missed none below ``n``,
and catching up is one indexed query for ``seq > n``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import pandas as pd

from promptrec.serve.event_rows import COLUMNS, QUARANTINE_COLUMNS, StoreUnavailable

TABLE = "promptrec_events"
QUARANTINE = "promptrec_quarantine"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts_ns BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    context JSONB NOT NULL,
    received_ns BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_user ON {TABLE} (user_id, ts_ns);
CREATE TABLE IF NOT EXISTS {QUARANTINE} (
    seq BIGINT PRIMARY KEY REFERENCES {TABLE} (seq),
    reason TEXT NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
# one advisory lock key for appends (and schema creation), derived from the table name
LOCK_KEY = int.from_bytes(hashlib.sha256(TABLE.encode()).digest()[:8], "big", signed=True)
INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
          "ON CONFLICT (event_id) DO NOTHING RETURNING seq")


class PostgresEventStore:
    """Append-only events in a PostgreSQL table (``promptrec_events``), created on first use."""

    shared = True

    def __init__(self, url: str, *, pool_size: int = 4, timeout_s: float = 10.0):
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ImportError("the PostgreSQL event store needs psycopg 3 and psycopg-pool: "
                              "pip install 'promptrec[scale]' (or 'psycopg[binary,pool]')") from exc
        self._errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self.path = redacted(url)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout_s, open=False,
                                    kwargs={"autocommit": True}, configure=_durable, name="promptrec-events")
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise ValueError(f"cannot connect to the event database {self.path} ({exc}); check that the server "
                             "runs and the URL (user, host, port, database) is right") from None
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))  # replicas starting together
            conn.execute(SCHEMA)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, *self._errors) as exc:
            raise StoreUnavailable(f"event database {self.path} unavailable ({type(exc).__name__}: {exc})") from exc

    def append(self, rows: list[dict[str, Any]]) -> list[int | None]:
        """Write events in one transaction; returns, per row, its sequence number, or None if its event_id
        was already stored. Rows: the COLUMNS, ``context`` a dict."""
        from psycopg.types.json import Jsonb

        if not rows:
            return []
        params = [[Jsonb(r[c]) if c == "context" else r[c] for c in COLUMNS] for r in rows]
        seqs: list[int | None] = []
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.executemany(INSERT, params, returning=True)
            while True:
                row = cur.fetchone()
                seqs.append(None if row is None else int(row[0]))
                if not cur.nextset():
                    break
        return seqs

    def load(self, after_seq: int = 0) -> pd.DataFrame:
        """Stored rows with a sequence number above ``after_seq`` in commit order (``seq`` and the COLUMNS,
        ``context`` a dict), the quarantined ones left out."""
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM {TABLE} e WHERE seq > %s AND NOT EXISTS "
                        f"(SELECT 1 FROM {QUARANTINE} q WHERE q.seq = e.seq) ORDER BY seq", (after_seq,))
            return pd.DataFrame(cur.fetchall(), columns=["seq", *COLUMNS])

    def quarantine(self, reasons: dict[int, str]) -> None:
        """Set stored rows aside (by ``seq``) with the reason they cannot be applied; idempotent, and
        replicas that meet the same row agree."""
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {QUARANTINE} (seq, reason) VALUES (%s, %s) ON CONFLICT (seq) DO NOTHING",
                            [(int(seq), reason) for seq, reason in reasons.items()])

    def quarantined(self) -> pd.DataFrame:
        """Every quarantined row: seq, reason, when it was set aside, and the row as stored."""
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT q.seq, q.reason, q.quarantined_at, {', '.join('e.' + c for c in COLUMNS)} "
                        f"FROM {QUARANTINE} q JOIN {TABLE} e ON e.seq = q.seq ORDER BY q.seq")
            return pd.DataFrame(cur.fetchall(), columns=QUARANTINE_COLUMNS)

    def __len__(self) -> int:
        with self._connection() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])

    def close(self) -> None:
        self._pool.close()


def _durable(conn: Any) -> None:
    """Every pooled connection commits durably, whatever the server's default."""
    conn.execute("SET synchronous_commit TO on")


def redacted(url: str) -> str:
    """The URL without its password (for logs and /health)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"
