"""Schemathesis fuzzes `promptrec serve` from its own /openapi.json, with keys and without: no 5xx, every
response (status, headers, body) as the spec documents it. What it found is kept as regression tests below."""

import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from promptrec.data.interactions import Interactions
from promptrec.serve.auth import add_key
from promptrec.testing.process import ServerProcess

EXAMPLES = 40  # per operation and per server; bounded for CI (about a minute in all)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _declared_retriever(served_demo, folder):
    """A retriever of the demo with its weather declared as context: /recommendations takes ?weather= too."""
    from promptrec.data.context_columns import declare_context
    from promptrec.data.splits import leave_last_out
    from promptrec.retriever.retriever import TimeAwareRetriever

    ds = served_demo[1]
    split = leave_last_out(declare_context(Interactions(ds.interactions.frame.copy(), seed=ds.interactions.seed,
                                                        timezone=ds.interactions.timezone, _sorted=True), ["weather"]))
    return TimeAwareRetriever(signals=["trending", "context-weather"]).fit(split.train, ds.catalog,
                                                                         log=split.full).save(folder)


def _server(served_demo, tmp_path_factory, keyed: bool, declared: bool = False):
    retriever, _, _ = served_demo
    tmp = tmp_path_factory.mktemp("fuzz-keyed" if keyed else "fuzz-declared" if declared else "fuzz-open")
    if declared:
        retriever = _declared_retriever(served_demo, tmp / "retriever")
    extra, headers = [], {}
    if keyed:
        token = add_key(tmp / "keys.json", "fuzzer")
        extra, headers = ["--keys", str(tmp / "keys.json")], {"Authorization": f"Bearer {token}"}
    server = ServerProcess("--retriever", str(retriever), "--db", str(tmp / "events.sqlite"), "--llm", "none",
                           "--rate-limit", "0", "--failed-auth-rate", "0", *extra, log=tmp / "log")
    return server, headers, tmp / "log"  # not started: callers use it as a context manager


@pytest.fixture(scope="module", params=["open", "keyed", "declared"])
def live(request, served_demo, tmp_path_factory):
    server, headers, log = _server(served_demo, tmp_path_factory, request.param == "keyed",
                                   request.param == "declared")
    with server:
        yield server, headers
    assert "Traceback" not in log.read_text(), "the server logged an internal error; see " + str(log)


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_api_conforms_to_its_spec_and_never_fails(live, mode, served_demo):
    """Valid (positive) and invalid (negative) requests for every operation; all of schemathesis' default
    checks. (Its pytest plugin does not load under pytest 9, so each operation runs its strategy here.)"""
    server, headers = live
    spec = schemathesis.openapi.from_url(server.url + "/openapi.json", headers=headers)
    operations = [result.ok() for result in spec.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /events", "GET /recommendations/{user_id}", "GET /users/{user_id}/history", "GET /health",
        "POST /admin/reload", "POST /admin/rollback"}
    items = list(served_demo[1].catalog.ids[:50])

    def storable(value):
        return value if not isinstance(value, str) or "1678" <= value[:4] <= "2261" else "2024-05-01T18:00:00Z"

    def with_key(case):  # negative cases that send a well-formed key send a real one (missing keys stay missing)
        bearer = (case.headers or {}).get("Authorization", "")
        if headers and bearer.startswith("Bearer "):
            case.headers["Authorization"] = headers["Authorization"]
        return case

    def valid_by_description(case):
        """What JSON Schema cannot say, the spec says in words: events name catalogue items, and times lie
        between 1678 and 2261 (pandas' nanosecond range), lat and lon come together. Valid requests are
        made to respect these."""
        with_key(case)
        if case.query and "now" in case.query:
            case.query["now"] = storable(case.query["now"])
        if case.query and ("lat" in case.query) != ("lon" in case.query):
            case.query.pop("lat", None), case.query.pop("lon", None)
        events = case.body if isinstance(case.body, list) else [case.body]
        for n, event in enumerate(events):
            if isinstance(event, dict) and isinstance(event.get("item_id"), str):
                event["item_id"] = items[(len(event["item_id"]) + n) % len(items)]
                event["timestamp"] = storable(event.get("timestamp"))
        return case

    failures = {}
    for op in operations:
        if op.path in ("/health", "/admin/rollback") and mode == schemathesis.GenerationMode.NEGATIVE:
            continue  # no inputs: nothing can be made invalid
        strategy = op.as_strategy(generation_mode=mode)
        strategy = strategy.map(valid_by_description if mode == schemathesis.GenerationMode.POSITIVE else with_key)

        @FUZZ
        @given(case=strategy)
        def check(case):
            case.call_and_validate(base_url=server.url)

        try:
            check()
        except Exception as exc:  # collect every operation's first failure, then report them all
            failures[f"{op.method.upper()} {op.path}"] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_regressions_found_by_fuzzing(served_demo, tmp_path_factory):
    """Inputs schemathesis found that once answered 500 (now 422) or broke the spec."""
    server, headers, log = _server(served_demo, tmp_path_factory, keyed=False)
    item = served_demo[1].catalog.ids[0]
    with server, server.client() as client:
        far = client.get("/recommendations/u1", params={"now": "0001-01-01T00:00:00Z"})
        assert far.status_code == 422 and "range promptrec stores" in far.json()["errors"][0]["message"]
        ancient = client.post("/events", json={"user_id": "u1", "item_id": item, "timestamp": "1000-01-01T00:00:00+00:00"})
        assert ancient.status_code == 422 and ancient.json()["errors"][0]["field"] == "event.timestamp"
        not_utf8 = client.post("/events", content=b"\xff\xfe\x1dT", headers={"Content-Type": "application/json"})
        assert not_utf8.status_code == 400 and "not valid JSON" in not_utf8.json()["detail"]
        assert client.get("/health").json()["events_stored"] == 0
    assert "Traceback" not in log.read_text()


def test_a_posted_event_with_odd_but_valid_values_is_served(served_demo, tmp_path_factory):
    server, headers, log = _server(served_demo, tmp_path_factory, keyed=False)
    retriever, ds, now = served_demo
    odd = {"user_id": "ü s/é\u2028r", "item_id": ds.catalog.ids[1], "timestamp": (now - pd.Timedelta(hours=1)).isoformat(),
           "weight": -1e308, "event_type": "\u2028x", "context": {"device": 7, "big": 2**63 - 1, "flag": True, "none": None}}
    with server, server.client() as client:
        assert client.post("/events", json=odd).status_code == 200
        path = "ü%20s%2Fé\u2028r"  # an id with '/' is addressed as %2F
        r = client.get(f"/recommendations/{path}", params={"now": now.isoformat()})
        assert r.status_code == 200 and r.json()["user_id"] == odd["user_id"] and r.json()["history_events"] == 1
        assert client.get(f"/users/{path}/history").json()[0]["context"] == {"device": 7, "big": 2**63 - 1, "flag": True}
    assert "Traceback" not in log.read_text()


def test_every_pattern_in_the_spec_reads_the_same_in_other_regex_flavours():
    """A pattern a client's validator cannot read is silently dropped (schemathesis, built on a Rust validator,
    then sent NUL characters as "schema-valid"). Every pattern must compile as an ECMA/Rust regex."""
    import json

    import jsonschema_rs

    from promptrec.serve.schemas import EventIn

    def patterns(node):
        if isinstance(node, dict):
            yield from ([node["pattern"]] if isinstance(node.get("pattern"), str) else [])
            for value in node.values():
                yield from patterns(value)
        elif isinstance(node, list):
            for value in node:
                yield from patterns(value)

    found = set(patterns(json.loads(json.dumps(EventIn.model_json_schema()))))
    assert found, "the event schema states its text rule as a pattern"
    for pattern in found:
        validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        assert not validator.is_valid("a\x00b") and validator.is_valid("ü s/é")
