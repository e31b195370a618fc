"""Hostile and careless input for `promptrec serve`, and a soak that sends it across restarts.

Every event here once stored poison or answered 500 (context keys named like event fields, lone surrogates,
NUL, huge integers, deep nesting); the soak checks that each gets a 4xx, that the server starts again after
kill -9 and SIGTERM alike, and that every acknowledged good event is in its user's history after each start.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable, Sequence
from urllib.parse import quote

import httpx


def hostile_events(item: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, event) pairs that must get a 4xx."""
    base = {"user_id": "mallory", "item_id": item, "timestamp": "2024-05-01T18:00:00Z"}
    cases = [(f"context key {k}", {**base, "context": {k: v}}) for k, v in
             (("item_id", item), ("timestamp", "2024-01-01T00:00:00Z"), ("weight", "heavy"), ("event_type", 5),
              ("event_id", "x"), ("user_id", "victim"), ("seq", 1), ("context", "c"))]
    return cases + [("surrogate key", {**base, "context": {"k\ud800": "v"}}),
                    ("surrogate value", {**base, "context": {"k": "v\udfff"}}),
                    ("surrogate user", {**base, "user_id": "m\ud800"}),
                    ("NUL event type", {**base, "event_type": "\x00x"}),
                    ("NUL context value", {**base, "context": {"note": "a\x00b"}}),
                    ("NUL event id", {**base, "event_id": "id\x00"}),
                    ("huge context int", {**base, "context": {"n": 10**30}}),
                    ("latitude as text", {**base, "context": {"latitude": "north"}}),
                    ("too many keys", {**base, "context": {f"k{i}": i for i in range(40)}}),
                    ("long context text", {**base, "context": {"k": "x" * 5000}}),
                    ("unknown item", {**base, "item_id": "no-such-item"})]


def raw_bodies() -> list[tuple[str, bytes]]:
    """(name, body) pairs that are not acceptable JSON and must get a 4xx."""
    return [("5,000-digit integer", b'{"user_id": "u", "item_id": "i", "weight": ' + b"9" * 5000 + b"}"),
            ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
            ("deep context", b'{"user_id": "u", "item_id": "i", "context": {"a": ' + b"[" * 500 + b"]" * 500 + b"}}"),
            ("lone surrogate escape", b'{"user_id": "\\ud800", "item_id": "i"}'),
            ("not UTF-8", b"\xff\xfe{}"), ("not JSON", b"{user_id: u}")]


def post_json(client: httpx.Client, body: Any) -> httpx.Response:
    """POST /events with ASCII JSON (lone surrogates travel as \\ud800 escapes, as a hostile client sends them)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/events", content=content, headers={"Content-Type": "application/json"})


def hostile_soak(start_server: Callable[[], Any], items: Sequence[str], *, duration_s: float = 120.0,
                 restarts: int = 5, seed: int = 0) -> dict[str, Any]:
    """Hostile and good events for ``duration_s``, the server restarted ``restarts`` times (kill -9 and
    SIGTERM in turn); after each start every acknowledged good event must be in its user's history.
    ``start_server()`` returns a started ServerProcess on the same store each time."""
    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    acked: dict[str, list[str]] = {}  # user -> event ids acknowledged
    report: dict[str, Any] = {"restarts": [], "hostile_sent": 0, "good_sent": 0}
    per_period = duration_s / (restarts + 1)
    server = start_server()
    for period in range(restarts + 1):
        until = time.monotonic() + per_period
        with server.client(timeout=30) as client:
            n = 0
            while time.monotonic() < until:
                n += 1
                if rng.random() < 0.5:
                    _, body = rng.choice(hostile_events(rng.choice(items)) + raw_bodies())
                    report["hostile_sent"] += 1
                    expected_ok = False
                else:
                    user = f"soak-{rng.randrange(20)}"
                    body = {"user_id": user, "item_id": rng.choice(items), "event_id": f"p{period}-{n}",
                            "timestamp": f"2024-05-{1 + rng.randrange(28):02d}T{rng.randrange(24):02d}:00:00Z",
                            "context": {"device": rng.choice(["tv", "mobile"]), "weather": rng.choice(["rain", "sun"])}}
                    report["good_sent"] += 1
                    expected_ok = True
                r = post_json(client, body)
                key = f"{r.status_code // 100}xx" if not expected_ok else f"good {r.status_code}"
                statuses[key] = statuses.get(key, 0) + 1
                if expected_ok and r.status_code == 200:
                    acked.setdefault(body["user_id"], []).append(body["event_id"])
        if period == restarts:
            break
        how = "kill -9" if period % 2 == 0 else "SIGTERM"
        server.kill() if how == "kill -9" else server.stop()
        t0 = time.monotonic()
        server = start_server()
        restart_s = time.monotonic() - t0
        with server.client(timeout=30) as client:
            missing = sum(len(set(ids) - _history_ids(client, user)) for user, ids in acked.items())
            health = client.get("/health").json()
        report["restarts"].append({"after": how, "restart_s": round(restart_s, 1), "missing_acknowledged": missing,
                                   "events_stored": health["events_stored"],
                                   "quarantined": health.get("stored_events_quarantined", 0)})
    server.stop()
    report.update(statuses=statuses, acknowledged_good=sum(len(v) for v in acked.values()),
                  server_errors=sum(v for k, v in statuses.items() if k.startswith("5") or " 5" in k),
                  hostile_accepted=statuses.get("2xx", 0))
    return report


def _history_ids(client: httpx.Client, user: str) -> set[str]:
    return {h.get("event_id") for h in client.get(f"/users/{quote(user, safe='')}/history",
                                                  params={"limit": 10_000}).json()}
