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

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from promptrec import __version__
from promptrec.context import Context, resolve_context
from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions, epoch_ns, to_utc
from promptrec.data.repeats import REPEAT_THRESHOLD, repeat_rate
from promptrec.data.splits import HeldOut
from promptrec.eval.metrics import gain_beyond_noise
from promptrec.retriever.blend import blend, objective_values, standardize, tune_weights
from promptrec.retriever.candidate import Candidate
from promptrec.retriever.event_log import TimeIndexedLog
from promptrec.retriever.features import FeatureBuilder
from promptrec.retriever.learned import AUTO_EARLIER_WINDOWS, LearnedBlend, RankerConfig, RankingRows
from promptrec.retriever.live import LiveHistories
from promptrec.retriever.pool import POOL_AUTO_ITEMS, CandidatePool, PoolConfig, PooledColumns, pack_rows, resolve_pool
from promptrec.retriever.signals import SIGNALS, FitData, Query, Signal, local_hour_dow
from promptrec.retriever.signals.base import columns_of, scores_on

DEFAULT_SIGNALS = ("content", "transition", "trending", "time_context", "freshness", "habit")
SCENE_SIGNALS = ("place", "device")  # added by signals="auto" where the data has coordinates / devices
REPEAT_SIGNALS = ("returns",)  # added by signals="auto" where the user's own items may be recommended again
BATCH = 256  # requests scored together (fewer for large catalogues: see TimeAwareRetriever.batch_size)
BATCH_CELLS = BATCH * 20_000  # (requests x items) cells per batch: each signal's scores are one such matrix
POOL_BATCH = 8  # requests scored together with candidate pools (a batch's signals score the union of its pools)
FORMAT_VERSION = 2
MIN_INT = np.iinfo(np.int64).min
REPEATS = ("auto", "allow", "exclude")
TUNE_METHODS = ("auto", "lightgbm", "coordinate")


@dataclass
class ScoredBatch:
    """A batch's blended scores: ``total`` (batch x columns; -inf: not ranked), the columns' item codes
    (``items``; None: every item in catalogue order) and what each score is made of: each signal's weighted
    z-score (``contrib``, linear blend) or the feature arrays (``feats``, learned blend)."""

    total: np.ndarray
    items: np.ndarray | None
    contrib: dict[str, np.ndarray]
    feats: dict[str, np.ndarray] | None = None

    def full(self, values: np.ndarray, n_items: int, fill: float = -np.inf) -> np.ndarray:
        """``values`` (batch x columns) as (batch x every item), ``fill`` outside the columns."""
        if self.items is None:
            return values
        out = np.full((len(values), n_items), fill, dtype=values.dtype)
        out[:, self.items] = values
        return out


def time_order(nows: Sequence[Any]) -> np.ndarray:
    """Positions of ``nows`` from earliest to latest. Batches of requests close in time share everybody's
    statistics, which signals compute once per slot (an hour) per batch: scoring the NYC test targets in
    time order made about 300 such computations instead of 2,100."""
    return np.argsort(np.array([pd.Timestamp(n).value for n in nows], dtype=np.int64), kind="stable")


class TimeAwareRetriever:
    """Blends time, sequence, personal-habit and scene signals into one ranking (learned or linear)."""

    def __init__(self, signals: Iterable[str | Signal] | str = "auto", weights: dict[str, float] | None = None,
                 params: dict[str, dict[str, Any]] | None = None, repeats: str = "auto",
                 stats_resolution_s: float = 3600.0, pool: PoolConfig | dict | str | None = "auto"):
        if repeats not in REPEATS:
            raise ValueError(f"repeats={repeats!r}; choose one of {REPEATS}.")
        self._extra: list[str | Signal] = []
        if not isinstance(signals, str):
            signals = list(signals)
            if any(isinstance(s, str) and s == "auto" for s in signals):  # ["auto", "sasrec"]: auto plus more
                self._extra = [s for s in signals if not (isinstance(s, str) and s == "auto")]
                signals = "auto"
        self._requested = signals
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
            elif s in SIGNALS:
                self.signals[s] = SIGNALS[s](**self._params.get(s, {}))
            else:
                raise ValueError(f"unknown signal {s!r}; choose from {sorted(SIGNALS)}.")

    # -- fitting ----------------------------------------------------------------------
    def fit(self, train: Interactions, catalog: Catalog, index: Any = None, *, log: Interactions | None = None,
            ) -> "TimeAwareRetriever":
        """Learn the signals' statistics from ``train``; ``log`` (default ``train``) is the event log whose
        past (before each ``now``) feeds user histories and time-dependent global statistics."""
        self.catalog = catalog
        self._fit_inputs = (train, index)  # for refits on earlier windows when tuning (not saved)
        known = train.frame["item_id"].isin(catalog.frame.index).to_numpy()
        frame = train.frame.loc[known]
        coords = catalog.coordinates()
        devices = frame["device"].to_numpy(dtype=object) if "device" in frame.columns else None
        self.repeat_rate = repeat_rate(frame)
        self.allow_repeats = self.repeats == "allow" or (self.repeats == "auto" and self.repeat_rate >= REPEAT_THRESHOLD)
        if self._requested == "auto":
            scene = [n for n, ok in (("place", coords is not None), ("device", devices is not None)) if ok]
            returns = list(REPEAT_SIGNALS) if self.allow_repeats else []
            self._build_signals(list(DEFAULT_SIGNALS if index is not None else
                                     [s for s in DEFAULT_SIGNALS if s != "content"]) + scene + returns + self._extra)
            self.weights = {n: 1.0 for n in self.signals} | self._fixed_weights
        vectors = None
        readers = [n for n, s in self.signals.items() if s.needs_item_vectors]
        if readers:
            if index is None:
                raise ValueError(f"signal(s) {readers}: each needs an ItemIndex for its item vectors "
                                 "(fit(..., index=...)), or leave them out of signals.")
            missing = [i for i in catalog.ids if i not in index]
            if missing:
                raise ValueError(f"{len(missing)} catalog items are not in the index (e.g. {missing[:3]}); "
                                 "update the index with index.add(catalog).")
            vectors = index.vectors(list(catalog.ids))
        release = catalog.frame["release_time"]
        release_ns = np.where(release.isna(), MIN_INT, epoch_ns(release.fillna(pd.Timestamp(0, tz="UTC"))))
        self.release_ns = release_ns.astype(np.int64)
        self.available_from_first_event = catalog.items_from_events
        data = FitData(frame["user_id"].to_numpy(), catalog.codes(frame["item_id"].to_numpy()), len(catalog),
                       vectors, list(catalog.frame["categories"]), self.release_ns, epoch_ns(frame["timestamp"]),
                       coords, devices, train.timezone)
        for s in self.signals.values():
            s.fit(data)
        pooled = self._pool_setting
        if pooled == "auto":
            pooled = PoolConfig() if len(catalog) > POOL_AUTO_ITEMS else None
        self.pool = None if pooled is None else CandidatePool(pooled).fit(data)
        self.fitted_on = {"train_events": int(known.sum()), "items": len(catalog),
                          "train_time_range": [str(t) for t in (train.time_range() or ())],
                          "repeat_rate": round(self.repeat_rate, 4), "repeats": self.repeats,
                          "allow_repeats": self.allow_repeats}
        self.use_log(log if log is not None else train)
        return self

    def use_log(self, log: Interactions) -> None:
        """Set the event log that histories and global statistics are read from (always cut before ``now``)."""
        self.events = log
        self.log = TimeIndexedLog(log, self.catalog, resolution_ns=int(self.stats_resolution_s * 1e9))
        self._row_codes = self.catalog.frame.index.get_indexer(log.frame["item_id"].to_numpy())  # -1: unknown
        self._row_hour, self._row_dow = local_hour_dow(log._ts, log.timezone)
        self.live = LiveHistories(self.catalog.ids)
        self.features = FeatureBuilder(self.signals, self.log)

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
        self.log.extend(times, codes, frame["weight"].to_numpy())
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
            codes, times = self._row_codes[sl.start:stop], self.events._ts[sl.start:stop]
            hours, dows = self._row_hour[sl.start:stop], self._row_dow[sl.start:stop]
            known = codes >= 0
            codes, times, hours, dows = codes[known], times[known], hours[known], dows[known]
            if user in self.live:
                live_codes, live_times = self.live.arrays(user, now_ns)
                codes, times = np.concatenate([codes, live_codes]), np.concatenate([times, live_times])
                order = np.argsort(times, kind="stable")
                codes, times = codes[order], times[order]
                hours = dows = None  # recomputed from the merged times
            return Query(str(user), now_ns, codes, times, ctx.device, ctx.location, hours, dows)
        hist = user[user["timestamp"] < ctx.now]
        uid = user_id or (str(hist["user_id"].iloc[0]) if len(hist) and "user_id" in hist else "")
        hist = hist[hist["item_id"].isin(self.catalog.frame.index)]
        return Query(uid, now_ns, self.catalog.codes(hist["item_id"].to_numpy()), epoch_ns(hist["timestamp"]),
                     ctx.device, ctx.location)

    def explain(self, user: str | pd.DataFrame, context: Any, item_ids: Sequence[str]) -> list:
        """Facts about each candidate for an LLM's prompt, all from before ``now``
        (:class:`promptrec.retriever.evidence.CandidateEvidence`, one per item id, in order)."""
        from promptrec.retriever.evidence import explain

        self._require_fitted()
        return explain(self, self._query(user, context), item_ids)

    def _z_scores(self, queries: list[Query], exclude: np.ndarray, pooled: PooledColumns | None = None,
                  ) -> dict[str, np.ndarray]:
        """Each signal's z-scores over the catalogue (``exclude``: items that are not), or over a pooled batch's
        columns with the catalogue's scale estimated from each request's pool and the reference sample."""
        items, weight = (None, None) if pooled is None else (pooled.items, pooled.weight)
        return {n: standardize(scores_on(s, queries, self.log, items), exclude, weight)
                for n, s in self.signals.items()}

    def _pool_columns(self, queries: list[Query], columns: np.ndarray | None = None,
                      exclude_seen: bool | None = None) -> PooledColumns | None:
        """Without a candidate pool None: every item is scored. With one, the batch's columns: its requests' pools
        and the reference sample; the boolean ``columns`` (batch x items, e.g. sampled candidates) join each
        request's pool."""
        if self.pool is None:
            return None
        repeats = self.allow_repeats if exclude_seen is None else not exclude_seen
        pools = self.pool.gather(queries, self.log, self.signals, self.release_ns, repeats)
        if columns is not None:
            pools = [np.union1d(p, np.flatnonzero(c)) for p, c in zip(pools, columns)]
        return self.pool.columns(pools, len(self.catalog))

    def _exclude(self, queries: list[Query], exclude_seen: bool | None = None, items: np.ndarray | None = None,
                 ) -> np.ndarray:
        """Items that cannot be recommended: items not yet available at ``now`` (released after it, or, for
        items without a release time in a catalogue built from the events, nobody used them before it), and,
        unless repeats are allowed, the items the user has already consumed. Columns: every item, or ``items``."""
        exclude_seen = (not self.allow_repeats) if exclude_seen is None else exclude_seen
        cols = slice(None) if items is None else items
        release, first_seen = self.release_ns[cols], self.log.first_seen[cols]
        unknown = release == MIN_INT
        mask = np.zeros((len(queries), len(release)), dtype=bool)
        for i, q in enumerate(queries):
            unseen = first_seen >= q.now_ns
            mask[i] = unseen & ((release > q.now_ns) | (unknown & self.available_from_first_event))
            if exclude_seen:
                own = q.codes if items is None else columns_of(items, q.codes)
                mask[i, own[own >= 0]] = True
        return mask

    def score_queries(self, queries: list[Query], exclude_seen: bool | None = None, columns: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Blended scores (batch x items; excluded items -inf) and, for the linear blend, each signal's
        weighted contribution. With a learned blend only the candidates (each signal's top-N, or the boolean
        ``columns`` mask given) are scored; the rest are -inf."""
        return self._scores(queries, self._exclude(queries, exclude_seen), columns, exclude_seen)

    def _scores(self, queries: list[Query], exclude: np.ndarray, columns: np.ndarray | None = None,
                exclude_seen: bool | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """score_queries with the exclusion mask already computed: scores (and the linear blend's contributions)
        of every item."""
        scored = self._score_batch(queries, exclude, columns, exclude_seen)
        n = len(self.catalog)
        return scored.full(scored.total, n), {k: scored.full(v, n, 0.0) for k, v in scored.contrib.items()}

    def _score_batch(self, queries: list[Query], exclude: np.ndarray | None = None, columns: np.ndarray | None = None,
                     exclude_seen: bool | None = None) -> ScoredBatch:
        """Blended scores of every item, or, with a candidate pool, of the batch's pooled items (a request's
        scores are -inf outside its own pool; the learned blend's top-N are taken within it, the linear blend's
        z-scores on the catalogue's estimated scale). ``exclude``: the (batch x every item) mask of
        :meth:`_exclude` if already made."""
        pooled = self._pool_columns(queries, columns, exclude_seen)
        items = None if pooled is None else pooled.items
        if exclude is None:
            exclude = self._exclude(queries, exclude_seen, items)
        elif items is not None:
            exclude = exclude[:, items]
        unavailable = exclude
        if pooled is not None:
            exclude = exclude | ~pooled.own
            columns = None if columns is None else columns[:, items]
        if self.ranker is not None:
            total, feats = self._learned_scores(queries, exclude, columns, items)
            return ScoredBatch(total, items, {}, feats)
        z = self._z_scores(queries, unavailable, pooled)
        contrib = {n: self.weights.get(n, 0.0) * v for n, v in z.items()}
        total = blend(z, self.weights)
        total[exclude] = -np.inf
        return ScoredBatch(total, items, contrib)

    def _learned_scores(self, queries: list[Query], exclude: np.ndarray, columns: np.ndarray | None = None,
                        items: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        feats = self.features.build(queries, items)
        cells = (self.features.candidates(feats, exclude, self.ranker.config.top_n, queries, items)
                 if columns is None else columns & ~exclude)
        rows, cols = np.nonzero(cells)
        total = np.full(exclude.shape, -np.inf)
        X = self.features.matrix(feats, rows, cols, self.ranker.feature_names)
        if len(rows):
            total[rows, cols] = self.ranker.predict(X)
        return total, feats

    def retrieve(self, user: str | pd.DataFrame, now: Any = None, k: int = 100, exclude_seen: bool | None = None,
                 *, context: Context | None = None) -> list[Candidate]:
        """Top-k candidates for a user id (history from the log) or a history frame, at ``now`` or in a
        ``context`` (time, device, location)."""
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
        ids, size = self.catalog.ids, self.batch_size
        for start in tqdm(range(0, len(requests), size), disable=not progress, desc="retrieving", unit="batch"):
            at = order[start:start + size]
            queries = [self._query(requests[j][0], contexts[j]) for j in at]
            scored = self._score_batch(queries, exclude_seen=exclude_seen)
            total, column_ids = scored.total, ids if scored.items is None else ids[scored.items]
            kk = min(k, total.shape[1])
            if kk == 0:
                continue
            if scored.items is None:
                top = np.argpartition(-total, kk - 1, axis=1)[:, :kk]
                rows = [top[i][np.argsort(-total[i, top[i]], kind="stable")] for i in range(len(queries))]
                rows = [row[np.isfinite(total[i, row])] for i, row in enumerate(rows)]
            else:  # ties go to the lower item code, whatever else shares the batch's columns
                ranked = [np.flatnonzero(np.isfinite(row)) for row in total]
                rows = [cols[np.argsort(-total[i, cols], kind="stable")[:kk]] for i, cols in enumerate(ranked)]
            if self.ranker is not None:
                qi = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)]).astype(int)
                cols = np.concatenate(rows).astype(int) if rows else np.zeros(0, int)
                parts = self.ranker.contributions(
                    self.features.matrix(scored.feats, qi, cols, self.ranker.feature_names)) if len(cols) else []
                pos = 0
                for i, row in enumerate(rows):
                    out[at[i]] = [Candidate(str(column_ids[c]), float(total[i, c]), r + 1, parts[pos + r])
                                  for r, c in enumerate(row)]
                    pos += len(row)
            else:
                names = list(scored.contrib)
                for i, row in enumerate(rows):  # each candidate's contributions as Python floats, a row at a time
                    parts = np.stack([scored.contrib[n][i, row] for n in names], axis=1).tolist() if names else []
                    out[at[i]] = [Candidate(str(column_ids[c]), float(total[i, c]), r + 1,
                                            dict(zip(names, parts[r])) if names else {}) for r, c in enumerate(row)]
        return out

    def true_item_ranks(self, targets: Sequence[HeldOut], history: Any = None, exclude_seen: bool | None = None,
                        progress: bool = False) -> np.ndarray:
        """0-based rank of each target's true item among all recommendable items: the input to HR/NDCG/MRR."""
        from promptrec.eval.metrics import true_ranks

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

    # -- tuning -----------------------------------------------------------------------
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
        self._require_fitted()
        if method not in TUNE_METHODS:
            raise ValueError(f"method={method!r}; choose one of {TUNE_METHODS}.")
        unknown = sorted(set(optional) - set(self.signals))
        if unknown:
            raise ValueError(f"optional signal(s) {unknown} are not in this retriever ({sorted(self.signals)}).")
        if optional and not set(self.signals) - set(optional):
            raise ValueError("every signal is optional: leave at least one signal out of `optional`.")
        if optional and method == "coordinate":
            raise ValueError("optional signals are judged on the later validation targets, which coordinate ascent "
                             "tunes on: use method='auto' or 'lightgbm'.")
        tuning = self._tune_blend(targets, history, objective, method, ranker, progress)
        if optional:
            self._judge_optional(list(optional), tuning, targets, history, objective, method, ranker, progress)
        return self.tuning

    def _can_refit(self) -> bool:
        """Whether copies of this retriever can be fitted on earlier events: fitted in this process, with
        signals given by name."""
        return self._fit_inputs is not None and not any(
            isinstance(s, Signal) for s in ([] if self._requested == "auto" else self._requested) + self._extra)

    def _ranker_config(self, ranker: RankerConfig | dict | None) -> RankerConfig:
        """The learned blend's settings with ``earlier_windows="auto"`` resolved: AUTO_EARLIER_WINDOWS when the
        retriever can be refitted and no signal trains a model (each window would train it again), else 0.
        Windows that have no earlier training events are skipped where they are built. Resolved for each blend
        tuned: without optional signals that train a model, the blend can use the windows that one with them
        could not, and the verdict compares the two blends a user would get."""
        cfg = ranker if isinstance(ranker, RankerConfig) else RankerConfig.from_dict(ranker)
        if cfg.earlier_windows != "auto":
            return cfg
        trained = any(s.trains_model for s in self.signals.values())
        return replace(cfg, earlier_windows=AUTO_EARLIER_WINDOWS if self._can_refit() and not trained else 0)

    def _judge_optional(self, optional: list[str], with_them: dict[str, Any], targets: Sequence[HeldOut],
                        history: Any, objective: str, method: str, ranker: Any, progress: bool) -> None:
        """Tune again without ``optional`` and keep them only if the blend with them is better on the later
        validation targets beyond noise (a one-sided paired test at 5%, the rule that picks the learned blend
        over the linear one): a lead as small as a LightGBM seed moves the score is not a reason to keep a
        signal, least of all one that trains a model."""
        each_with = self._stop_each
        if each_with is None:  # too few targets for a later part: nothing to judge on, keep every signal
            self.tuning = with_them | {"optional_signals": {"signals": optional, "kept": True,
                                                            "reason": "too few validation targets to judge"}}
            return
        kept = (self.signals, self._extra, self._requested, self.weights, self.ranker, self.features)
        self.signals = {n: s for n, s in self.signals.items() if n not in optional}
        self._extra = [s for s in self._extra if s not in optional]
        if self._requested != "auto":  # refits on earlier windows build the same signals
            self._requested = [s for s in self._requested if (s.name if isinstance(s, Signal) else s) not in optional]
        self.features = FeatureBuilder(self.signals, self.log)
        without = self._tune_blend(targets, history, objective, method, ranker, progress)
        each_without = self._stop_each
        score_without = None if each_without is None else float(each_without.mean())
        verdict = {"signals": optional, "stop_objective_with": float(each_with.mean()),
                   "stop_objective_without": score_without,
                   "rule": "kept only if better beyond noise (one-sided paired test at 5%)",
                   "earlier_windows_used": {"with": with_them["learned"]["earlier_windows"]["used"],
                                            "without": without.get("learned", {}).get("earlier_windows", {}).get("used")},
                   "kept": score_without is None or gain_beyond_noise(each_with - each_without)}
        if verdict["kept"]:
            self.signals, self._extra, self._requested, self.weights, self.ranker, self.features = kept
            self.tuning = with_them | {"optional_signals": verdict}
        else:
            self.tuning = without | {"optional_signals": verdict}

    def _tune_blend(self, targets: Sequence[HeldOut], history: Any, objective: str, method: str,
                    ranker: RankerConfig | dict | None, progress: bool) -> dict[str, Any]:
        started = time.perf_counter()
        self.ranker = None
        cfg = self._ranker_config(ranker)
        ordered = sorted(targets, key=lambda t: t.now)
        cut = int(round(len(ordered) * (1 - cfg.stop_fraction)))
        learnable = len(self.signals) > 1 and cut >= 20 and len(ordered) - cut >= 10
        if method == "lightgbm" and not learnable:
            raise ValueError(f"the learned blend needs at least 30 validation targets and two signals "
                             f"(have {len(ordered)} and {len(self.signals)}); use method='coordinate'.")
        self._stop_each = None
        if method == "coordinate" or not learnable:
            self.tuning = self._tune_linear(ordered, history, objective, progress) | {
                "seconds": round(time.perf_counter() - started, 2)}
            return self.tuning
        early, late = ordered[:cut], ordered[cut:]
        self.weights = {n: 1.0 for n in self.signals}
        equal_score = float(self._objective(late, history, objective, None).mean())
        learned = self._train_ranker(early, late, history, cfg, progress)
        learned_each = self._objective(late, history, objective, learned)
        learned_score = float(learned_each.mean())
        self._stop_each = learned_each
        # objective_start / _end: the later validation targets with equal linear weights / the kept blend
        report: dict[str, Any] = {"objective": objective, "validation_targets": len(ordered),
                                  "fit_targets": len(early), "stop_targets": len(late), "objective_start": equal_score,
                                  "objective_end": learned_score, "learned": learned.report,
                                  "learned_stop_objective": learned_score}
        if method == "auto":
            linear = self._tune_linear(early, history, objective, progress)
            linear_each = self._objective(late, history, objective, None)
            linear_score = float(linear_each.mean())
            report |= {"linear_stop_objective": linear_score, "linear_weights_on_fit_targets": linear["weights"]}
            if linear_score > learned_score:
                self._stop_each = linear_each
            if not gain_beyond_noise(learned_each - linear_each):  # the simpler blend unless the learned one is better
                self.tuning = report | self._tune_linear(ordered, history, objective, progress) | {
                    "objective_start": equal_score, "objective_end": linear_score,
                    "method": "coordinate ascent on z-scored signals (promptrec.retriever.blend); the learned blend "
                              "was not better beyond noise on the later validation targets",
                    "seconds": round(time.perf_counter() - started, 2)}
                return self.tuning
        self.ranker = learned
        self.tuning = report | {"method": "LightGBM lambdarank over signal and context features "
                                          "(promptrec.retriever.learned)", "weights": self.weights,
                                "seconds": round(time.perf_counter() - started, 2)}
        return self.tuning

    def _batches(self, targets: Sequence[HeldOut], history: Any, progress: bool, desc: str):
        size = self.batch_size
        for start in tqdm(range(0, len(targets), size), disable=not progress, desc=desc):
            batch = targets[start:start + size]
            queries = [self._target_query(t, history) for t in batch]
            yield batch, queries, self._exclude(queries), self.catalog.codes([t.item_id for t in batch])

    def _tune_linear(self, targets: Sequence[HeldOut], history: Any, objective: str, progress: bool) -> dict[str, Any]:
        zs, trues, excl = [], [], []
        for _, queries, exclude, true_cols in self._batches(targets, history, progress, "scoring validation"):
            pooled = self._pool_columns(queries)
            if pooled is not None:  # each request's own pool, left-aligned (the batches' columns differ)
                z = self._z_scores(queries, exclude[:, pooled.items], pooled)
                exclude, true_cols = pooled.view(exclude, true_cols)
                z, exclude, true_cols = pack_rows(pooled.own, z, exclude, true_cols)
            else:
                z = self._z_scores(queries, exclude)
            zs.append(z)
            excl.append(exclude)
            trues.append(true_cols)
        width = max(e.shape[1] for e in excl)  # packed batches differ in width: pad with excluded cells
        z = {n: np.concatenate([_pad(b[n], width, 0.0) for b in zs]) for n in self.signals}
        weights, trace = tune_weights(z, np.concatenate(trues), np.concatenate([_pad(e, width, True) for e in excl]),
                                      objective=objective)
        self.weights = weights
        return {"method": "coordinate ascent on z-scored signals (promptrec.retriever.blend)",
                "objective": objective, "validation_targets": len(targets), "weights": weights,
                "objective_start": trace[0]["objective"], "objective_end": trace[-1]["objective"], "trace": trace}

    def ranking_rows(self, targets: Sequence[HeldOut], history: Any = None, top_n: int | None = None,
                     progress: bool = False, desc: str = "features") -> RankingRows:
        """The learned blend's rows for ``targets``: each signal's top ``top_n`` (default: the fitted blend's, else
        RankerConfig's) plus the user's own items where repeats are allowed, with their features; targets whose
        truth is not among them are left out (counted in ``queries_without_truth``; ``targets`` says which are kept)."""
        self._require_fitted()
        if top_n is None:
            top_n = (self.ranker.config if self.ranker is not None else RankerConfig()).top_n
        out, done = [], 0
        for batch, queries, exclude, true_cols in self._batches(targets, history, progress, desc):
            pooled = self._pool_columns(queries)
            if pooled is not None:
                exclude, true_cols = pooled.view(exclude, true_cols)
            rows = self.features.rows(queries, exclude, true_cols, top_n, None if pooled is None else pooled.items)
            out.append(replace(rows, targets=rows.targets + done))
            done += len(batch)
        return self.features.concat(out)

    def _train_ranker(self, fit: Sequence[HeldOut], stop: Sequence[HeldOut], history: Any, cfg: RankerConfig,
                      progress: bool) -> LearnedBlend:
        earlier = self._earlier_window_rows(fit[0].now if fit else None, fit[-1].now if fit else None, cfg, progress) \
            if cfg.earlier_windows else []
        parts = {name: self.ranking_rows(targets, history, cfg.top_n, progress, f"features ({name})")
                 for name, targets in (("fit", fit), ("stop", stop))}
        learned = LearnedBlend.train(self.features.concat([parts["fit"], *earlier]), parts["stop"],
                                     self.features.names, self.features.signal_of, cfg)
        learned.report["earlier_windows"] = {"asked": cfg.earlier_windows, "used": len(earlier)}
        return learned

    def _earlier_window_rows(self, start: Any, end: Any, cfg: RankerConfig, progress: bool) -> list:
        """Training rows from the windows before the validation targets' (each as long as [start, end]): for
        each, a copy of this retriever fitted on the training events before the window scores the targets in
        it, so every row sees only what was known before its window, as the validation rows do."""
        from promptrec.data.splits import temporal_split

        if not self._can_refit():
            raise ValueError("earlier_windows refits the retriever on earlier events: call fit() in this process "
                             "first, with signals given by name (not Signal objects), or set earlier_windows=0.")
        train, index = self._fit_inputs
        span = pd.Timestamp(end) - pd.Timestamp(start)
        rows = []
        for w in range(1, cfg.earlier_windows + 1 if span > pd.Timedelta(0) else 1):
            a, b = pd.Timestamp(start) - w * span, pd.Timestamp(start) - (w - 1) * span
            earlier = train.before(a)
            if not len(earlier):
                break
            targets = temporal_split(self.events, valid_start=a, test_start=b).validation
            if len(targets) < 20:
                break
            clone = TimeAwareRetriever(
                signals=["auto", *self._extra] if self._requested == "auto" else self._requested, params=self._params,
                weights=self._fixed_weights or None, repeats="allow" if self.allow_repeats else "exclude",
                stats_resolution_s=self.stats_resolution_s,
                pool=self.pool.config if self.pool is not None else None)
            clone.fit(earlier, self.catalog, index, log=self.events)
            if list(clone.signals) != list(self.signals):
                break  # the earlier events lack what a signal needs (e.g. devices): not the same features
            found = clone.ranking_rows(targets, None, cfg.top_n, progress, f"features (window -{w})")
            found.earlier_queries = len(found.groups)
            rows.append(found)
        return rows

    def _objective(self, targets: Sequence[HeldOut], history: Any, objective: str,
                   ranker: LearnedBlend | None) -> np.ndarray:
        """Each target's objective with ``ranker`` (None: the current linear weights), full ranking."""
        saved, self.ranker = self.ranker, ranker
        try:
            values = []
            for batch, queries, exclude, true_cols in self._batches(targets, history, False, ""):
                s = self._scores(queries, exclude)[0]
                values.append(objective_values(s, true_cols, ~np.isfinite(s), objective))
            return np.concatenate(values) if values else np.zeros(0)
        finally:
            self.ranker = saved

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write config, weights, the learned blend, fitted state, catalogue and log to a folder."""
        self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        dense, sparse = {}, {}
        for n, s in self.signals.items():
            for key, value in s.state().items():
                (sparse if sp.issparse(value) else dense)[f"{n}.{key}"] = value
        pool_state = {} if self.pool is None else {f"_pool.{k}": v for k, v in self.pool.state().items()}
        np.savez_compressed(path / "state.npz", **dense, **pool_state, **{"_retriever.release_ns": self.release_ns})
        for key, m in sparse.items():
            sp.save_npz(path / f"{key}.npz", m.tocsr())
        cat = self.catalog.frame.reset_index()
        cat["categories"] = cat["categories"].map(list)
        cat.to_parquet(path / "catalog.parquet", index=False)
        events = self.events if not len(self.live) else self.events.append(
            Interactions(self.live.all_frames(), seed=self.events.seed, timezone=self.events.timezone))
        events.frame.to_parquet(path / "events.parquet", index=False)  # live events included
        config = {"format_version": FORMAT_VERSION, "promptrec_version": __version__,
                  "signals": {n: s.params for n, s in self.signals.items()}, "weights": self.weights,
                  "repeats": self.repeats, "repeat_rate": self.repeat_rate, "allow_repeats": self.allow_repeats,
                  "stats_resolution_s": self.stats_resolution_s,
                  "pool": None if self.pool is None else self.pool.config.to_dict(),
                  "items_from_events": self.available_from_first_event,
                  "learned_blend": None if self.ranker is None else self.ranker.save(path),
                  "tuning": self.tuning, "fitted_on": self.fitted_on,
                  "timezone": self.events.timezone, "sparse_state": sorted(sparse), "items": len(self.catalog)}
        (path / "retriever.json").write_text(json.dumps(config, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TimeAwareRetriever":
        path = Path(path)
        if not (path / "retriever.json").exists():
            raise FileNotFoundError(f"no fitted retriever at {path}; fit and save one first (promptrec retriever fit).")
        config = json.loads((path / "retriever.json").read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} was saved in retriever format {config.get('format_version')}, this promptrec "
                             f"reads {FORMAT_VERSION}; fit and save it again (promptrec retriever fit).")
        out = cls(signals=list(config["signals"]), weights=config["weights"], params=config["signals"],
                  repeats=config["repeats"], stats_resolution_s=config.get("stats_resolution_s", 0.0),
                  pool=config.get("pool"))
        out.repeat_rate, out.allow_repeats = config["repeat_rate"], config["allow_repeats"]
        out.available_from_first_event = config["items_from_events"]
        cat = pd.read_parquet(path / "catalog.parquet")
        cat["categories"] = cat["categories"].map(tuple)
        out.catalog = Catalog(cat, items_from_events=out.available_from_first_event)
        if len(out.catalog) != config["items"]:
            raise ValueError(f"{path}: catalog.parquet has {len(out.catalog)} items, the config {config['items']}.")
        dense = dict(np.load(path / "state.npz", allow_pickle=False))
        states: dict[str, dict[str, Any]] = {n: {} for n in out.signals}
        out.release_ns = dense.pop("_retriever.release_ns")
        if config.get("pool") is not None:
            out.pool = CandidatePool(PoolConfig.from_dict(config["pool"]))
            out.pool.load_state({k.removeprefix("_pool."): dense.pop(k) for k in list(dense) if k.startswith("_pool.")},
                                len(out.catalog))
        for key, value in dense.items():
            n, _, name = key.partition(".")
            states[n][name] = value
        for key in config["sparse_state"]:
            n, _, name = key.partition(".")
            states[n][name] = sp.load_npz(path / f"{key}.npz").tocsr()
        for n, s in out.signals.items():
            s.load_state(states[n])
        out.tuning, out.fitted_on = config["tuning"], config["fitted_on"]
        if config.get("learned_blend"):
            out.ranker = LearnedBlend.load(path, config["learned_blend"])
        events = pd.read_parquet(path / "events.parquet")
        out.use_log(Interactions(events, timezone=config["timezone"], _sorted=True))
        return out

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


def _pad(a: np.ndarray, width: int, fill: Any) -> np.ndarray:
    """(rows x width): ``a`` with ``fill`` columns added on the right."""
    if a.shape[1] == width:
        return a
    return np.concatenate([a, np.full((len(a), width - a.shape[1]), fill, dtype=a.dtype)], axis=1)
