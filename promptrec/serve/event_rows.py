"""What both event stores share: the stored columns, the store contract, its errors, and stored rows -> events."""

from __future__ import annotations

import json
from typing import Any, Protocol

import pandas as pd

COLUMNS = ("event_id", "user_id", "item_id", "ts_ns", "event_type", "weight", "context", "received_ns")
EVENT_FRAME = ["user_id", "item_id", "timestamp", "event_type", "weight", "event_id"]


class StoreUnavailable(RuntimeError):
    """The event store cannot be reached (e.g. the database server is down); retry later (HTTP 503)."""


class Store(Protocol):
    """What the service needs of an event store.

    ``load`` returns stored rows as they are (``seq`` and the COLUMNS; ``context`` a dict or JSON text), without
    the quarantined ones; ``quarantine`` sets rows that cannot be applied aside, each with its reason, so a
    restart neither fails on them nor reads them again; nothing is deleted."""

    path: Any  # where the events are (a file, or a database URL without its password)
    shared: bool  # other processes may append: the service reads their events before answering

    def append(self, rows: list[dict[str, Any]]) -> list[int | None]: ...
    def load(self, after_seq: int = 0) -> pd.DataFrame: ...
    def quarantine(self, reasons: dict[int, str]) -> None: ...
    def quarantined(self) -> pd.DataFrame: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...


QUARANTINE_COLUMNS = ["seq", "reason", "quarantined_at", *COLUMNS]


def to_event_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored rows (seq and the COLUMNS) -> event frame indexed by seq (user_id, item_id, timestamp,
    event_type, weight, event_id, context columns). The rows must pass promptrec.serve.event_rules."""
    if frame.empty:  # the common answer to a replica's catch-up query: keep it cheap
        return pd.DataFrame(columns=EVENT_FRAME)
    frame = frame.set_index("seq")
    out = pd.DataFrame({"user_id": frame["user_id"], "item_id": frame["item_id"],
                        "timestamp": pd.to_datetime(frame["ts_ns"].astype("int64"), unit="ns", utc=True),
                        "event_type": frame["event_type"], "weight": frame["weight"].astype(float),
                        "event_id": frame["event_id"]}, index=frame.index)
    context = pd.DataFrame([context_dict(c) for c in frame["context"]], index=frame.index)
    return pd.concat([out, context], axis=1) if len(context.columns) else out


def context_dict(value: Any) -> dict[str, Any]:
    """A stored context (dict from PostgreSQL's JSONB, JSON text from SQLite) as a dict."""
    return value if isinstance(value, dict) else json.loads(value)
