"""The prequential replay (promptrec.eval.replay): no leakage, refit cadence, new-item freshness, config checks."""

from __future__ import annotations

import pandas as pd
import pytest

from promptrec.data.demo import generate_demo
from promptrec.data.splits import HeldOut
from promptrec.eval.config import ConfigError, load_config, parse_config
from promptrec.eval.pipelines import score_records
from promptrec.eval.replay import NEVER, Arm, Replay, _copy, replay_settings
from promptrec.eval.targets import EvalTarget

FAST = {"name": "r", "kind": "retriever", "signals": ["trending", "habit", "transition"], "tune": False}


def _config(**split):
    return parse_config({"dataset": "demo", "pipelines": [FAST],
                         "split": {"name": "replay", "test_days": 4, "valid_days": 3, **split}})


@pytest.fixture(scope="module")
def ds():
    return generate_demo(n_users=60, mean_events=20).dataset


@pytest.fixture(scope="module")
def replay(ds):
    cfg = _config(refit_every_days=[NEVER, 2])
    return Replay(cfg, ds, None, replay_settings(cfg.split.options)).run()


def test_a_target_is_ranked_with_only_the_events_before_it(ds, replay):
    assert replay.targets and replay.days == 4
    frozen = next(a for a in replay.arms if a.cadence == NEVER)
    by = {r["i"]: r for r in frozen.records}
    start_model = replay.fit(frozen.pipeline, 0)
    frame = ds.interactions.frame
    for t in replay.targets[:: max(1, len(replay.targets) // 12)]:
        # the model as of the period's start, given exactly the events strictly before the target
        model = _copy(start_model)
        model.add_events(frame[(frame["timestamp"] >= replay.start) & (frame["timestamp"] < t.now)])
        assert not (model.history(t.user_id)["timestamp"] >= t.now).any()
        assert score_records(model, [t], "full", 10)[0] == by[t.index]


def test_day_start_sees_only_the_days_before(ds):
    cfg = _config(refit_every_days=[NEVER], live_until="day_start")
    r = Replay(cfg, ds, None, replay_settings(cfg.split.options)).run()
    by = {x["i"]: x for x in r.arms[0].records}
    model = r.fit(r.arms[0].pipeline, 0)
    frame = ds.interactions.frame
    for day in range(r.days):
        todo = [t for t in r.targets if r.day_of[t.index] == day]
        assert score_records(model, todo, "full", 10) == [by[t.index] for t in todo]
        model.add_events(frame[(frame["timestamp"] >= r.bounds[day]) & (frame["timestamp"] < r.bounds[day + 1])])


def test_refit_arms_refit_at_their_cadence_and_the_frozen_arm_never(replay):
    arms = {a.cadence: a for a in replay.arms}
    assert arms[NEVER].fitted_days == [0] and len(arms[NEVER].fit_seconds) == 1
    assert arms[2].fitted_days == [0, 2]
    assert len(arms[2].fit_seconds) == 1  # day 0 is the frozen arm's model, copied
    # each model's own log: the events before its fit day (the live ones came through add_events)
    assert len(arms[NEVER].model.events) == len(replay.ds.interactions.before(replay.bounds[0]))
    assert len(arms[2].model.events) == len(replay.ds.interactions.before(replay.bounds[2]))
    assert len(arms[2].model.events) > len(arms[NEVER].model.events)


def test_freshness_by_hand():
    t0 = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    h = pd.Timedelta(hours=1)
    targets = [EvalTarget(0, HeldOut("a", "old", t0 - h)), EvalTarget(1, HeldOut("b", "old", t0 + h)),
               EvalTarget(2, HeldOut("c", "new", t0 + 2 * h)), EvalTarget(3, HeldOut("d", "new", t0 + 5 * h))]
    r = Replay.__new__(Replay)
    r.targets = targets
    arm = Arm(None, NEVER, records=[{"i": 0, "rank": 0, "top": ["old"]},
                                    {"i": 1, "rank": 0, "top": ["old", "new"]},  # first in a top 10: 1 hour
                                    {"i": 2, "rank": 3, "top": ["old", "x", "y", "new"]},  # a hit
                                    {"i": 3, "rank": 20, "top": ["old"]}])  # a miss
    f = r.freshness(arm, {"new": t0, "never": t0})
    assert f["hours_to_first_top10"] == {"new": 1.0, "never": None}
    assert f["recommended"] == 1 and f["later_events_as_targets"] == 2 and f["share_in_top10"] == 0.5


def test_config_parses_and_bad_replay_configs_are_named(tmp_path):
    cfg = load_config("eval/configs/demo_replay.yaml")
    s = replay_settings(cfg.split.options)
    assert s.refit_every_days[0] == NEVER and s.step_days == 1
    for bad, key in (({"refit_every_days": [7, 1]}, "refit_every_days"),
                     ({"refit_every_days": [NEVER, "weekly"]}, "refit_every_days"),
                     ({"step_days": 2, "refit_every_days": [NEVER, 3]}, "refit_every_days"),
                     ({"live_until": "tomorrow"}, "live_until"), ({"refit_days": [1]}, "refit_days"),
                     ({"users": 0}, "users")):
        with pytest.raises(ConfigError, match=f"split.{key}"):
            _config(**bad)


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of ``text``, each a list of rows of cells (the separator row included)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip()[1:-1].split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_the_report_tables_are_well_formed_and_list_the_frozen_arm_first(replay, tmp_path):
    import json

    from promptrec.eval.replay_report import _plain, build_replay_results, markdown, rewrite_markdown

    res = build_replay_results(replay, {"command": "promptrec eval r.yaml", "config": {"name": "r"},
                                        "dataset": "demo", "seconds": 1.0})
    # results written before the writer put the baseline first list the refitted arm first: reversed here
    res["arms"] = dict(reversed(list(res["arms"].items())))
    res["freshness"] = dict(reversed(list(res["freshness"].items())))
    text = markdown(res, [])
    tables = _tables(text)
    assert len(tables) == 5
    for table in tables:
        header, separator = table[0], table[1]
        assert all(set(c) == {"-"} for c in separator) and len(separator) == len(header), table[:2]
        assert all(len(row) == len(header) for row in table[2:]), table
    frozen, refitted = "r, frozen", "r, refit every 2 days"
    for table in (tables[0], tables[-1]):  # over the period; new items
        assert [row[0] for row in table[2:]] == [frozen, refitted]
    assert tables[3][0][3:] == [frozen, refitted]  # NDCG@10 by day: the frozen arm's column first
    (tmp_path / "results.json").write_text(json.dumps(res, default=_plain))
    assert rewrite_markdown(tmp_path).read_text() == text
