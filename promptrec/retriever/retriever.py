"""TimeAwareRetriever: candidates for a user in a context (time, device, place) from switchable signals.

    retriever = TimeAwareRetriever().fit(split.train, catalog, index, log=split.full)
    retriever.tune(split.validation)                 # learned blend (LightGBM) or linear weights, held out in time
    retriever.retrieve("u42", now="2024-04-01T20:00Z", k=50)
    retriever.retrieve("u42", context=Context("2024-04-01T20:00Z", device="tv", location=(40.75, -73.98)))

Signals score every catalogue item; above ``POOL_AUTO_ITEMS`` items (``pool="auto"``) they score only
each request's candidate pool, gathered cheaply first (promptrec.retriever.pool).

It never looks at events at or after ``now``: user histories and global statistics
(trending, time of day, first-seen times) are cut strictly before it. Whether a user's own
past items can be recommended again (``repeats``) is a property of the data: ``"auto"``
decides from the repeat rate of the training log.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from promptrec.context import Context, resolve_context
from promptrec.data.candidate import Candidate
from promptrec.data.catalog import Catalog
from promptrec.data.context_columns import declared_context
from promptrec.data.interactions import Interactions, epoch_ns, to_utc
from promptrec.data.repeats import REPEAT_THRESHOLD, repeat_rate
from promptrec.data.splits import HeldOut
from promptrec.heap import return_freed_memory
from promptrec.retriever import persistence, scoring, tuning
from promptrec.retriever.choice import (DEFAULT_SIGNALS, REPEAT_SIGNALS, SCENE_SIGNALS,  # noqa: F401 (old path)
                                        auto_signals, item_vectors)
from promptrec.retriever.clock import order_params, refuse_clock
from promptrec.retriever.event_log import TimeIndexedLog
from promptrec.retriever.features import FeatureBuilder
from promptrec.retriever.learned import LearnedBlend, RankerConfig, RankingRows
from promptrec.retriever.live import LiveHistories
from promptrec.retriever.persistence import FORMAT_VERSION  # noqa: F401 (old path)
from promptrec.retriever.pool import POOL_AUTO_ITEMS, CandidatePool, PoolConfig, resolve_pool
from promptrec.retriever.scoring import MIN_INT, ScoredBatch, time_order  # noqa: F401 (old path)
from promptrec.retriever.signals import FitData, Query, Signal, column_of, local_hour_dow, make_signal
from promptrec.retriever.tuning import TUNE_METHODS  # noqa: F401 (old path)

BATCH = 256  # requests scored together (fewer for large catalogues: see TimeAwareRetriever.batch_size)
BATCH_CELLS = BATCH * 20_000  # (requests x items) cells per batch: each signal's scores are one such matrix
POOL_BATCH = 8  # requests scored together with candidate pools (a batch's signals score the union of its pools)
REPEATS = ("auto", "allow", "exclude")


class TimeAwareRetriever:
    """Blends time, sequence, personal-habit and scene signals into one ranking (learned or linear)."""

    def __init__(self, signals: Iterable[str | Signal] | str = "auto", weights: dict[str, float] | None = None,
                 params: dict[str, dict[str, Any]] | None = None, repeats: str = "auto",
                 stats_resolution_s: float = 3600.0, pool: PoolConfig | dict | str | None = "auto",
                 context: Sequence[str] = ()):
        if repeats not in REPEATS:
            raise ValueError(f"repeats={repeats!r}; choose one of {REPEATS}.")
        self._extra: list[str | Signal] = []
        if not isinstance(signals, str):
            signals = list(signals)
            if any(isinstance(s, str) and s == "auto" for s in signals):  # ["auto", "sasrec"]: auto plus more
                self._extra = [s for s in signals if not (isinstance(s, str) and s == "auto")]
                signals = "auto"
        self._requested = signals
        # declared context columns: those of the training log (load_dataset(..., context=...)), else these
        self._context = tuple(context)
        self.context_columns: tuple[str, ...] = self._context
        self._params = params or {}
        self.signals: dict[str, Signal] = {}
        if signals != "auto":
            self._build_signals(signals)
        self.weights = {n: 1.0 for n in self.signals} | (weights or {})
        self._fixed_weights = weights or {}
        self.repeats = repeats
        # everybody's statistics (trending, time of day, area) are taken at the start of now's slot of this
        # length: computed once per slot, not per query (0: exactly at now); user histories are always exact
        self.stats_resolution_s = float(stats_resolution_s)
        # candidate pools: "auto" pools catalogues above POOL_AUTO_ITEMS items; None / "off" never; a PoolConfig
        # (or "on", or a dict of its settings) always
        self._pool_setting = resolve_pool(pool)
        self.pool: CandidatePool | None = None
        self.repeat_rate: float | None = None
        self.allow_repeats = repeats == "allow"
        self.ranker: LearnedBlend | None = None
        self.tuning: dict[str, Any] | None = None
        # per later validation target, the objective of the better (by mean) of the blends the last tuning
        # compared there, learned or linear (None when it tuned on all targets): what optional signals are judged by
        self._stop_each: np.ndarray | None = None
        self.catalog: Catalog | None = None
        self.events: Interactions | None = None
        self.log: TimeIndexedLog | None = None
        self.fitted_on: dict[str, Any] = {}
        self.release_ns: np.ndarray | None = None
        self.available_from_first_event = False
        self._fit_inputs: tuple[Interactions, Any] | None = None

    def _build_signals(self, signals: Iterable[str | Signal]) -> None:
        self.signals = {}
        for s in signals:
            if isinstance(s, Signal):
                self.signals[s.name] = s
            else:
                self.signals[s] = make_signal(s, self._params.get(s, {}))

    # -- fitting ----------------------------------------------------------------------
    def fit(self, train: Interactions, catalog: Catalog, index: Any = None, *, log: Interactions | None = None,
            ) -> "TimeAwareRetriever":
        """Learn the signals' statistics from ``train``; ``log`` (default ``train``) is the event log whose
        past (before each ``now``) feeds user histories and time-dependent global statistics."""
        codes = catalog.codes_of(train.frame["item_id"])
        known = codes >= 0
        frame = train.frame if known.all() else train.frame.loc[known]  # no copy of a log whose items are all known
        base = self.prepare_fit(train, catalog, index, repeat_rate(frame))
        data = replace(base, train_users=frame["user_id"].to_numpy(), train_codes=codes[known].astype(np.int64),
                       train_times=epoch_ns(frame["timestamp"]),
                       train_devices=None if base.train_devices is None else frame["device"].to_numpy(dtype=object),
                       train_context={c: frame[c].to_numpy(dtype=object) for c in base.train_context})
        for s in self.signals.values():
            s.fit(data)
        self.finish_fit(data, train, int(known.sum()))
        self.use_log(log if log is not None else train)
        return self

    def prepare_fit(self, train: Interactions, catalog: Catalog, index: Any, rate: float, *,
                    refittable: bool = True) -> FitData:
        """What a fit settles before reading events (repeats from ``rate``, the log's repeat rate; signals; context
        columns; release times): the FitData's catalogue part. ``refittable``: tuning may refit on earlier windows."""
        self.catalog = catalog
        self._fit_inputs = (train, index) if refittable else None  # for refits when tuning (not saved)
        columns = train.frame.columns
        coords = catalog.coordinates()
        declared = declared_context(train) or self._context
        self.repeat_rate = rate
        self.allow_repeats = self.repeats == "allow" or (self.repeats == "auto" and rate >= REPEAT_THRESHOLD)
        if self._requested == "auto":
            signals, self._params = auto_signals(
                has_index=index is not None, has_coords=coords is not None, has_devices="device" in columns,
                declared=declared, allow_repeats=self.allow_repeats, times_known=train.times_known,
                params=self._params, extra=self._extra)
            self._build_signals(signals)
            self.weights = {n: 1.0 for n in self.signals} | self._fixed_weights
        if not train.times_known:
            if self._requested != "auto":  # rebuilt without weighting by elapsed time, then checked
                self._params = order_params(self._params)
                self._build_signals(self._requested)
            refuse_clock(self.signals)
        self.context_columns = tuple(dict.fromkeys([*declared, *filter(None, map(column_of, self.signals))]))
        vectors = item_vectors(self.signals, catalog, index)
        release = catalog.frame["release_time"]
        release_ns = np.where(release.isna(), MIN_INT, epoch_ns(release.fillna(pd.Timestamp(0, tz="UTC"))))
        self.release_ns = release_ns.astype(np.int64)
        self.available_from_first_event = catalog.items_from_events
        none = np.zeros(0, dtype=object)
        return FitData(none, np.zeros(0, np.int64), len(catalog), vectors, list(catalog.frame["categories"]),
                       self.release_ns, np.zeros(0, np.int64), coords, none if "device" in columns else None,
                       train.timezone, {c: none for c in self.context_columns if c in columns})

    def finish_fit(self, data: FitData, train: Interactions, events: int) -> None:
        """After the signals are fitted: the candidate pool (item vectors only) and the record of the fit."""
        pooled = self._pool_setting
        if pooled == "auto":
            pooled = PoolConfig() if len(self.catalog) > POOL_AUTO_ITEMS else None
        self.pool = None if pooled is None else CandidatePool(pooled).fit(data)
        self.fitted_on = {"train_events": events, "items": len(self.catalog),
                          "train_time_range": [str(t) for t in (train.time_range() or ())],
                          "repeat_rate": round(self.repeat_rate, 4), "repeats": self.repeats,
                          "allow_repeats": self.allow_repeats, "times_known": train.times_known}

    def use_log(self, log: Interactions) -> None:
        """Set the event log that histories and global statistics are read from (always cut before ``now``)."""
        self.events = log
        # per row of the log (sorted by user): item code (-1: unknown), local hour and weekday, in compact types
        self._row_codes = self.catalog.codes_of(log.frame["item_id"])
        hour, dow = local_hour_dow(log._ts, log.timezone)
        self._row_hour, self._row_dow = hour.astype(np.int8), dow.astype(np.int8)
        del hour, dow
        self.log = TimeIndexedLog(log, self.catalog, resolution_ns=int(self.stats_resolution_s * 1e9),
                                  codes=self._row_codes, calendar=(self._row_hour, self._row_dow))
        self.live = LiveHistories(self.catalog.ids)
        self.features = FeatureBuilder(self.signals, self.log)
        return_freed_memory()  # the fit's and the log's temporaries: the process keeps what the retriever keeps

    # -- live events ------------------------------------------------------------------
    def add_events(self, events: pd.DataFrame) -> None:
        """Add events that happened after fitting (user_id, item_id, tz-aware timestamp, optional
        event_type, weight and context columns): the next query sees them in the user's history and in
        trending, time-of-day and first-seen statistics, always only before its ``now``. Items must be in
        the catalogue (refit with a larger catalogue to add items)."""
        self._require_fitted()
        if not len(events):
            return
        frame = events.copy()
        frame["user_id"], frame["item_id"] = frame["user_id"].astype(str), frame["item_id"].astype(str)
        raw = frame["timestamp"]
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            frame["timestamp"] = raw.dt.tz_convert("UTC")
        else:
            naive = [i for i, v in enumerate(raw) if pd.Timestamp(v).tzinfo is None]
            if naive:
                raise ValueError(f"{len(naive)} event timestamp(s) have no time zone (e.g. row {naive[0]}: "
                                 f"{raw.iloc[naive[0]]!r}); give one, e.g. '2024-05-01T18:00:00Z'.")
            frame["timestamp"] = pd.to_datetime(raw, utc=True)
        frame["event_type"] = frame["event_type"] if "event_type" in frame else "interaction"
        frame["weight"] = frame["weight"].astype(float) if "weight" in frame else 1.0
        codes = self.catalog.frame.index.get_indexer(frame["item_id"].to_numpy())
        if (codes < 0).any():
            unknown = frame["item_id"][codes < 0].unique().tolist()
            raise KeyError(f"{len(unknown)} item id(s) not in the catalogue (e.g. {unknown[:3]}); only catalogue "
                           "items can be added as events.")
        times = epoch_ns(frame["timestamp"])
        self.log.extend(times, codes)
        self.live.add(frame, times, codes)

    def has_user(self, user_id: Any) -> bool:
        """Whether the user has any event, fitted or live."""
        return self.events.has_user(user_id) or user_id in self.live

    def history(self, user_id: Any, before: Any = None) -> pd.DataFrame:
        """The user's events (fitted log and live ones) in time order, strictly before ``before`` if given."""
        base = self.events.history(user_id, before)
        if user_id not in self.live:
            return base
        live = self.live.frame(user_id, None if before is None else to_utc(before).value)
        if not len(live):
            return base
        both = pd.concat([base, live], ignore_index=True) if len(base) else live
        return both.sort_values("timestamp", kind="stable").reset_index(drop=True)

    # -- queries ------------------------------------------------------------------------
    def _query(self, user: str | pd.DataFrame, context: Any, user_id: str | None = None) -> Query:
        ctx = Context.of(context)
        now_ns = ctx.now_ns
        if not isinstance(user, pd.DataFrame):  # fast path: the user's history from the log's arrays
            sl = self.events.user_slice(user)
            stop = sl.start + int(np.searchsorted(self.events._ts[sl], now_ns, side="left"))
            codes, times = self._row_codes[sl.start:stop].astype(np.int64), self.events._ts[sl.start:stop]
            hours, dows = self._row_hour[sl.start:stop].astype(np.int64), self._row_dow[sl.start:stop].astype(np.int64)
            known = codes >= 0
            codes, times, hours, dows = codes[known], times[known], hours[known], dows[known]
            if user in self.live:
                live_codes, live_times = self.live.arrays(user, now_ns)
                codes, times = np.concatenate([codes, live_codes]), np.concatenate([times, live_times])
                order = np.argsort(times, kind="stable")
                codes, times = codes[order], times[order]
                hours = dows = None  # recomputed from the merged times
            return Query(str(user), now_ns, codes, times, ctx.device, ctx.location, hours, dows, ctx.extras)
        hist = user[user["timestamp"] < ctx.now]
        uid = user_id or (str(hist["user_id"].iloc[0]) if len(hist) and "user_id" in hist else "")
        hist = hist[hist["item_id"].isin(self.catalog.frame.index)]
        return Query(uid, now_ns, self.catalog.codes(hist["item_id"].to_numpy()), epoch_ns(hist["timestamp"]),
                     ctx.device, ctx.location, extras=ctx.extras)

    def explain(self, user: str | pd.DataFrame, context: Any, item_ids: Sequence[str]) -> list:
        """Facts about each candidate for an LLM's prompt, all from before ``now``
        (:class:`promptrec.retriever.evidence.CandidateEvidence`, one per item id, in order)."""
        from promptrec.retriever.evidence import explain

        self._require_fitted()
        return explain(self, self._query(user, context), item_ids)

    def score_queries(self, queries: list[Query], exclude_seen: bool | None = None, columns: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Blended scores (batch x items; excluded items -inf) and, for the linear blend, each signal's
        weighted contribution. With a learned blend only the candidates (each signal's top-N, or the boolean
        ``columns`` mask given) are scored; the rest are -inf."""
        return self._scores(queries, scoring.exclusion(self, queries, exclude_seen), columns, exclude_seen)

    def _scores(self, queries: list[Query], exclude: np.ndarray, columns: np.ndarray | None = None,
                exclude_seen: bool | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """score_queries with the exclusion mask already computed: scores (and the linear blend's contributions)
        of every item."""
        scored = scoring.score_batch(self, queries, exclude, columns, exclude_seen)
        n = len(self.catalog)
        return scored.full(scored.total, n), {k: scored.full(v, n, 0.0) for k, v in scored.contrib.items()}

    def retrieve(self, user: str | pd.DataFrame, now: Any = None, k: int = 100, exclude_seen: bool | None = None,
                 *, context: Context | None = None) -> list[Candidate]:
        """Top-k candidates for a user id (history from the log) or a history frame, at ``now`` or in a
        ``context`` (time, device, location, declared context columns in ``extras``)."""
        return self.retrieve_many([(user, resolve_context(now, context))], k=k, exclude_seen=exclude_seen)[0]

    @property
    def batch_size(self) -> int:
        """Requests scored together: ``BATCH``, fewer where the catalogue is large, so that a batch's dense
        (requests x items) score matrices stay within ``BATCH_CELLS`` cells each (memory, not results:
        every request's scores are its own); ``POOL_BATCH`` with a candidate pool."""
        if self.pool is not None:
            return POOL_BATCH
        return max(1, min(BATCH, BATCH_CELLS // max(1, len(self.catalog))))

    def retrieve_many(self, requests: Sequence[tuple[str | pd.DataFrame, Any]], k: int = 100,
                      exclude_seen: bool | None = None, progress: bool = False) -> list[list[Candidate]]:
        """Top-k for many (user, now or Context) requests, scored together in batches (in time order, so that
        a batch shares everybody's statistics; answers come back in the order asked)."""
        self._require_fitted()
        contexts = [Context.of(ctx) for _, ctx in requests]
        order = time_order([c.now_ns for c in contexts])
        out: list[list[Candidate]] = [[] for _ in requests]
        size = self.batch_size
        for start in tqdm(range(0, len(requests), size), disable=not progress, desc="retrieving", unit="batch"):
            at = order[start:start + size]
            queries = [self._query(requests[j][0], contexts[j]) for j in at]
            scored = scoring.score_batch(self, queries, exclude_seen=exclude_seen)
            for i, cands in enumerate(scoring.top_candidates(self, scored, k)):
                out[at[i]] = cands
        return out

    def true_item_ranks(self, targets: Sequence[HeldOut], history: Any = None, exclude_seen: bool | None = None,
                        progress: bool = False) -> np.ndarray:
        """0-based rank of each target's true item among all recommendable items: the input to HR/NDCG/MRR."""
        from promptrec.metrics import true_ranks

        self._require_fitted()
        order = time_order([t.now for t in targets])
        ranks = np.zeros(len(targets), dtype=int)
        size = self.batch_size
        for start in tqdm(range(0, len(targets), size), disable=not progress, desc="ranking", unit="batch"):
            at = order[start:start + size]
            batch = [targets[i] for i in at]
            total = self.score_targets(batch, history, exclude_seen)
            ranks[at] = true_ranks(total, self.catalog.codes([t.item_id for t in batch]))
        return ranks

    def score_targets(self, targets: Sequence[HeldOut], history: Any = None, exclude_seen: bool | None = None,
                      columns: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """Scores of every catalogue item (columns in catalogue order; not recommendable or not scored: -inf)
        for held-out targets: each target's user in its context. ``columns`` (item ids per target) restricts
        a learned blend to those items (e.g. the sampled candidates)."""
        self._require_fitted()
        mask = None
        if columns is not None:
            mask = np.zeros((len(targets), len(self.catalog)), dtype=bool)
            for i, items in enumerate(columns):
                mask[i, self.catalog.codes(list(items))] = True
        return self.score_queries([self._target_query(t, history) for t in targets], exclude_seen, mask)[0]

    def _target_query(self, target: HeldOut, history: Any) -> Query:
        ctx = target.context if getattr(target, "context", None) is not None else target.now
        if callable(history):
            return self._query(history(target), ctx, target.user_id)
        return self._query(target.user_id, ctx)

    # -- tuning (promptrec.retriever.tuning) and persistence (promptrec.retriever.persistence) --------------------
    def tune(self, targets: Sequence[HeldOut], history: Any = None, *, objective: str = "ndcg@10",
             method: str = "auto", ranker: RankerConfig | dict | None = None, progress: bool = False,
             optional: Sequence[str] = ()) -> dict[str, Any]:
        """Learn the blend on validation ``targets`` (held out in time).

        ``lightgbm``: a lambdarank model over the signals' features (promptrec.retriever.learned), trained on
        the earlier targets and stopped early on the later ones. ``coordinate``: linear weights by coordinate
        ascent (promptrec.retriever.blend). ``auto``: both are fitted on the earlier targets and compared on
        the later ones; the learned blend is kept only if it is better there beyond noise (a one-sided paired
        test at 5%), else the linear one (its weights then re-tuned on all targets).

        ``optional``: signals that must earn their place: the blend is also tuned without them, and they are
        dropped from the retriever unless the blend with them is better on the later validation targets."""
        return tuning.tune(self, targets, history, objective=objective, method=method, ranker=ranker,
                           progress=progress, optional=optional)

    def ranking_rows(self, targets: Sequence[HeldOut], history: Any = None, top_n: int | None = None,
                     progress: bool = False, desc: str = "features") -> RankingRows:
        """The learned blend's rows for ``targets``: each signal's top ``top_n`` (default: the fitted blend's, else
        RankerConfig's) plus the user's own items where repeats are allowed, with their features; targets whose
        truth is not among them are left out (counted in ``queries_without_truth``; ``targets`` says which are kept)."""
        return tuning.ranking_rows(self, targets, history, top_n, progress, desc)

    def _ranker_config(self, ranker: RankerConfig | dict | None) -> RankerConfig:
        return tuning.ranker_config(self, ranker)

    def _earlier_window_rows(self, start: Any, end: Any, cfg: RankerConfig, progress: bool) -> list:
        return tuning.earlier_window_rows(self, start, end, cfg, progress)

    def save(self, path: str | Path) -> Path:
        """Write config, weights, the learned blend, fitted state, catalogue and log to a folder."""
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "TimeAwareRetriever":
        """A retriever written by :meth:`save`."""
        return persistence.load(cls, path)

    def _require_fitted(self) -> None:
        if self.log is None:
            raise RuntimeError("the retriever is not fitted: call fit(train, catalog, index) first.")

    def describe(self) -> dict[str, Any]:
        return {"signals": {n: s.params for n, s in self.signals.items()}, "weights": self.weights,
                "blend": "learned (LightGBM)" if self.ranker is not None else "linear",
                "pool": None if self.pool is None else self.pool.config.to_dict(),
                "repeats": {"setting": self.repeats, "training_repeat_rate": self.repeat_rate,
                            "allowed": self.allow_repeats},
                "fitted_on": self.fitted_on, "tuned": None if self.tuning is None else
                {k: self.tuning[k] for k in ("method", "objective", "validation_targets") if k in self.tuning}}

