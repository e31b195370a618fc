"""Declared context columns (promptrec.data.context_columns): the demo's planted weather reaches the retriever's
signals and learned blend, `retrieve()`, `/recommendations` and the prompt; a column of noise earns nothing."""

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from promptrec.context import Context
from promptrec.data.context_columns import declare_context, declared_context
from promptrec.data.demo import WEATHER_BY_CATEGORY, generate_demo
from promptrec.data.interactions import Interactions
from promptrec.data.loaders import load_dataset
from promptrec.data.splits import leave_last_out, temporal_split
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.retriever.signals import ContextColumnSignal, DeviceSignal

INDOOR = [c for c, p in WEATHER_BY_CATEGORY.items() if p[2] > 0.5]  # rain most likely
OUTDOOR = [c for c, p in WEATHER_BY_CATEGORY.items() if p[0] > 0.5]  # sun most likely
BASE = ["transition", "trending", "time_context", "habit"]


@pytest.fixture(scope="module")
def small():
    """A reduced demo (150 users) with a column of noise (values independent of everything) beside the weather."""
    ds = generate_demo(n_users=150).dataset
    frame = ds.interactions.frame.copy()
    frame["noise"] = np.random.default_rng(1).choice(["a", "b", "c"], len(frame))
    events = declare_context(Interactions(frame, seed=7, timezone=ds.interactions.timezone, _sorted=True),
                             ["weather", "noise"])
    return ds, events, temporal_split(events, test_fraction=0.15, valid_fraction=0.15)


def category_of(ds):
    return np.array([ds.catalog[i].categories[0] for i in ds.catalog.ids])


def test_declaring_a_column_is_checked_and_travels_with_the_log():
    ds = load_dataset(context=["weather"])
    assert declared_context(ds.interactions) == ("weather",)
    assert declared_context(leave_last_out(ds.interactions).train) == ("weather",)  # splits keep it
    assert declared_context(load_dataset().interactions) == ()  # the demo's weather is not declared by default
    with pytest.raises(ValueError, match=r"'mood' is not in the events; they have the context columns "
                                         r"\['device', 'weather'\]"):
        load_dataset(context=["mood"])
    with pytest.raises(ValueError, match="device and location are read as context already"):
        load_dataset(context=["device"])


def test_the_device_signal_is_the_device_column_case(small):
    ds, events, split = small
    r = TimeAwareRetriever(signals=["device", ContextColumnSignal("device")]).fit(split.train, ds.catalog)
    device, column = r.signals["device"], r.signals["context-device"]
    assert isinstance(device, DeviceSignal) and list(device.devices) == ["desktop", "mobile", "tv"]
    np.testing.assert_array_equal(device.lift, column.lift)
    t = split.test[0]
    q = r._query(t.user_id, Context(t.now, device="tv", extras={"device": "tv"}))
    np.testing.assert_array_equal(device.score([q], r.log), column.score([q], r.log))


def test_weather_signal_finds_the_planted_weather_and_noise_finds_nothing(small):
    ds, events, split = small
    r = TimeAwareRetriever().fit(split.train, ds.catalog, log=split.full)  # auto: one signal per declared column
    assert {"context-weather", "context-noise"} <= set(r.signals) and r.context_columns == ("weather", "noise")
    weather, noise = r.signals["context-weather"], r.signals["context-noise"]
    cats = category_of(ds)
    rain = weather.lift[:, list(weather.values).index("rain")]
    assert rain[np.isin(cats, INDOOR)].mean() > np.log(1.5) and rain[np.isin(cats, OUTDOOR)].mean() < -np.log(3)
    # the noise: P(value | item) stays near P(value), within what an item's few events vary by chance
    assert np.abs(noise.lift).mean() < np.abs(weather.lift).mean() / 4
    t = split.test[0]
    q = [r._query(t.user_id, Context(t.now, extras={"weather": w})) for w in ("rain", "hail", None)]
    scores = weather.score(q, r.log)
    np.testing.assert_array_equal(scores[0], rain)
    assert not scores[1].any() and not scores[2].any()  # an unseen value or none: 0 everywhere


def test_retrieve_with_the_weather_ranks_the_weather_linked_items_higher(small, tmp_path):
    ds, events, split = small
    r = TimeAwareRetriever(signals=["trending", "context-weather"]).fit(split.train, ds.catalog, log=split.full)
    cats = dict(zip(ds.catalog.ids, category_of(ds)))
    t = split.test[0]

    def indoor_share(retriever, weather):
        got = retriever.retrieve(t.user_id, context=Context(t.now, extras={"weather": weather}), k=40)
        return np.mean([cats[c.item_id] in INDOOR for c in got])

    assert indoor_share(r, "rain") > indoor_share(r, "sun") + 0.4
    again = TimeAwareRetriever.load(r.save(tmp_path / "r"))  # the declaration and the signal survive a reload
    assert again.context_columns == ("weather", "noise") and indoor_share(again, "rain") == indoor_share(r, "rain")


@pytest.mark.integration
def test_the_learned_blend_finds_the_weather_and_not_the_noise(small):
    ds, events, split = small
    ranks, importance = {}, {}
    for extra in ([], ["context-weather"], ["context-noise"]):
        r = TimeAwareRetriever(signals=BASE + extra).fit(split.train, ds.catalog, log=split.full)
        r.tune(split.validation, method="lightgbm", ranker={"earlier_windows": 0, "max_rounds": 300})
        ranks[tuple(extra)] = r.true_item_ranks(split.test)
        importance.update({k: v for k, v in r.ranker.report["importance_gain_share"].items() if k in extra})
    hit = {k: (v < 10).astype(float) for k, v in ranks.items()}
    gain = hit[("context-weather",)] - hit[()]
    noise = hit[("context-noise",)] - hit[()]
    se = lambda d: d.std() / np.sqrt(len(d))  # noqa: E731 (paired, per test event)
    print(f"HR@10 {hit[()].mean():.4f} -> weather {hit[('context-weather',)].mean():.4f} (+{gain.mean():.4f} SE "
          f"{se(gain):.4f}), noise {hit[('context-noise',)].mean():.4f} ({noise.mean():+.4f} SE {se(noise):.4f}); "
          f"importance {importance}; {len(gain)} test events")
    assert gain.mean() > 0.02 and gain.mean() > 3 * se(gain)
    assert abs(noise.mean()) < 0.02 and abs(noise.mean()) < 3 * se(noise)
    assert importance["context-weather"] > 0.04 and importance["context-weather"] > 1.5 * importance["context-noise"]


def test_recommendations_take_declared_columns_as_query_parameters(small, tmp_path):
    from promptrec.serve.app import create_app
    from promptrec.serve.service import RecommendationService
    from promptrec.serve.store import EventStore

    ds, events, split = small
    r = TimeAwareRetriever(signals=["trending", "context-weather"]).fit(split.train, ds.catalog, log=split.full)
    t = split.test[0]
    with TestClient(create_app(RecommendationService(r, EventStore(tmp_path / "events.sqlite")))) as client:
        def ask(**params):
            return client.get(f"/recommendations/{t.user_id}", params={"now": t.now.isoformat(), "k": 10, **params})

        rain, sun = ask(weather="rain"), ask(weather="sun")
        assert rain.status_code == 200 and rain.json()["context"] == {"weather": "rain"}
        assert [i["item_id"] for i in rain.json()["items"]] != [i["item_id"] for i in sun.json()["items"]]
        bad = ask(mood="happy")
        assert bad.status_code == 422 and "mood" in bad.text and "weather" in bad.text
        assert ask(weather="").status_code == 422
        spec = client.get("/openapi.json").json()
        params = spec["paths"]["/recommendations/{user_id}"]["get"]["parameters"]
        assert "weather" in [p["name"] for p in params]


def test_the_prompt_states_declared_context_only(demo):
    from promptrec.prompt.builder import PromptBuilder

    ds = demo.dataset
    split = leave_last_out(ds.interactions)
    t = split.test[0]
    hist, cands = split.history(t), [ds.catalog[i] for i in ds.catalog.ids[:3]]
    ctx = Context(t.now, extras={"weather": "rain"})
    plain = PromptBuilder(timezone=ds.interactions.timezone)
    declared = PromptBuilder(timezone=ds.interactions.timezone, context_columns=["weather"])
    for task in ("listwise", "label_scoring", "pointwise"):
        kw = {"candidate": cands[0]} if task == "pointwise" else {}
        before = plain.build(task, hist, cands, t.now, ds.catalog, **kw).text
        assert plain.build(task, hist, cands, ctx, ds.catalog, **kw).text == before  # undeclared: not shown
        shown = declared.build(task, hist, cands, ctx, ds.catalog, **kw).text
        now_line = next(line for line in before.splitlines() if line.startswith("It is now"))
        assert shown == before.replace(now_line, now_line + "\nWeather: rain")


def test_cli_and_eval_configs_declare_columns_too(tmp_path):
    import yaml

    from promptrec.cli.common import load
    from promptrec.eval.config import load_config

    assert declared_context(load(None, "demo", context="weather").interactions) == ("weather",)
    path = tmp_path / "c.yaml"

    def config(dataset):
        path.write_text(yaml.safe_dump({"dataset": dataset, "pipelines": [{"name": "r", "kind": "retriever"}]}))
        return load_config(path)

    declared = config({"path": "demo", "context": ["weather"]})
    assert declared.dataset.options == {"context": ["weather"]}  # handed to load_dataset with the other options
    # a config without context columns keeps its fingerprint (its cached results stay valid)
    assert config({"path": "demo", "context": []}).fingerprint() == config({"path": "demo"}).fingerprint()
    assert declared.fingerprint() != config({"path": "demo"}).fingerprint()


def test_eval_llm_prompts_state_the_declared_columns(tmp_path, default_model_dir):
    from promptrec.eval.config import parse_config
    from promptrec.eval.runner import EvalRun

    cfg = parse_config({"dataset": {"path": "demo", "context": ["weather"]},
                        "pipelines": [{"name": "r", "kind": "retriever"},
                                      {"name": "llm", "kind": "rerank", "retriever": "r", "backend": "transformers",
                                       "model": str(default_model_dir)}]})
    run = EvalRun(cfg, tmp_path / "out", progress=False).load()
    reranker = run._reranker(cfg.pipelines[1])
    assert reranker.builder.context_columns == ("weather",)  # a held-out event's weather: a line of its prompt
