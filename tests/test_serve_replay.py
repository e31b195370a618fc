"""Nothing stored can stop `promptrec serve` from starting: rows that cannot be applied (written by an older
version or by hand) are quarantined with their reason and listed by `promptrec events quarantine`; and any
event that POST /events acknowledges survives kill -9 and is in its user's history after the restart
(hypothesis over ids, unicode, numbers and context), on SQLite and PostgreSQL."""

import json
from urllib.parse import quote

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from promptrec.cli.main import app
from promptrec.serve.event_rules import RESERVED_KEYS
from promptrec.testing.process import ServerProcess
from promptrec.serve.stores import open_event_store

T0 = pd.Timestamp("2024-05-01T18:00:00Z")


def _row(item: str, n: int, **changes) -> dict:
    base = {"event_id": f"row-{n}", "user_id": "writer", "item_id": item, "ts_ns": (T0 + pd.Timedelta(minutes=n)).value,
            "event_type": "view", "weight": 1.0, "context": {"device": "tv"}, "received_ns": T0.value}
    return {**base, **changes}


def poisoned_rows(item: str, postgres: bool = False) -> list[dict]:
    """What an older version, or a hand, could have stored: each once stopped every start. (PostgreSQL itself
    refuses to store the lone surrogate and the NUL.)"""
    rows = [_row(item, 1, context={"item_id": item}), _row(item, 2, context={"timestamp": "2024-01-01"}),
            _row(item, 3, context={"weight": "heavy"}), _row(item, 4, context={"event_type": 5}),
            _row(item, 5, context={"user_id": "victim"}), _row(item, 6, context={"k": "v\ud800"}),
            _row(item, 7, event_type="a\x00b"), _row(item, 8, context={"n": 10**30})]
    return [r for r in rows if not postgres or r["event_id"] not in ("row-6", "row-7")]


def _server(retriever, db, log, *extra):
    return ServerProcess("--retriever", str(retriever), "--db", str(db), "--llm", "none", "--rate-limit", "0",
                         *extra, log=log)


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request, tmp_path):
    if request.param == "sqlite":
        return lambda name: str(tmp_path / f"{name}.sqlite")
    postgres = request.getfixturevalue("postgres")
    return postgres.create_database


def test_poisoned_rows_are_quarantined_and_the_server_starts(served_demo, store_target, tmp_path):
    retriever, ds, now = served_demo
    item, good_item = ds.catalog.ids[0], ds.catalog.ids[3]
    db = store_target("poisoned")
    store, postgres = open_event_store(db), db.startswith("postgresql://")
    poison = poisoned_rows(item, postgres)
    # a poisoned row between good ones, in one batch, as a replica would meet them while catching up
    store.append([_row(good_item, 0, event_id="good-0")] + poison + [_row(good_item, 9, event_id="good-9")])
    store.close()
    for _ in range(2):  # and again: a restart reads the quarantine, not the poison
        with _server(retriever, db, tmp_path / "log") as server, server.client() as client:
            history = client.get("/users/writer/history").json()
            assert [h["event_id"] for h in history] == ["good-0", "good-9"]
            assert client.get("/users/victim/history").json() == []
            r = client.get("/recommendations/writer", params={"now": now.isoformat()})
            assert r.status_code == 200
    listed = CliRunner().invoke(app, ["events", "quarantine", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in poison]
    reasons = {r["event_id"]: r["reason"] for r in rows}
    assert "event field" in reasons["row-1"] and "64-bit" in reasons["row-8"]
    assert postgres or ("surrogate" in reasons["row-6"] and "NUL" in reasons["row-7"])
    log = (tmp_path / "log").read_text()
    assert f"QUARANTINED {len(poison)} stored event(s)" in log and log.count("QUARANTINED") == 1 and "Traceback" not in log


def test_a_replica_catching_up_applies_the_good_events_beside_a_poisoned_one(served_demo, postgres, tmp_path):
    retriever, ds, now = served_demo
    db = postgres.create_database("replica_poison")
    with _server(retriever, db, tmp_path / "log") as server, server.client() as client:
        other = open_event_store(db)  # another replica (or a hand) commits while this one runs
        other.append([_row(ds.catalog.ids[3], 0, event_id="good-a"),
                      _row(ds.catalog.ids[0], 1, context={"item_id": ds.catalog.ids[0]}),
                      _row(ds.catalog.ids[3], 2, event_id="good-b")])
        other.close()
        history = client.get("/users/writer/history")
        assert history.status_code == 200 and [h["event_id"] for h in history.json()] == ["good-a", "good-b"]
        health = client.get("/health").json()
        assert health["stored_events_quarantined"] == 1 and health["event_store"]["applied_seq"] == 3


def _text():
    return st.text(min_size=1, max_size=12)  # any code points: NUL, lone surrogates, line separators


def _events(items: list[str]):
    context_key = st.one_of(_text(), st.sampled_from(sorted(RESERVED_KEYS) + ["device", "latitude", "weather"]))
    context_value = st.one_of(_text(), st.integers(min_value=-(2**70), max_value=2**70),
                              st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())
    return st.fixed_dictionaries(
        {"user_id": st.one_of(_text().map(lambda s: "p-" + s), st.integers(0, 5).map(lambda n: f"p-{n}")),
         "item_id": st.sampled_from(items),
         "timestamp": st.integers(0, 10**6).map(lambda s: (T0 + pd.Timedelta(seconds=s)).isoformat())},
        optional={"event_id": st.one_of(st.none(), st.sampled_from(["dup-1", "dup-2"]), _text()),
                  "event_type": _text(), "weight": st.floats(-1e6, 1e6),
                  "context": st.dictionaries(context_key, context_value, max_size=4)})


def test_every_acknowledged_event_survives_kill_9(served_demo, store_target, tmp_path):
    retriever, ds, _ = served_demo
    db = store_target("property")
    items = list(ds.catalog.ids[:20])
    acked: list[dict] = []
    with _server(retriever, db, tmp_path / "log") as server, server.client() as client:

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(events=st.lists(_events(items), min_size=1, max_size=3))
        def post(events):
            r = client.post("/events", content=json.dumps(events), headers={"Content-Type": "application/json"})
            assert r.status_code in (200, 422), (r.status_code, r.text)
            if r.status_code == 200:
                stored = []
                for e in events:  # an event_id already stored (before, or earlier in this request) is not again
                    if e.get("event_id") is None or e["event_id"] not in seen_ids:
                        stored.append(e)
                        seen_ids.add(e.get("event_id"))
                assert r.json()["stored"] == len(stored) and r.json()["duplicates"] == len(events) - len(stored)
                acked.extend(stored)

        seen_ids: set[str] = set()
        post()
        server.kill()
    assert len(acked) > 30  # the strategy must produce plenty of acceptable events
    with _server(retriever, db, tmp_path / "log") as server, server.client() as client:
        expected: dict[str, list[tuple[str, pd.Timestamp]]] = {}
        for e in acked:
            expected.setdefault(str(e["user_id"]), []).append((e["item_id"], pd.Timestamp(e["timestamp"])))
        for user, events in expected.items():
            history = client.get(f"/users/{quote(user, safe='')}/history", params={"limit": 10_000}).json()
            got = sorted((h["item_id"], pd.Timestamp(h["timestamp"])) for h in history)
            assert got == sorted(events), user
    assert "Traceback" not in (tmp_path / "log").read_text()
