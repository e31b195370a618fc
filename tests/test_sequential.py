"""The trained sequential model (SASRec and its time-aware variant): windows, learning a planted order
and a planted clock, no leakage through the retriever, persistence and the training cache."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.data.records import Item
from promptrec.data.splits import temporal_split
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.retriever.signals import sequential as sequential_signal
from promptrec.sequential import SASRecConfig, load_model, save_model, train_sasrec, user_sequences
from promptrec.sequential.sequences import gap_buckets, query_batch, training_windows
from promptrec.sequential.train import ranking_quality

HOUR = 3_600 * 10**9
FAST = dict(dim=32, max_len=12, dropout=0.1, lr=5e-3, batch_size=64, epochs=40, patience=5, max_minutes=1)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTREC_CACHE", str(tmp_path / "cache"))


def _arrays(events: list[tuple[int, int, int]]):
    e = sorted(events)
    return (np.array([u for u, _, _ in e]), np.array([c for _, _, c in e]), np.array([t for _, t, _ in e], dtype=np.int64))


def _cycle_events(n_users=40, length=30, n_items=12, seed=0):
    """Each user walks the cycle 0 -> 1 -> ... -> n_items-1 -> 0 from a random start, at random gaps."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        t, c = 0, int(rng.integers(n_items))
        for _ in range(length):
            t += int(rng.integers(1, 48)) * HOUR
            events.append((u, t, c))
            c = (c + 1) % n_items
    return events


def _clock_events(n_users=60, length=30, seed=0):
    """The item is set by the local hour of the event (8 -> 0, 13 -> 1, 19 -> 2), hours in random order."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        for d in range(length):
            h = int(rng.choice([8, 13, 19]))
            events.append((u, d * 24 * HOUR + h * HOUR, {8: 0, 13: 1, 19: 2}[h]))
    return events


def test_windows_make_every_event_but_the_first_a_target_once():
    users, codes, times = _arrays(_cycle_events(n_users=5, length=33))
    seqs = user_sequences(users, codes, times, "UTC")
    w = training_windows(seqs, max_len=10)
    assert (w.targets > 0).sum() == sum(len(s.codes) - 1 for s in seqs)
    for row_items, row_targets in zip(w.items, w.targets):  # each target follows its input in the cycle
        real = row_targets > 0
        assert np.array_equal((row_items[real] - 1 + 1) % 12, row_targets[real] - 1)
    assert list(gap_buckets(np.array([0, 60 * 10**9, HOUR]))) == [1, 2, 6]  # 1 + floor(log2(1 + minutes))


def test_sasrec_learns_a_planted_order():
    users, codes, times = _arrays(_cycle_events())
    seqs = user_sequences(users, codes, times, "UTC")
    result = train_sasrec(seqs, 12, SASRecConfig(**FAST), progress=False)
    assert result.valid_hr10 == 1.0 and result.valid_ndcg10 > 0.9
    probe = [s for s in seqs[:10]]
    batch = query_batch(probe, 12, np.array([s.times[-1] + HOUR for s in probe]), np.zeros(10, int), np.zeros(10, int))
    predicted = result.model.score_last(batch).argmax(axis=1)
    assert np.array_equal(predicted, [(s.codes[-1] + 1) % 12 for s in probe])


def test_a_time_budget_stop_is_reported_and_warned(caplog):
    """A model cut by max_minutes says so: its quality depends on the machine's speed and load."""
    users, codes, times = _arrays(_cycle_events(n_users=10, length=10))
    seqs = user_sequences(users, codes, times, "UTC")
    with caplog.at_level("WARNING", logger="promptrec.sequential"):
        result = train_sasrec(seqs, 12, SASRecConfig(**(FAST | {"max_minutes": 1e-6})), progress=False)
    assert result.stopped_by == "time budget" and result.stop_reason == "time_budget" and result.epochs_run == 1
    assert "time budget" in caplog.text and "max_minutes" in caplog.text
    assert "still improving" in caplog.text  # the one epoch run is the best so far


@pytest.mark.parametrize("settings, reason", [({"max_minutes": 1e-6}, "time_budget"),
                                              ({"epochs": 2, "patience": 5}, "epoch_cap"),
                                              ({"epochs": 40, "patience": 1, "lr": 0.0}, "patience")])
def test_the_stop_reason_is_in_the_manifest(tmp_path, settings, reason):
    users, codes, times = _arrays(_cycle_events(n_users=10, length=10))
    seqs = user_sequences(users, codes, times, "UTC")
    result = train_sasrec(seqs, 12, SASRecConfig(**(FAST | settings)), progress=False)
    assert result.stop_reason == reason and result.summary()["stop_reason"] == reason
    save_model(result.model, tmp_path / "m", result.summary())
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["stop_reason"] == reason and manifest["training"]["stop_reason"] == reason
    _, loaded = load_model(tmp_path / "m")
    assert loaded["stop_reason"] == reason


def test_a_budget_stopped_model_is_cached_and_reused_saying_so(caplog):
    """A later fit with the same settings (a later process: nothing is kept in memory) loads the budget-stopped
    model instead of training again, and says it was budget-stopped."""
    catalog, split = _toy_dataset()
    settings = FAST | {"progress": False, "max_minutes": 1e-6, "seed": 7}
    first = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": settings}).fit(split.train, catalog)
    assert first.signals["sasrec"].training["stop_reason"] == "time_budget"
    caplog.clear()
    with caplog.at_level("WARNING", logger="promptrec.sequential"):
        again = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": settings}).fit(split.train, catalog)
    training = again.signals["sasrec"].training
    assert "from_cache" in training and training["stop_reason"] == "time_budget"
    assert "budget-stopped" in caplog.text


def test_the_default_budget_scales_with_the_data():
    from promptrec.sequential.config import default_budget_minutes

    assert SASRecConfig().max_minutes is None
    assert default_budget_minutes(100) == 10.0 and default_budget_minutes(10**6) == 120.0
    assert 10.0 < default_budget_minutes(20_000) < 120.0
    assert SASRecConfig(max_minutes=2).budget_minutes(10**6) == 2.0


def test_final_epochs_learn_the_held_out_last_events():
    """Each user's last event (item 12, seen nowhere else) is held out for early stopping; only with
    final_epochs does the kept model train on it."""
    events = _cycle_events()
    last = {}
    for u, t, _ in events:
        last[u] = max(last.get(u, 0), t)
    users, codes, times = _arrays([(u, t, 12 if t == last[u] else c) for u, t, c in events])
    seqs = user_sequences(users, codes, times, "UTC")
    cfg = dict(FAST, epochs=15, patience=15)
    plain = train_sasrec(seqs, 13, SASRecConfig(**cfg), progress=False)
    final = train_sasrec(seqs, 13, SASRecConfig(**cfg, final_epochs=5), progress=False)
    assert sum(bool(h.get("on_all_events")) for h in final.history) == 5
    probe = [type(s)(s.codes[:-1], s.times[:-1], s.hours[:-1], s.dows[:-1]) for s in seqs[:20]]
    batch = query_batch(probe, 12, np.array([s.times[-1] for s in seqs[:20]]), np.zeros(20, int), np.zeros(20, int))
    share = [np.exp(m.model.score_last(batch)) for m in (plain, final)]
    share = [(p[:, 12] / p.sum(axis=1)).mean() for p in share]
    assert share[1] > 1.5 * share[0]


def _clock_probe(seqs):
    """30 users' last events, each asked from the events before it at its own time (the hour that sets the item,
    the gap that goes with it), and the item it was."""
    probe = seqs[:30]
    before = [type(s)(s.codes[:-1], s.times[:-1], s.hours[:-1], s.dows[:-1]) for s in probe]
    last = lambda field: np.array([getattr(s, field)[-1] for s in probe])  # noqa: E731
    return query_batch(before, 12, last("times"), last("hours"), last("dows")), last("codes")


@pytest.mark.parametrize("time_init", ["zero", "random"])
def test_time_aware_variant_learns_what_the_clock_says_and_plain_sasrec_cannot(time_init):
    users, codes, times = _arrays(_clock_events())
    seqs = user_sequences(users, codes, times, "UTC")
    plain = train_sasrec(seqs, 3, SASRecConfig(**FAST), progress=False)
    timed = train_sasrec(seqs, 3, SASRecConfig(**FAST, time_aware=True, time_init=time_init), progress=False)
    batch, truth = _clock_probe(seqs)
    hr1 = lambda m: float((m.score_last(batch).argmax(axis=1) == truth).mean())  # noqa: E731
    assert hr1(timed.model) >= 0.95 and hr1(plain.model) <= 0.6


def test_zero_time_start_begins_as_plain_sasrec_and_keeps_the_cache_of_random_starts():
    """time_init='zero' (the default): before training, the time-aware model with plain SASRec's weights scores as
    plain SASRec whatever the gaps and hours; a random start's models keep the cache key they had before the setting."""
    import torch

    from promptrec.sequential import store
    from promptrec.sequential.model import SASRec

    users, codes, times = _arrays(_clock_events())
    batch, _ = _clock_probe(user_sequences(users, codes, times, "UTC"))
    plain = SASRec(3, SASRecConfig(**FAST))
    for init, same in (("zero", True), ("random", False)):
        timed = SASRec(3, SASRecConfig(**FAST, time_aware=True, time_init=init))
        missing = timed.load_state_dict(plain.state_dict(), strict=False).missing_keys
        assert missing and all(k.startswith(("input_time", "query_time")) for k in missing)
        with torch.no_grad():
            assert np.allclose(timed.score_last(batch), plain.score_last(batch), atol=1e-5) == same, init
    with pytest.raises(ValueError, match="time_init"):
        SASRecConfig(time_init="small")

    key = lambda **kw: store.fingerprint(SASRecConfig(**kw), 3, users, codes, times, "UTC")  # noqa: E731
    assert SASRecConfig().time_init == "zero" and key(time_aware=True) != key(time_aware=True, time_init="random")
    assert key(time_init="random") == key()  # a model without time embeddings: the same model, cached once

    class Before:  # the settings of a time-aware model trained before time_init existed (a random start)
        time_aware, item_init = True, "random"

        def to_dict(self):
            return {k: v for k, v in SASRecConfig(time_aware=True).to_dict().items() if k != "time_init"}

    assert key(time_aware=True, time_init="random") == store.fingerprint(Before(), 3, users, codes, times, "UTC")


def _toy_dataset():
    events = _cycle_events(n_users=30, length=24)
    ids = [f"i{c}" for c in range(12)]
    frame = pd.DataFrame({"user_id": [f"u{u}" for u, _, _ in events], "item_id": [ids[c] for _, _, c in events],
                          "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta([t for _, t, _ in events])})
    catalog = Catalog.from_items([Item(i, f"item {i}") for i in ids])
    inter = Interactions(frame)
    times = inter.frame["timestamp"].sort_values()
    split = temporal_split(inter, valid_start=times.iloc[int(0.7 * len(times))],
                           test_start=times.iloc[int(0.85 * len(times))])
    return catalog, split


def test_signal_sees_nothing_at_or_after_now_and_survives_save_and_load(tmp_path):
    catalog, split = _toy_dataset()
    params = {"sasrec_time": FAST | {"progress": False, "batch_size": 16}}
    r = TimeAwareRetriever(signals=["sasrec_time"], params=params, repeats="allow").fit(split.train, catalog,
                                                                                        log=split.full)
    assert r.signals["sasrec_time"].training["valid_users"] > 0
    targets = split.test[:20]
    before = r.score_targets(targets)
    frame, rng = split.full.frame, np.random.default_rng(1)
    for i, t in enumerate(targets[:5]):  # change everything at or after this target's now: its scores stay
        future = frame["timestamp"] >= t.now
        changed = frame.assign(item_id=np.where(future, rng.permutation(frame["item_id"].to_numpy()), frame["item_id"]))
        r.use_log(Interactions(changed))
        assert np.allclose(r.score_targets([t]), before[i:i + 1])
    r.use_log(split.full)
    hits = [r.retrieve(t.user_id, t.now, k=1)[0].item_id == t.item_id for t in targets]
    assert np.mean(hits) >= 0.9  # the cycle is learned from the training period alone
    loaded = TimeAwareRetriever.load(r.save(tmp_path / "saved"))
    loaded.use_log(r.events)
    assert np.allclose(loaded.score_targets(targets), before)


def test_training_is_cached_by_data_and_settings(tmp_path):
    catalog, split = _toy_dataset()
    fit = lambda s: TimeAwareRetriever(signals=["sasrec"], params={"sasrec": s}).fit(split.train, catalog)  # noqa
    first = fit(FAST | {"progress": False}).signals["sasrec"]
    again = fit(FAST | {"progress": False}).signals["sasrec"]
    other = fit(FAST | {"progress": False, "seed": 1}).signals["sasrec"]
    assert "from_cache" not in first.training and "from_cache" in again.training and "from_cache" not in other.training
    combined = TimeAwareRetriever(signals=["auto", "sasrec"], params={"sasrec": FAST | {"progress": False}})
    combined.fit(split.train, catalog)  # the automatic signals plus the sequential one, which the cache holds
    assert {"transition", "habit", "sasrec"} <= set(combined.signals) and "from_cache" in combined.signals["sasrec"].training
    model, manifest = load_model(save_model(first.model, tmp_path / "m", first.training))
    assert manifest["config"]["dim"] == 32 and manifest["training"]["best_epoch"] == first.training["best_epoch"]
    with pytest.raises(FileNotFoundError, match="train-sequential"):
        load_model(tmp_path / "missing")


def test_ranking_quality_counts_ties_against_the_truth():
    ndcg, hr = ranking_quality(np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), np.array([0, 1]), k=1)
    assert hr == 0.5 and ndcg == 0.5


def test_train_sequential_command_saves_a_model(tmp_path, demo):
    from promptrec.cli.main import app

    out = tmp_path / "demo-sasrec"
    res = CliRunner().invoke(app, ["train-sequential", "--out", str(out), "--epochs", "2", "--max-len", "20"])
    assert res.exit_code == 0, res.output
    model, manifest = load_model(out)
    assert manifest["dataset"] == "demo" and manifest["training"]["epochs_run"] == 2
    assert len(manifest["item_ids"]) == model.n_items
    # as a signal: queries are cut to the saved model's 20 items, and a saved retriever loads it back
    ds = demo.dataset
    r = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": {"model": str(out)}}).fit(ds.interactions, ds.catalog)
    assert r.signals["sasrec"].config.max_len == 20
    users = list(ds.interactions.frame["user_id"].unique()[:3])
    now = ds.interactions.frame["timestamp"].max()
    before = [[c.item_id for c in r.retrieve(u, now, k=5)] for u in users]
    back = TimeAwareRetriever.load(r.save(tmp_path / "ret"))
    assert [[c.item_id for c in back.retrieve(u, now, k=5)] for u in users] == before
    res = CliRunner().invoke(app, ["train-sequential", "--out", str(out), "--epochs", "2", "--max-len", "20",
                                   "--seeds", "2"])
    assert res.exit_code == 0, res.output
    model, manifest = load_model(out)
    assert len(model.members) == 2 and manifest["training"]["epochs_run"] == "2 / 2"
    res = CliRunner().invoke(app, ["train-sequential", "--out", str(out), "--epochs", "2", "--max-len", "20",
                                   "--item-init", "text", "--index-root", str(tmp_path / "indexes")])
    assert res.exit_code == 0, res.output
    assert load_model(out)[1]["config"]["item_init"] == "text" and (tmp_path / "indexes" / "demo").is_dir()
    res = CliRunner().invoke(app, ["train-sequential", "--out", str(out), "--epochs", "2", "--max-len", "20",
                                   "--time-aware", "--time-init", "random"])
    assert res.exit_code == 0, res.output
    model, manifest = load_model(out)
    assert manifest["config"]["time_aware"] and model.config.time_init == "random"
    # a manifest from before time_init: its time-aware model had the random start, and loads as such
    legacy = json.loads((out / "manifest.json").read_text())
    del legacy["config"]["time_init"]
    (out / "manifest.json").write_text(json.dumps(legacy))
    assert load_model(out)[0].config.time_init == "random"


def test_seed_ensemble_averages_cached_members_and_survives_save_and_load(tmp_path):
    """seeds=2 reuses the seed-0 model the cache already holds, trains seed 1, and scores the mean of
    both models' log-probabilities; a retriever saved with it loads the ensemble back."""
    import torch

    catalog, split = _toy_dataset()
    settings = FAST | {"progress": False}
    single = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": settings}).fit(split.train, catalog)
    r = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": settings | {"seeds": 2}}).fit(split.train, catalog)
    signal = r.signals["sasrec"]
    assert signal.training["members"] == 2 and signal.training["from_cache"] == "1 of 2 models"
    first, second = signal.model.members
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 single.signals["sasrec"].model.state_dict().values()))
    assert not torch.equal(first.item.weight, second.item.weight)  # another seed, another model
    seqs = user_sequences(*_arrays(_cycle_events(n_users=5)), "UTC")
    batch = query_batch(seqs, 12, np.array([s.times[-1] + HOUR for s in seqs]), np.zeros(5, int), np.zeros(5, int))
    log_probs = [torch.log_softmax(torch.from_numpy(m.score_last(batch)), 1).numpy() for m in (first, second)]
    assert np.allclose(signal.model.score_last(batch), (log_probs[0] + log_probs[1]) / 2, atol=1e-5)
    targets = split.test[:20]
    loaded = TimeAwareRetriever.load(r.save(tmp_path / "saved"))
    assert loaded.signals["sasrec"].model.config.seeds == 2
    assert np.allclose(loaded.score_targets(targets), r.score_targets(targets))
    model, manifest = load_model(save_model(signal.model, tmp_path / "ensemble", signal.training))
    assert len(model.members) == 2 and manifest["config"]["seeds"] == 2
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        SASRecConfig(seeds=0)


def test_text_start_keeps_items_described_alike_close():
    """item_init='text': each item starts nearest the item whose text vector is nearest its own, with the
    random start's spread; training with it needs one vector per item."""
    from promptrec.sequential.model import SASRec, text_start

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 48))
    vectors = np.repeat(centres, 6, axis=0) + 0.05 * rng.normal(size=(24, 48))  # 4 groups of 6 alike items
    start = text_start(vectors, 8)
    assert start.shape == (24, 8) and np.isclose(start.std(), 8 ** -0.5, rtol=1e-3)
    unit = start / np.linalg.norm(start, axis=1, keepdims=True)
    nearest = np.argsort(-(unit @ unit.T), axis=1)[:, 1]
    assert np.array_equal(nearest // 6, np.arange(24) // 6)
    assert text_start(vectors[:3], 8)[:, 3:].std() == 0  # fewer items than dimensions: the rest stay zero
    model = SASRec(24, SASRecConfig(dim=8, max_len=4, item_init="text"))
    model.start_items_from_text(vectors)
    assert np.allclose(model.item.weight[1:].detach().numpy(), start) and not model.item.weight[0].any()
    users, codes, times = _arrays(_cycle_events(n_users=4, length=5, n_items=12))
    seqs = user_sequences(users, codes, times, "UTC")
    with pytest.raises(ValueError, match="one text vector per item"):
        train_sasrec(seqs, 12, SASRecConfig(**FAST, item_init="text"), progress=False)
    with pytest.raises(ValueError, match="item_init"):
        SASRecConfig(item_init="glove")


def test_text_started_signal_reads_the_item_index_and_is_cached_by_its_vectors(tmp_path):
    """As a retriever signal the text start takes the index's vectors (no index: a clear error), learns the
    planted order, and the cache tells models started from other vectors apart."""
    from promptrec.index.item_index import ItemIndex
    from promptrec.sequential import store

    catalog, split = _toy_dataset()
    settings = {"sasrec": FAST | {"progress": False, "item_init": "text"}}
    with pytest.raises(ValueError, match="needs an ItemIndex"):
        TimeAwareRetriever(signals=["sasrec"], params=settings).fit(split.train, catalog)
    index = ItemIndex.build(catalog, "toy", root=tmp_path / "indexes")
    r = TimeAwareRetriever(signals=["sasrec"], params=settings, repeats="allow").fit(split.train, catalog, index,
                                                                                     log=split.full)
    assert r.signals["sasrec"].training["valid_hr10"] == 1.0
    hits = [r.retrieve(t.user_id, t.now, k=1)[0].item_id == t.item_id for t in split.test[:20]]
    assert np.mean(hits) >= 0.9
    again = TimeAwareRetriever(signals=["sasrec"], params=settings).fit(split.train, catalog, index)
    assert "from_cache" in again.signals["sasrec"].training
    random_start = TimeAwareRetriever(signals=["sasrec"], params={"sasrec": FAST | {"progress": False}})
    assert "from_cache" not in random_start.fit(split.train, catalog, index).signals["sasrec"].training
    users, codes, times = _arrays(_cycle_events(n_users=4, length=5))
    vectors = index.vectors(list(catalog.ids))
    key = lambda v: store.fingerprint(SASRecConfig(item_init="text"), 12, users, codes, times, "UTC", v)  # noqa
    assert key(vectors) != key(vectors + 1e-3) and key(vectors) == key(vectors.copy())


def test_an_ensemble_reports_why_each_member_stopped_even_from_an_old_cache():
    """Members cached before stop reasons were recorded carry only their stopped_by words: the report says
    those, never 'None'."""
    from promptrec.sequential.config import SASRecConfig
    from promptrec.sequential.ensemble import assemble
    from promptrec.sequential.model import SASRec

    members = [SASRec(5, SASRecConfig()), SASRec(5, SASRecConfig())]
    _, summary = assemble(members, [{"stopped_by": "patience"}, {"stop_reason": "time_budget", "stopped_by": "time budget"}])
    assert summary["stop_reason"] == "patience / time_budget"
