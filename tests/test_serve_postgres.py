"""The PostgreSQL event store on a real server: the SQLite store's guarantees (durable, idempotent, whole
requests), two `promptrec serve` replicas on one database (an event posted to one counts in the other's next
answer), no acknowledged event lost to SIGKILL, and an unreachable database answered with 503."""

import threading

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.serve.app import create_app
from promptrec.serve.event_rows import to_event_rows
from promptrec.testing.loadtest import crash_test, stored_event_ids
from promptrec.testing.process import ServerProcess
from promptrec.serve.service import RecommendationService

ROW = {"event_id": "x", "user_id": "u", "item_id": "i", "ts_ns": 10**18, "event_type": "view", "weight": 2.0,
       "context": {"device": "tv"}, "received_ns": 10**18}


def test_postgres_store_is_durable_idempotent_and_ordered(postgres):
    from promptrec.serve.stores import open_event_store
    from promptrec.serve.store_postgres import PostgresEventStore

    url = postgres.create_database("store_unit")
    store = open_event_store(url)
    assert isinstance(store, PostgresEventStore) and store.shared and "@127.0.0.1" in store.path
    assert store.append([ROW, {**ROW, "event_id": None}, ROW]) == [1, 2, None]
    store.close()
    again = open_event_store(url)  # a new process would see the same: committed before append returned
    frame = to_event_rows(again.load())
    assert list(frame.index) == [1, 2] and list(frame["device"]) == ["tv", "tv"]
    assert str(frame["timestamp"].iloc[0]) == "2001-09-09 01:46:40+00:00" and frame["weight"].iloc[0] == 2.0
    with pytest.raises(Exception):  # a bad row fails its whole request: nothing of it is stored
        again.append([{**ROW, "event_id": "y"}, {**ROW, "event_id": "z", "user_id": None}])
    assert len(again) == 2 and "y" not in set(again.load()["event_id"])
    again.quarantine({1: "by hand"})
    again.quarantine({1: "twice"})  # idempotent: the first reason stays
    assert list(again.load()["seq"]) == [2] and list(again.quarantined()["reason"]) == ["by hand"]

    # concurrent writers (as replicas are): sequence numbers become visible in commit order, so a reader
    # that polls "after the last seq I saw" never skips an event committed later with a lower number
    writers = [open_event_store(url) for _ in range(3)]
    seen: list[int] = []
    done = threading.Event()

    def write(w: int) -> None:
        for n in range(60):
            writers[w].append([{**ROW, "event_id": f"w{w}-{n}-{j}"} for j in range(2)])

    def poll() -> None:
        last = 2
        while True:
            finished = done.is_set()  # read before the load: a load begun after every writer returned sees all
            new = again.load(last)
            if len(new):
                seen.extend(new["seq"])
                last = int(new["seq"].max())
            elif finished:
                break

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    reader = threading.Thread(target=poll)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert len(seen) == 360 and set(seen) == set(again.load(2)["seq"])
    for s in (*writers, again):
        s.close()


def _replica(retriever, url, log):
    return ServerProcess("--retriever", str(retriever), "--db", url, "--llm", "none", log=log)


def test_two_replicas_on_one_database_see_each_others_events(served_demo, postgres, tmp_path):
    retriever, ds, now = served_demo
    url = postgres.create_database("replicas")
    user = "u0003"
    with _replica(retriever, url, tmp_path / "a.log") as a, _replica(retriever, url, tmp_path / "b.log") as b, \
            a.client() as ca, b.client() as cb:
        params = {"k": 10, "now": now.isoformat()}
        before = cb.get(f"/recommendations/{user}", params=params).json()
        top = before["items"][0]["item_id"]
        event = {"user_id": user, "item_id": top, "timestamp": (now - pd.Timedelta(minutes=5)).isoformat(),
                 "event_id": "on-a"}
        assert ca.post("/events", json=event).json()["stored"] == 1
        after = cb.get(f"/recommendations/{user}", params=params).json()  # B's very next answer
        assert after["history_events"] == before["history_events"] + 1
        assert top not in [i["item_id"] for i in after["items"]]
        assert cb.post("/events", json=event).json()["duplicates"] == 1  # idempotent across replicas
        assert cb.get(f"/users/{user}/history", params={"limit": 1}).json()[0]["event_id"] == "on-a"

        # both replicas take writes at once; then each has every event either acknowledged
        acked: dict[str, str] = {}
        users = [str(u) for u in ds.interactions.users[:12]]

        def write(client_url: str, name: str) -> None:
            import httpx

            with httpx.Client(base_url=client_url, timeout=30) as c:
                for n in range(25):
                    events = [{"user_id": users[(n + j) % len(users)], "item_id": str(ds.catalog.ids[(7 * n + j) % 50]),
                               "timestamp": (now - pd.Timedelta(hours=1, seconds=n)).isoformat(),
                               "event_id": f"{name}-{n}-{j}"} for j in range(2)]
                    r = c.post("/events", json=events)
                    assert r.status_code == 200, r.text
                    acked.update({e["event_id"]: e["user_id"] for e in events})

        threads = [threading.Thread(target=write, args=(s.url, s.url[-5:])) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(acked) == 100
        for client in (ca, cb):
            assert set(acked) <= stored_event_ids(client, list(acked.values()))
            health = client.get("/health").json()
            assert health["events_stored"] == 101 and health["event_store"]["shared"]
            assert health["event_store"]["kind"] == "PostgresEventStore"
            assert health["live_events"] == 101  # each event applied once, whichever replica took it


def test_kill_during_posts_loses_no_acknowledged_event_on_postgres(served_demo, postgres, tmp_path):
    retriever, ds, now = served_demo
    url = postgres.create_database("crash")
    users = list(ds.interactions.users[:20]) + ["brand-new-user"]
    report = crash_test(["--retriever", str(retriever), "--db", url, "--llm", "none"], users,
                        list(ds.catalog.ids[:50]), now, writers=3, kill_after_s=2.0, log=str(tmp_path / "log"))
    assert report["acknowledged"] > 20 and report["acknowledged_without_id"] > 5, report
    assert report["missing"] == 0 and report["missing_without_id"] == 0 and report["stored_twice"] == 0, report
    assert report["events_stored_after_restart"] >= report["acknowledged"] + report["acknowledged_without_id"]


def test_unreachable_database_answers_503_and_recovers(served_demo):
    from promptrec.testing.postgres_local import LocalPostgres
    from promptrec.serve.stores import open_event_store

    retriever, ds, now = served_demo
    server = LocalPostgres().start()
    try:
        service = RecommendationService(TimeAwareRetriever.load(retriever), open_event_store(server.url()))
        event = {"user_id": "u0001", "item_id": str(ds.catalog.ids[0]), "timestamp": now.isoformat()}
        with TestClient(create_app(service), raise_server_exceptions=False) as client:
            assert client.post("/events", json=event).status_code == 200
            server._run("pg_ctl", "-D", str(server.root / "data"), "-m", "immediate", "-w", "stop")
            down = client.post("/events", json={**event, "event_id": "while-down"})
            assert down.status_code == 503 and down.headers["Retry-After"] == "5"
            assert "unavailable" in down.json()["detail"] and "127.0.0.1" not in down.text
            assert client.get("/recommendations/u0001", params={"now": now.isoformat()}).status_code == 503
            server._run("pg_ctl", "-D", str(server.root / "data"), "-l", str(server.root / "server.log"), "-w",
                        "-o", f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1", "start")
            again = client.post("/events", json={**event, "event_id": "after"})
            assert again.status_code == 200, again.text  # the pool reconnects; nothing to restart
            assert again.json()["events_stored_total"] == 2
    finally:
        server.stop()
