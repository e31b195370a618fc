"""`promptrec serve` on loopback: posted events change the next recommendation, survive restarts and crashes;
bad requests get errors naming the field; an unavailable LLM means answers from the retriever, saying so."""

import threading
import time
from concurrent.futures import Future

import httpx
import pandas as pd
import pytest

from promptrec.serve.batching import BatchQueue, QueueFull
from promptrec.testing.loadtest import crash_test, load_test
from promptrec.testing.process import ServerProcess, free_port
from promptrec.serve.event_rows import to_event_rows
from promptrec.serve.store import EventStore


@pytest.fixture(scope="module")
def fitted(served_demo):
    return served_demo


def args(retriever, db, *extra):
    return ["--retriever", str(retriever), "--db", str(db), "--llm", "none", *extra]


def recommend(client, user, now, **params):
    r = client.get(f"/recommendations/{user}", params={"k": 10, "now": now.isoformat(), **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_event_changes_the_next_recommendation_and_survives_a_restart(fitted, tmp_path):
    retriever, ds, now = fitted
    user = "u0003"
    with ServerProcess(*args(retriever, tmp_path / "events.sqlite"), log=tmp_path / "log") as server, \
            server.client() as client:
        first = recommend(client, user, now)
        assert not first["reranked"] and "no LLM" in first["fallback_reason"]
        top = first["items"][0]
        assert top["title"] == ds.catalog[top["item_id"]].title
        assert sum(top["components"].values()) == pytest.approx(top["score"], abs=1e-3)
        event = {"user_id": user, "item_id": top["item_id"], "timestamp": (now - pd.Timedelta(minutes=5)).isoformat(),
                 "event_type": "click", "context": {"device": "mobile"}, "event_id": "evt-1"}
        assert client.post("/events", json=event).json() == {"stored": 1, "duplicates": 0, "events_stored_total": 1}
        second = recommend(client, user, now)
        assert second["history_events"] == first["history_events"] + 1
        assert top["item_id"] not in [i["item_id"] for i in second["items"]]  # seen, so no longer recommended
        assert second["items"] != first["items"]
        earlier = recommend(client, user, now - pd.Timedelta(minutes=10))  # before the event: unchanged
        assert earlier["history_events"] == first["history_events"]
        assert client.post("/events", json=[event]).json()["duplicates"] == 1  # a retry is not stored twice
        newcomer = {"user_id": 12345, "item_id": top["item_id"], "timestamp": (now - pd.Timedelta(hours=1)).isoformat()}
        assert client.post("/events", json=newcomer).status_code == 200
        cold = recommend(client, "12345", now)
        assert cold["history_events"] == 1 and len(cold["items"]) == 10
        burst = load_test(server.url, [f"u{i:04d}" for i in range(40)], concurrency=16, rerank=False,
                          now=now.isoformat(), duration_s=60, max_requests=48, warmup=0)
        assert burst["ok"] == 48, burst
        health = client.get("/health").json()
        assert health["events_stored"] == 2 and health["live_events"] == 2 and health["llm"]["mode"] == "none"
        assert health["retrieval"]["largest_batch"] >= 2  # concurrent users were scored together
        spec = client.get("/openapi.json").json()
        assert {"/events", "/recommendations/{user_id}", "/health"} <= set(spec["paths"])
        assert "EventIn" in spec["components"]["schemas"]
        assert server.stop() in (0, -15)  # SIGTERM: uvicorn shuts down, then re-raises the signal
        assert "Application shutdown complete" in (tmp_path / "log").read_text()  # the lifespan's close() ran
    with ServerProcess(*args(retriever, tmp_path / "events.sqlite")) as server, server.client() as client:
        again = recommend(client, user, now)
        assert again["history_events"] == second["history_events"]
        assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in second["items"]]
        assert [i["score"] for i in again["items"]] == pytest.approx([i["score"] for i in second["items"]], abs=1e-3)
        hist = client.get(f"/users/{user}/history", params={"limit": 1}).json()
        assert hist == [{"item_id": top["item_id"], "event_id": "evt-1", "timestamp": event["timestamp"].replace("+00:00", "Z"),
                         "event_type": "click", "weight": 1.0, "context": {"device": "mobile"}}]


def test_bad_requests_get_errors_naming_the_field(fitted, tmp_path):
    retriever, ds, now = fitted
    item = ds.catalog.ids[0]
    with ServerProcess(*args(retriever, tmp_path / "events.sqlite")) as server, server.client() as client:
        def problems(resp, status=422):
            assert resp.status_code == status, resp.text
            return {p["field"]: p["message"] for p in resp.json()["errors"]}

        bad = [{"user_id": "u1", "item_id": item, "timestamp": "2024-05-01T10:00:00"},
               {"user_id": "u1", "item_id": item, "weight": "heavy", "colour": "red"},
               {"item_id": item}]
        found = problems(client.post("/events", json=bad))
        assert "timezone" in found["events[0].timestamp"] and "2024-05-01T18:00:00Z" in found["events[0].timestamp"]
        assert "valid number" in found["events[1].weight"]
        assert "allowed fields" in found["events[1].colour"]
        assert "required" in found["events[2].user_id"].lower()
        unknown = problems(client.post("/events", json=[{"user_id": "u1", "item_id": item},
                                                        {"user_id": "u1", "item_id": "no-such-item"}]))
        assert list(unknown) == ["events[1].item_id"] and "not in the catalogue" in unknown["events[1].item_id"]
        assert "not in the catalogue" in problems(client.post("/events", json={"user_id": "u", "item_id": "x"}))["event.item_id"]
        assert "JSON" in problems(client.post("/events", content=b"{oops"), 400)["body"]
        assert "1 to 1000" in problems(client.post("/events", json=[]))["events"]
        assert "event object" in problems(client.post("/events", json="hello"))["body"]
        found = problems(client.get("/recommendations/u0001", params={"k": 0, "now": "2024-05-01 10:00"}))
        assert set(found) == {"query parameter k", "query parameter now"}
        assert client.get("/health").json()["events_stored"] == 0  # a rejected request stores nothing


def test_kill_during_a_stream_of_events_loses_no_acknowledged_event(fitted, tmp_path):
    retriever, ds, now = fitted
    users = list(ds.interactions.users[:20]) + ["brand-new-user"]
    report = crash_test(args(retriever, tmp_path / "events.sqlite"), users, list(ds.catalog.ids[:50]), now,
                        writers=3, kill_after_s=2.0, log=str(tmp_path / "log"))
    assert report["acknowledged"] > 20, report
    assert report["missing"] == 0 and report["missing_without_id"] == 0 and report["stored_twice"] == 0, report
    assert report["acknowledged_without_id"] > 5, report
    assert report["events_stored_after_restart"] >= report["acknowledged"] + report["acknowledged_without_id"]


def test_unavailable_llm_means_retriever_answers_that_say_so(fitted, tmp_path, default_model_dir):
    retriever, _, now = fitted
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    server_args = ["--retriever", str(retriever), "--db", str(tmp_path / "events.sqlite"), "--llm", "openai",
                   "--llm-url", dead, "--llm-deadline", "60"]
    with ServerProcess(*server_args, log=tmp_path / "log") as server, server.client(timeout=120) as client:
        plain = recommend(client, "u0002", now, rerank="false")
        answer = recommend(client, "u0002", now)
        assert not answer["reranked"] and answer["fallback_reason"].startswith("LLM error (APIConnectionError")
        assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in plain["items"]]
        assert plain["fallback_reason"] == "rerank=false was asked"
        health = client.get("/health").json()["llm"]
        assert health["mode"] == "openai" and health["errors"] == 1 and "Connection" in health["last_error"]


class SlowReranker:
    """Stands in for the LLM to test the queue's mechanics only: records batch sizes, takes ``delay`` s."""

    def __init__(self, delay: float):
        self.delay, self.batches = delay, []

    def rerank_many(self, requests):
        self.batches.append(list(requests))
        time.sleep(self.delay)
        return [f"ranked {r}" for r in requests]


def test_batch_queue_batches_bounds_and_skips_abandoned_requests():
    slow = SlowReranker(0.3)
    q = BatchQueue(slow.rerank_many, name="LLM", max_batch=4, max_wait_s=0.05, max_pending=3)
    first = q.submit("a")
    time.sleep(0.1)  # the worker is busy with "a"
    waiting = [q.submit(x) for x in "bcd"]
    with pytest.raises(QueueFull, match="LLM queue full .3 requests waiting"):
        q.submit("e")
    waiting[1].cancel()  # its caller gave up (deadline): never reranked
    assert first.result(5) == "ranked a"
    assert [f.result(5) for f in (waiting[0], waiting[2])] == ["ranked b", "ranked d"]
    assert slow.batches == [["a"], ["b", "d"]] and q.stats["abandoned"] == 1
    assert q.stats["seconds_per_request"] == pytest.approx(0.3 * 0.7 + 0.15 * 0.3, rel=0.3)
    assert q.submit("f", deadline_s=1.0).result(5) == "ranked f"  # about 0.3 s of work ahead: accepted
    with pytest.raises(QueueFull, match="LLM busy .about"):
        q.submit("g", deadline_s=0.05)  # the work ahead cannot finish in time: refused at once
    slow.delay = 1.0
    q.submit("x")
    time.sleep(0.2)  # well past max_wait_s: "x" runs alone, "h" waits behind it
    late = q.submit("h", deadline_s=0.9)  # admitted (about 0.5 s ahead), but "x" takes 1 s
    with pytest.raises(QueueFull, match="batch would end after the deadline"):
        late.result(5)
    assert q.stats["expired"] == 1 and ["h"] not in slow.batches
    q.close()
    assert not q._thread.is_alive()


def test_a_batch_too_long_for_its_deadlines_runs_the_part_that_fits():
    """Regression (found by the soak): when a whole batch would end after its requests' deadlines, it used to
    be dropped whole, so the timing estimate never refreshed and the LLM reranked nothing for minutes."""
    q = BatchQueue(SlowReranker(0.0).rerank_many, name="LLM", max_batch=8)
    q.stats["seconds_per_request"] = 0.5
    now = time.monotonic()
    batch = [(f"r{i}", Future(), now + 1.2) for i in range(4)] + [("late", Future(), now + 0.3),
                                                                   ("no deadline", Future(), None)]
    batch[1][1].cancel()  # a caller that gave up
    live = q._runnable(batch)
    assert [req for req, _ in live] == ["r0", "no deadline"]  # 2 x 0.5 s fits r0's 1.2 s; 3 would not
    assert q.stats["expired"] == 3 and q.stats["abandoned"] == 1
    assert all(isinstance(f.exception(0), QueueFull) for r, f, _ in batch if r in ("r2", "r3", "late"))
    q.close()


def test_a_stale_estimate_is_measured_again_by_a_probe():
    """Regression (found by the soak): one slow batch under load set an estimate above every deadline; from then
    on every request was refused and no batch ran to correct it. After probe_after_s idle, one request runs."""
    fast = SlowReranker(0.0)
    q = BatchQueue(fast.rerank_many, name="LLM", probe_after_s=0.2)
    q.stats["seconds_per_request"] = 60.0  # what a batch under heavy contention measured
    with pytest.raises(QueueFull, match="LLM busy"):
        q.submit("refused", deadline_s=1.0)
    time.sleep(0.3)
    assert q.submit("probe", deadline_s=1.0).result(5) == "ranked probe"  # runs although "60 s" > 1 s
    assert q.stats["probes"] == 1 and q.stats["seconds_per_request"] < 60 * 0.71
    with pytest.raises(QueueFull, match="LLM busy"):  # just measured: no second probe at once
        q.submit("next", deadline_s=1.0)
    q.close()


def test_event_store_is_durable_and_idempotent(tmp_path):
    store = EventStore(tmp_path / "e.sqlite")
    row = {"event_id": "x", "user_id": "u", "item_id": "i", "ts_ns": 10**18, "event_type": "view", "weight": 2.0,
           "context": {"device": "tv"}, "received_ns": 10**18}
    assert store.append([row, {**row, "event_id": None}, row]) == [1, 2, None]
    store.close()
    again = EventStore(tmp_path / "e.sqlite")
    frame = to_event_rows(again.load())
    assert len(frame) == 2 and list(frame["device"]) == ["tv", "tv"] and list(frame.index) == [1, 2]
    assert list(again.load(after_seq=1)["seq"]) == [2] and not len(again.load(after_seq=2))
    again.quarantine({1: "by hand"})
    assert list(again.load()["seq"]) == [2] and list(again.quarantined()[["seq", "reason"]].itertuples(index=False)) == [
        (1, "by hand")]
    assert str(frame["timestamp"].iloc[0]) == "2001-09-09 01:46:40+00:00"
    (tmp_path / "junk.sqlite").write_text("not a database at all" * 100)
    with pytest.raises(ValueError, match="not a promptrec event store"):
        EventStore(tmp_path / "junk.sqlite")


@pytest.mark.vllm
def test_in_process_vllm_reranks_and_batches_concurrent_users(fitted, tmp_path, default_model_dir):
    retriever, _, now = fitted
    server_args = ["--retriever", str(retriever), "--db", str(tmp_path / "events.sqlite"), "--llm", "vllm",
                   "--llm-deadline", "120"]
    with ServerProcess(*server_args, log=tmp_path / "log", ready_timeout=300) as server, server.client(timeout=300) as client:
        answer = recommend(client, "u0004", now)
        assert answer["reranked"] and answer["fallback_reason"] is None
        assert answer["llm"]["backend"] == "vllm" and answer["llm"]["prompt_tokens"] > 100
        assert all(i["llm_score"] is not None for i in answer["items"])
        assert sorted(i["rank"] for i in answer["items"]) == list(range(1, 11))
        report = load_test(server.url, [f"u{i:04d}" for i in range(8)], concurrency=8, rerank=True,
                           now=now.isoformat(), duration_s=120, max_requests=16, warmup=0)
        assert report["ok"] == 16 and report["reranked"] == 16, report
        llm = client.get("/health").json()["llm"]
        assert llm["largest_batch"] >= 2 and llm["batches"] < llm["processed"], llm
        assert llm["kv_cache_prefaulted_bytes"] > 2**28  # the server reserved its KV cache at start
        assert llm["heap_trims"]["available"] and llm["heap_trims"]["trims"] >= 1, llm  # freed heap handed back
