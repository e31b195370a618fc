"""Models that keep up with time: `promptrec retriever fit --events` writes a model version from the live store,
and a running server swaps to it (POST /admin/reload, --watch), rolls back in one call, and loses nothing while
it does: concurrent readers and writers see no failed request through three swaps, every acknowledged event is
in its user's history after each, and answers after a swap come from the new version."""

import threading
import time

import pytest
from typer.testing import CliRunner

from promptrec import generate_demo
from promptrec.cli.main import app
from promptrec.retriever.fitting import RetrieverSettings
from promptrec.serve.auth import add_key
from promptrec.serve.model_swap import parse_duration
from promptrec.testing.process import ServerProcess
from promptrec.serve.refit import refit_version
from promptrec.serve.versions import ModelVersions

FAST = RetrieverSettings(signals=("transition", "trending", "time_context", "habit"), tune=False)


@pytest.fixture(scope="module")
def demo_small():
    return generate_demo(n_users=80, seed=11).dataset


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_swaps_under_load_lose_nothing(demo_small, tmp_path):
    ds, folder, db = demo_small, tmp_path / "models", str(tmp_path / "events.sqlite")
    first = refit_version(ds, None, folder, settings=FAST)
    keys = tmp_path / "keys.json"
    rw, admin = add_key(keys, "app"), add_key(keys, "ops", ("admin",))
    users, items = [str(u) for u in ds.interactions.users[:30]], [str(i) for i in ds.catalog.ids[:60]]
    now = (ds.interactions.time_range()[1]).isoformat()
    failures, acked, answers = [], {}, []  # answers: (asked at, model_version)
    stop = threading.Event()
    with ServerProcess("--retriever", str(folder), "--db", db, "--llm", "none", "--keys", str(keys),
                       "--rate-limit", "0", log=tmp_path / "log") as server:
        assert server.client().get("/health").json()["model"]["version"] == first

        def writer(w):
            with server.client(headers=_bearer(rw)) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    event = {"user_id": users[(w * 7 + n) % len(users)], "item_id": items[(w + n * 3) % len(items)],
                             "event_id": f"w{w}-{n}", "timestamp": now}
                    try:
                        r = c.post("/events", json=event)
                        if r.status_code != 200:
                            failures.append(("post", r.status_code, r.text[:200]))
                        else:
                            acked[event["event_id"]] = event["user_id"]
                    except Exception as exc:  # noqa: BLE001 - a failed request fails the test
                        failures.append(("post", repr(exc)))

        def reader(r_):
            with server.client(headers=_bearer(rw)) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    asked = time.monotonic()
                    try:
                        r = c.get(f"/recommendations/{users[(r_ + n) % len(users)]}", params={"now": now, "k": 5})
                        if r.status_code != 200:
                            failures.append(("get", r.status_code, r.text[:200]))
                        else:
                            answers.append((asked, r.json()["model_version"]))
                    except Exception as exc:  # noqa: BLE001
                        failures.append(("get", repr(exc)))

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=reader, args=(r,)) for r in range(3)]
        for t in threads:
            t.start()
        swaps = []
        with server.client(headers=_bearer(admin)) as ops, server.client(headers=_bearer(rw)) as c:
            for _ in range(3):
                time.sleep(1.5)
                version = refit_version(ds, db, folder, settings=FAST)  # the live events are in this one
                if swaps:
                    swaps[-1][2] = time.monotonic()  # the previous version's window ends as this swap begins
                r = ops.post("/admin/reload")
                assert r.status_code == 200 and r.json()["version"] == version, r.text
                swaps.append([time.monotonic(), version, float("inf")])
                # every event acknowledged so far is in its user's history, now from the new version
                done = dict(acked)
                for user in set(done.values()):
                    ids = {h["event_id"] for h in c.get(f"/users/{user}/history", params={"limit": 10_000}).json()}
                    assert {e for e, u in done.items() if u == user} <= ids, user
            assert c.get("/admin/reload").status_code == 405
            assert c.post("/admin/reload").status_code == 403  # the app key lacks the admin scope
            time.sleep(1.0)
            stop.set()
            for t in threads:
                t.join()
            swaps[-1][2] = time.monotonic()
            back = ops.post("/admin/rollback").json()
            assert back["version"] == swaps[1][1] and back["rolled_back"] == swaps[2][1]
            assert c.get("/health").json()["model"]["version"] == swaps[1][1]
            assert ModelVersions(folder).newest() == swaps[1][1]  # a watcher would not bring it back
    assert not failures, failures[:5]
    assert len(acked) > 50 and len(answers) > 50
    for start, version, end in swaps:  # asked after the swap returned, before the next began
        after = [v for t, v in answers if start < t < end]
        assert after and set(after) == {version}, (version, set(after))
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in log and log.count("now serving model version") == 4


def test_fit_from_a_store_writes_a_version_and_watch_serves_it(tmp_path):
    ds, folder, db = generate_demo().dataset, tmp_path / "models", str(tmp_path / "events.sqlite")  # the CLI's demo
    refit_version(ds, None, folder, settings=FAST)
    with ServerProcess("--retriever", str(folder), "--db", db, "--llm", "none", "--watch", "--watch-every", "0.5",
                       log=tmp_path / "log") as server, server.client() as client:
        user, item = str(ds.interactions.users[0]), str(ds.catalog.ids[5])
        assert client.post("/events", json={"user_id": user, "item_id": item, "event_id": "live-1",
                                            "timestamp": "2030-01-01T12:00:00Z"}).status_code == 200
        result = CliRunner().invoke(app, ["retriever", "fit", "--events", db, "--versions", str(folder),
                                          "--signals", "transition,trending", "--root", str(tmp_path / "idx")])
        assert result.exit_code == 0, result.output
        newest = ModelVersions(folder).newest()
        manifest = ModelVersions(folder).manifest(newest)
        assert manifest.events["store"] == 1 and manifest.store_seq == 1
        assert manifest.data_window["last"].startswith("2030-01-01") and manifest.code_version
        until = time.monotonic() + 30
        while client.get("/health").json()["model"]["version"] != newest:
            assert time.monotonic() < until, "--watch did not serve the new version"
            time.sleep(0.2)
        history = client.get(f"/users/{user}/history").json()
        assert [h for h in history if h["event_id"] == "live-1"] and len(
            [h for h in history if h["item_id"] == item and h["timestamp"].startswith("2030")]) == 1  # not twice
        assert client.post("/admin/rollback").status_code == 200
    with ServerProcess("--retriever", str(folder), "--db", db, "--llm", "none", log=tmp_path / "log") as server:
        health = server.client().get("/health").json()
        assert health["model"]["version"] != newest and health["events_stored"] == 1


def test_durations_read_as_people_write_them():
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1d") == 86400
    assert parse_duration("2.5") == 2.5
    with pytest.raises(ValueError, match="e.g. 30m"):
        parse_duration("soon")


def test_a_fit_still_writing_is_not_a_version_rollback_can_pick(tmp_path):
    """A concurrent fit's staging folder already holds its manifest before it is renamed into place."""
    for name in ("20261201T000000Z", "20261202T000000Z", ".20261203T000000Z.partial-123"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "version.json").write_text("{}")
    versions = ModelVersions(tmp_path)
    assert versions.all() == ["20261201T000000Z", "20261202T000000Z"]
    assert versions.before("20261202T000000Z") == "20261201T000000Z"
    assert versions.before("20261201T000000Z") is None
