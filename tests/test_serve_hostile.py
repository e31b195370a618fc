"""`promptrec serve` against hostile and careless clients: every hostile event gets a 4xx (never a 500), the
server starts again after each, connections stay usable after an error, idle connections cannot lock clients
out for longer than the header timeout, failed authentication is rate-limited, and no secret reaches a log
line or /health."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from promptrec.serve.auth import add_key
from promptrec.serve.connections import guarded_protocol
from promptrec.testing.process import ServerProcess, free_port
from promptrec.serve.safety import InternalErrors, redact
from promptrec.testing.hostile import hostile_events, hostile_soak, post_json, raw_bodies


def test_hostile_events_get_4xx_and_the_server_starts_again(served_demo, tmp_path):
    retriever, ds, now = served_demo
    item = ds.catalog.ids[0]
    args = ("--retriever", str(retriever), "--db", str(tmp_path / "events.sqlite"), "--llm", "none", "--rate-limit", "0")
    good = {"user_id": "alice", "item_id": ds.catalog.ids[2], "timestamp": "2024-05-01T18:00:00Z",
            "context": {"device": "tv", "weather": "rain", "n": 2**62}, "event_id": "good-1"}
    with ServerProcess(*args, log=tmp_path / "log") as server, server.client() as client:
        for name, body in hostile_events(item) + raw_bodies():
            r = post_json(client, body)
            assert 400 <= r.status_code < 500 and r.json()["detail"], (name, r.status_code, r.text)
        assert client.post("/events", json=good).status_code == 200
        assert client.get("/health").json()["events_stored"] == 1
        assert client.get("/users/victim/history").status_code == 200
        server.kill()  # kill -9: nothing graceful
    with ServerProcess(*args, log=tmp_path / "log") as server, server.client() as client:
        history = client.get("/users/alice/history").json()
        assert [h["event_id"] for h in history][-1] == "good-1"
        assert history[-1]["context"] == {"device": "tv", "weather": "rain", "n": 2**62}
        assert client.get("/users/mallory/history").json() == []
    assert "Traceback" not in (tmp_path / "log").read_text()


def test_an_error_answers_500_json_and_the_connection_stays_usable():
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret detail /etc/passwd")

    @app.get("/fine")
    async def fine():
        return {"ok": True}

    app.add_middleware(InternalErrors)
    with _uvicorn(app) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for path in ("/boom", "/fine", "/boom", "/fine"):  # one connection throughout
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, body = _response(sock)
            assert head.startswith(b"HTTP/1.1 500" if path == "/boom" else b"HTTP/1.1 200"), head
            assert b"connection: close" not in head.lower()
            assert (b"reference" in body and b"passwd" not in body) if path == "/boom" else b"true" in body


def test_idle_connections_cannot_lock_clients_out_beyond_the_header_timeout():
    app = FastAPI()

    @app.get("/fine")
    async def fine():
        return {"ok": True}

    header_timeout = 1.5
    with _uvicorn(app, http=guarded_protocol(header_timeout, max_connections=20)) as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]  # never send a byte
        idle[0].sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\n")  # headers never finished (slowloris)
        time.sleep(0.3)
        busy = httpx.get(f"http://127.0.0.1:{port}/fine", timeout=5)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and busy.json()["detail"]
        start = time.monotonic()
        while httpx.get(f"http://127.0.0.1:{port}/fine", timeout=5).status_code != 200:
            assert time.monotonic() - start < header_timeout + 2.0, "locked out beyond the header timeout"
            time.sleep(0.1)
        closed = sum(1 for s in idle if _closed_by_server(s))
        assert closed == len(idle)
        for s in idle:
            s.close()


def test_failed_authentication_is_rate_limited_and_secrets_stay_out_of_logs_and_health(served_demo, tmp_path):
    retriever, _, _ = served_demo
    token = add_key(tmp_path / "keys.json", "reader", ("recommendations:read",))
    args = ("--retriever", str(retriever), "--db", str(tmp_path / "events.sqlite"), "--llm", "none",
            "--keys", str(tmp_path / "keys.json"))
    with ServerProcess(*args, log=tmp_path / "log") as server, server.client() as client:
        public = client.get("/health").json()
        assert "where" not in public["event_store"] and str(tmp_path) not in str(public)
        trusted = client.get("/health", headers={"Authorization": f"Bearer {token}"}).json()
        assert trusted["event_store"]["where"].endswith("events.sqlite")
        assert client.get(f"/users/u0001/history?token={token}&k=1").status_code == 401
        codes = [client.get("/users/u0001/history", headers={"Authorization": "Bearer wrong"}).status_code
                 for _ in range(30)]
        assert codes[0] == 401 and 429 in codes
        ok = client.get("/users/u0001/history", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200  # the guesser's address is limited, a real key is not
    log = (tmp_path / "log").read_text()
    assert "token=[redacted]" in log and token not in log


def test_redact_removes_secret_query_values_only():
    assert redact("/a?token=abc&k=5&api_key=x y") == "/a?token=[redacted]&k=5&api_key=[redacted] y"
    assert redact("/users/key/history?limit=3") == "/users/key/history?limit=3"


class _uvicorn:
    """A real uvicorn server in a thread on a free loopback port."""

    def __init__(self, app, **options):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **options))

    def __enter__(self) -> int:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        until = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < until, "uvicorn did not start"
            time.sleep(0.05)
        return self.port

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _response(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_two_minutes_of_hostile_events_through_five_restarts(served_demo, store, tmp_path, request):
    retriever, ds, _ = served_demo
    db = str(tmp_path / "events.sqlite") if store == "sqlite" else request.getfixturevalue("postgres").create_database("soak")
    args = ("--retriever", str(retriever), "--db", db, "--llm", "none", "--rate-limit", "0", "--failed-auth-rate", "0")
    report = hostile_soak(lambda: ServerProcess(*args, log=tmp_path / "log").start(), list(ds.catalog.ids[:50]),
                          duration_s=120, restarts=5)
    assert report["server_errors"] == 0 and report["hostile_accepted"] == 0, report["statuses"]
    assert len(report["restarts"]) == 5 and all(r["missing_acknowledged"] == 0 for r in report["restarts"])
    assert report["acknowledged_good"] > 100
