"""Which users a batch run covers, and at what time: all users of a saved retriever, a list, or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd


def retriever_users(retriever_path: Path) -> tuple[list[str], pd.Timestamp]:
    """A saved retriever's users (first-seen order) and the time of its last event (read from its event
    log only, without loading the retriever)."""
    events = retriever_path / "events.parquet"
    if not events.exists():
        raise FileNotFoundError(f"no saved retriever at {retriever_path} (events.parquet missing); "
                                "save one with `promptrec retriever fit --out DIR`")
    frame = pd.read_parquet(events, columns=["user_id", "timestamp"])
    return list(pd.unique(frame["user_id"].astype(str))), pd.Timestamp(frame["timestamp"].max()).tz_convert("UTC")


def parse_now(value: Any, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} {value!r} has no time zone; give one, e.g. '2024-05-01T18:00:00Z'")
    return ts.tz_convert("UTC")


def read_users_file(path: Path) -> pd.DataFrame:
    """user_id (and optionally now) from a .parquet, .csv or plain-text file (one user id per line)."""
    if not path.exists():
        raise FileNotFoundError(f"users file {path} not found")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str)
    else:
        frame = pd.DataFrame({"user_id": [line.strip() for line in path.read_text().splitlines() if line.strip()]})
    if "user_id" not in frame.columns:
        raise ValueError(f"{path} has no user_id column (columns: {list(frame.columns)})")
    return frame[[c for c in ("user_id", "now") if c in frame.columns]]


def requested_users(retriever_path: Path, users: Sequence[str] | None = None, users_file: Path | None = None,
                    now: Any = None) -> pd.DataFrame:
    """One row per request: user_id (str) and now_ns (UTC ns). A file's ``now`` column gives per-user times
    (a user may appear at several times); otherwise ``now``, by default one second after the retriever's
    last event."""
    known, last = retriever_users(retriever_path)
    if users_file is not None:
        frame = read_users_file(users_file)
    else:
        frame = pd.DataFrame({"user_id": list(users) if users is not None else known})
    frame["user_id"] = frame["user_id"].astype(str)
    default = parse_now(now, "--now") if now is not None else last + pd.Timedelta(seconds=1)
    if "now" in frame.columns:
        times = [default if pd.isna(v) else parse_now(v, f"{users_file}: now of user {u!r}")
                 for u, v in zip(frame["user_id"], frame["now"])]
    else:
        times = [default] * len(frame)
    return pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "now_ns": [t.value for t in times]})
