"""Prequential replay: a retriever evaluated as it is deployed, day by day, frozen or refitted on a cadence.

    split:
      name: replay
      test_days: 15              # the replayed period: the last 15 local days (or test_start / test_end times)
      valid_days: 7              # every fit tunes its blend on the 7 days before its fit day
      step_days: 1               # the replay's step: events are added and metrics reported per step
      refit_every_days: [never, 7, 1]   # one arm per cadence and retriever pipeline ("never": frozen)
      refit_tune: null           # refits tune as the pipeline says (null), or e.g. false: keep the first blend's kind
      users: null                # a seeded sample of users whose events are targets (null: every user)
      live_until: now            # now: each target sees every event before its time, as a server that takes
                                 # events as they happen; day_start: only the events before its day
    pipelines:
      - {name: time-aware retriever, kind: retriever}

Every pipeline of the config is fitted at the period's start (the config's split at that day: train before
``valid_days``, blend tuned on them) and shares that first model across its arms. Each day, every arm's model
gets the day's events through ``add_events`` (the serving path) and ranks the day's targets: every event of
the day whose user has an earlier event, over the full catalogue (the full protocol's ranks); the retriever
reads only events strictly before each target's ``now``. An arm with cadence N refits (the eval's one fit path,
``fit_score_model`` -> ``fit_on_split``) every N days on every event before that day; the frozen arm never
refits, so it is the "live statistics only" arm. Items are in the catalogue from the start and recommendable
from their first event (as when the catalogue is updated ahead of the model).

The report (promptrec.eval.replay_report): per-day NDCG@10 / HR@10 / MRR of each arm, the paired difference of
each refitted arm against its frozen arm with 95% bootstrap intervals (over targets, and over days), and the
freshness of items first seen in the period: time from their first event to their first top 10, and the share
of their later events whose target had them in the top 10.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.splits import HeldOut, temporal_split
from promptrec.eval.config import ConfigError, EvalConfig, PipelineConfig
from promptrec.eval.pipelines import fit_score_model, score_records
from promptrec.eval.targets import EvalTarget

log = logging.getLogger("promptrec.eval.replay")
NEVER = "never"
LIVE_UNTIL = ("now", "day_start")
REPLAY_KEYS = ("test_days", "test_start", "test_end", "valid_days", "step_days", "refit_every_days", "refit_tune",
               "users", "live_until")
TOP_K = 10


@dataclass(frozen=True)
class ReplaySettings:
    test_days: int | None = 15
    test_start: str | None = None
    test_end: str | None = None
    valid_days: int = 7
    step_days: int = 1
    refit_every_days: tuple[Any, ...] = (NEVER, 7, 1)
    refit_tune: Any = None
    users: int | None = None
    live_until: str = "now"


def replay_settings(options: dict[str, Any], source: str = "<config>") -> ReplaySettings:
    """The replay split's options, checked: an unknown key or a bad value is a ConfigError naming it."""
    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: 'split.{key}': {msg}")

    unknown = sorted(set(options) - set(REPLAY_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown replay option(s) {unknown}; allowed: {list(REPLAY_KEYS)}.")
    o = dict(options)
    if o.get("test_start") is not None:
        o.setdefault("test_days", None)
    for key in ("valid_days", "step_days"):
        v = o.get(key, getattr(ReplaySettings, key))
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise fail(key, f"{v!r}: a whole number of days >= 1.")
    v = o.get("test_days", 15)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise fail("test_days", f"{v!r}: a whole number of days >= 1 (or give test_start).")
    cadences = o.get("refit_every_days", list(ReplaySettings.refit_every_days))
    cadences = cadences if isinstance(cadences, list) else [cadences]
    step = o.get("step_days", 1)
    for c in cadences:
        if c == NEVER:
            continue
        if isinstance(c, bool) or not isinstance(c, int) or c < 1 or c % step:
            raise fail("refit_every_days", f"{c!r}: 'never' or a whole number of days >= 1, a multiple of "
                                           f"step_days ({step}); e.g. [never, 7, 1].")
    if NEVER not in cadences:
        raise fail("refit_every_days", "list 'never' too: the frozen arm is what refits are compared with.")
    if len(set(map(str, cadences))) != len(cadences):
        raise fail("refit_every_days", f"{cadences}: each cadence once.")
    users = o.get("users")
    if users is not None and (isinstance(users, bool) or not isinstance(users, int) or users < 1):
        raise fail("users", f"{users!r}: a number of users >= 1, or null for every user.")
    if o.get("live_until", "now") not in LIVE_UNTIL:
        raise fail("live_until", f"{o['live_until']!r}: choose one of {list(LIVE_UNTIL)}.")
    if o.get("refit_tune") not in (None, True, False, "auto", "lightgbm", "coordinate"):
        raise fail("refit_tune", f"{o['refit_tune']!r}: null (the pipeline's own), true, false, auto, lightgbm "
                                 "or coordinate.")
    o["refit_every_days"] = tuple(sorted(cadences, key=lambda c: (0, 0) if c == NEVER else (1, -c)))
    return ReplaySettings(**o)


def arm_name(pipeline: str, cadence: Any) -> str:
    return f"{pipeline}, frozen" if cadence == NEVER else f"{pipeline}, refit every {cadence} day" + (
        "s" if cadence != 1 else "")


@dataclass
class Arm:
    """One pipeline at one refit cadence: its current model and what it ranked."""

    pipeline: PipelineConfig
    cadence: Any
    model: Any = None
    fitted_days: list[int] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # per target, in target order

    @property
    def name(self) -> str:
        return arm_name(self.pipeline.name, self.cadence)

    def due(self, day: int) -> bool:
        return day == 0 or (self.cadence != NEVER and day % self.cadence == 0)


class Replay:
    """The replayed period, its days and targets, and the arms' models as they evolve."""

    def __init__(self, cfg: EvalConfig, ds: Any, index: Any, settings: ReplaySettings, progress: bool = False):
        self.cfg, self.ds, self.index, self.s, self.progress = cfg, ds, index, settings, progress
        inter = ds.interactions
        period = temporal_split(inter, settings.test_start, test_end=settings.test_end,
                                test_days=settings.test_days, valid_days=settings.valid_days)
        self.start, self.end = pd.Timestamp(period.report["test_start"]), pd.Timestamp(period.report["test_end"] or
                                                                                        inter.time_range()[1])
        tz = inter.timezone
        bounds, t = [], self.start
        while t < self.end:
            bounds.append(t)
            t = (t.tz_convert(tz) + pd.DateOffset(days=settings.step_days)).tz_convert("UTC")
        self.bounds = bounds + [self.end]
        targets = period.test
        if settings.users is not None:
            users = sorted({h.user_id for h in targets})
            if settings.users < len(users):
                keep = set(np.random.default_rng([cfg.seed, 11]).choice(users, settings.users, replace=False))
                targets = [h for h in targets if h.user_id in keep]
        order = sorted(range(len(targets)), key=lambda i: targets[i].now.value)
        self.targets = [EvalTarget(i, targets[j]) for i, j in enumerate(order)]
        edges = np.array([b.value for b in self.bounds])
        self.day_of = np.searchsorted(edges, [t.now.value for t in self.targets], side="right") - 1
        self.arms = [Arm(p, c) for p in cfg.pipelines for c in settings.refit_every_days]

    @property
    def days(self) -> int:
        return len(self.bounds) - 1

    def fit(self, p: PipelineConfig, day: int) -> Any:
        """``p`` fitted on every event before ``day``: the config's split at that day (train before the
        ``valid_days`` before it, the blend tuned on them), with the events before the day as its log."""
        cut = self.bounds[day]
        split = temporal_split(self.ds.interactions.before(cut), cut, valid_days=self.s.valid_days)
        if day and self.s.refit_tune is not None:
            p = PipelineConfig(p.name, p.kind, {**p.options, "tune": self.s.refit_tune})
        return fit_score_model(p, split, self.ds.catalog, self.index, self.cfg.seed, self.cfg.repeats)

    def day_events(self, day: int) -> pd.DataFrame:
        inter = self.ds.interactions
        ts = inter.frame["timestamp"]
        mask = (ts >= self.bounds[day]) & (ts < self.bounds[day + 1])
        return inter.frame.loc[mask.to_numpy()]

    def run(self) -> "Replay":
        t_run = time.perf_counter()
        for day in range(self.days):
            events = self.day_events(day)
            todo = [t for t in self.targets if self.day_of[t.index] == day]
            first: dict[str, Any] = {}
            for arm in self.arms:
                if arm.due(day):
                    t0 = time.perf_counter()
                    if day == 0 and arm.pipeline.name in first:  # every arm of a pipeline starts from one model
                        arm.model = _copy(first[arm.pipeline.name])
                    else:
                        arm.model = self.fit(arm.pipeline, day)
                        arm.fit_seconds.append(round(time.perf_counter() - t0, 1))
                        if day == 0:  # kept as fitted: the other arms copy it before any event is added
                            first[arm.pipeline.name], arm.model = arm.model, _copy(arm.model)
                    arm.fitted_days.append(day)
                if self.s.live_until == "now":
                    arm.model.add_events(events)  # the retriever reads only events before each target's now
                arm.records += score_records(arm.model, todo, "full", TOP_K)
                if self.s.live_until == "day_start":
                    arm.model.add_events(events)
            if self.progress:
                log.warning("replay day %d/%d: %d targets", day + 1, self.days, len(todo))
        self.seconds = time.perf_counter() - t_run
        return self

    # -- results ------------------------------------------------------------------------
    def ranks(self, arm: Arm) -> np.ndarray:
        by = {r["i"]: r["rank"] for r in arm.records}
        return np.array([by[t.index] for t in self.targets])

    def new_items(self) -> dict[str, pd.Timestamp]:
        """Items whose first event lies in the replayed period (none before it), with that first event's time."""
        f = self.ds.interactions.frame
        first = f.groupby("item_id", observed=True)["timestamp"].min()
        fresh = first[(first >= self.start) & (first < self.end)]
        return {str(i): t for i, t in fresh.items()}

    def freshness(self, arm: Arm, new: dict[str, pd.Timestamp]) -> dict[str, Any]:
        """Per new item: hours from its first event to its first top 10 at a target's time (None: never), and
        over their later events that are targets, the share whose target had the item in its top 10."""
        by = {r["i"]: r for r in arm.records}
        first_top: dict[str, float] = {}
        hits = later = 0
        for t in self.targets:
            rec = by[t.index]
            for item in rec["top"][:TOP_K]:
                if item in new and item not in first_top:
                    first_top[item] = (t.now - new[item]).total_seconds() / 3600
            if t.item_id in new and t.now > new[t.item_id]:
                later += 1
                hits += rec["rank"] < TOP_K
        hours = {i: first_top.get(i) for i in new}
        return {"new_items": len(new), "recommended": sum(h is not None for h in hours.values()),
                "hours_to_first_top10": hours, "later_events_as_targets": later,
                "later_events_in_top10": int(hits), "share_in_top10": hits / later if later else None}


def _copy(model: Any) -> Any:
    """A copy of a fitted retriever, through its saved form (as a server loads a model version)."""
    with tempfile.TemporaryDirectory(prefix="promptrec-replay-") as tmp:
        return type(model).load(model.save(Path(tmp) / "model"))


def run_replay(cfg: EvalConfig, out: str | Path, *, progress: bool = True, command: str | None = None
               ) -> dict[str, Any]:
    """Replay the config's period (see the module docstring) and write results.json, results.md and figures
    into ``out``; returns the results."""
    import sys

    import yaml

    from promptrec.data.loaders import load_dataset
    from promptrec.eval.replay_report import build_replay_results, write_replay_report
    from promptrec.eval.runner import versions
    from promptrec.index.item_index import ItemIndex

    settings = replay_settings(cfg.split.options, cfg.source)
    bad = [p.name for p in cfg.pipelines if p.uses_llm]
    if bad:
        raise ConfigError(f"{cfg.source}: 'pipelines': the replay ranks with score pipelines only; {bad} rerank.")
    d = cfg.dataset
    ds = (load_dataset(None, domain=d.domain, **d.options) if d.is_demo else
          load_dataset(d.path, format=d.format, seed=d.tie_seed, domain=d.domain, **d.options))
    ds.interactions.require_times("split 'replay' (day by day)")
    needs_index = any(p.kind in ("content", "retriever") for p in cfg.pipelines)
    index = ItemIndex.for_catalog(ds.catalog, ds.name, root=cfg.index_root) if needs_index else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    replay = Replay(cfg, ds, index, settings, progress=progress)
    if not replay.targets:
        raise ValueError(f"replay: no targets between {replay.start} and {replay.end}; check test_days / test_start.")
    replay.run()
    meta = {"command": command or "promptrec " + " ".join(sys.argv[1:]), "config": cfg.to_dict(),
            "dataset": ds.name, "catalog_items": len(ds.catalog), "versions": versions(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(replay.seconds, 1)}
    results = build_replay_results(replay, meta)
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_replay_report(results, out)
    return results
