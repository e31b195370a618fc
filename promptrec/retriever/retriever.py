"""TimeAwareRetriever: candidates for a user at time ``now`` from five switchable, weighted signals.

    retriever = TimeAwareRetriever().fit(split.train, catalog, index, log=split.full)
    retriever.tune(split.validation)                 # blend weights on targets held out in time
    retriever.retrieve("u42", now="2024-04-01T20:00Z", k=50)

It never looks at events at or after ``now``: user histories and global statistics
(trending, time of day, first-seen times) are cut strictly before it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from promptrec import __version__
from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions, epoch_ns, to_utc
from promptrec.data.splits import HeldOut
from promptrec.retriever.blend import blend, standardize, tune_weights
from promptrec.retriever.candidate import Candidate
from promptrec.retriever.event_log import TimeIndexedLog
from promptrec.retriever.live import LiveHistories
from promptrec.retriever.signals import SIGNALS, FitData, Query, Signal

DEFAULT_SIGNALS = ("content", "transition", "trending", "time_context", "freshness")
BATCH = 256
FORMAT_VERSION = 1
MIN_INT = np.iinfo(np.int64).min


class TimeAwareRetriever:
    """Blends content, transition, trending, time-context and freshness signals into one ranking."""

    def __init__(self, signals: Iterable[str | Signal] = DEFAULT_SIGNALS, weights: dict[str, float] | None = None,
                 params: dict[str, dict[str, Any]] | None = None):
        self.signals: dict[str, Signal] = {}
        for s in signals:
            if isinstance(s, Signal):
                self.signals[s.name] = s
            elif s in SIGNALS:
                self.signals[s] = SIGNALS[s](**(params or {}).get(s, {}))
            else:
                raise ValueError(f"unknown signal {s!r}; choose from {sorted(SIGNALS)}.")
        self.weights = {n: 1.0 for n in self.signals} | (weights or {})
        self.tuning: dict[str, Any] | None = None
        self.catalog: Catalog | None = None
        self.events: Interactions | None = None
        self.log: TimeIndexedLog | None = None
        self.fitted_on: dict[str, Any] = {}
        self.release_ns: np.ndarray | None = None

    # -- fitting ----------------------------------------------------------------------
    def fit(self, train: Interactions, catalog: Catalog, index: Any = None, *, log: Interactions | None = None,
            ) -> "TimeAwareRetriever":
        """Learn the signals' statistics from ``train``; ``log`` (default ``train``) is the event log whose
        past (before each ``now``) feeds user histories and time-dependent global statistics."""
        self.catalog = catalog
        known = train.frame["item_id"].isin(catalog.frame.index).to_numpy()
        frame = train.frame.loc[known]
        vectors = None
        if "content" in self.signals:
            if index is None:
                raise ValueError("the content signal needs an ItemIndex (fit(..., index=...)), or leave "
                                 "'content' out of signals.")
            missing = [i for i in catalog.ids if i not in index]
            if missing:
                raise ValueError(f"{len(missing)} catalog items are not in the index (e.g. {missing[:3]}); "
                                 "update the index with index.add(catalog).")
            vectors = index.vectors(list(catalog.ids))
        release = catalog.frame["release_time"]
        release_ns = np.where(release.isna(), MIN_INT, epoch_ns(release.fillna(pd.Timestamp(0, tz="UTC"))))
        self.release_ns = release_ns.astype(np.int64)
        data = FitData(frame["user_id"].to_numpy(), catalog.codes(frame["item_id"].to_numpy()), len(catalog),
                       vectors, list(catalog.frame["categories"]), self.release_ns)
        for s in self.signals.values():
            s.fit(data)
        self.fitted_on = {"train_events": int(known.sum()), "items": len(catalog),
                          "train_time_range": [str(t) for t in (train.time_range() or ())]}
        self.use_log(log if log is not None else train)
        return self

    def use_log(self, log: Interactions) -> None:
        """Set the event log that histories and global statistics are read from (always cut before ``now``)."""
        self.events = log
        self.log = TimeIndexedLog(log, self.catalog)
        self._row_codes = self.catalog.frame.index.get_indexer(log.frame["item_id"].to_numpy())  # -1: unknown
        self.live = LiveHistories()

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
        self.live.add(frame.to_dict("records"), times, codes)

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
    def _query(self, user: str | pd.DataFrame, now: Any, user_id: str | None = None) -> Query:
        now_ts = to_utc(now)
        if not isinstance(user, pd.DataFrame):  # fast path: the user's history from the log's arrays
            sl = self.events.user_slice(user)
            stop = sl.start + int(np.searchsorted(self.events._ts[sl], now_ts.value, side="left"))
            codes, times = self._row_codes[sl.start:stop], self.events._ts[sl.start:stop]
            known = codes >= 0
            codes, times = codes[known], times[known]
            if user in self.live:
                live_codes, live_times = self.live.arrays(user, now_ts.value)
                codes, times = np.concatenate([codes, live_codes]), np.concatenate([times, live_times])
                order = np.argsort(times, kind="stable")
                codes, times = codes[order], times[order]
            return Query(str(user), now_ts.value, codes, times)
        hist = user[user["timestamp"] < now_ts]
        uid = user_id or (str(hist["user_id"].iloc[0]) if len(hist) and "user_id" in hist else "")
        hist = hist[hist["item_id"].isin(self.catalog.frame.index)]
        return Query(uid, now_ts.value, self.catalog.codes(hist["item_id"].to_numpy()), epoch_ns(hist["timestamp"]))

    def _z_scores(self, queries: list[Query], exclude: np.ndarray) -> dict[str, np.ndarray]:
        return {n: standardize(s.score(queries, self.log), exclude) for n, s in self.signals.items()}

    def _exclude(self, queries: list[Query], exclude_seen: bool) -> np.ndarray:
        """Items that cannot be recommended: seen by the user (optional), and items not yet available at
        ``now`` (released after it, and nobody interacted with them before it)."""
        mask = np.zeros((len(queries), len(self.catalog)), dtype=bool)
        for i, q in enumerate(queries):
            mask[i] = (self.release_ns > q.now_ns) & (self.log.first_seen >= q.now_ns)
            if exclude_seen:
                mask[i, q.codes] = True
        return mask

    def score_queries(self, queries: list[Query], exclude_seen: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Blended scores (batch x items; excluded items -inf) and each signal's weighted contribution."""
        exclude = self._exclude(queries, exclude_seen)
        z = self._z_scores(queries, exclude)
        contrib = {n: self.weights.get(n, 0.0) * v for n, v in z.items()}
        total = blend(z, self.weights)
        total[exclude] = -np.inf
        return total, contrib

    def retrieve(self, user: str | pd.DataFrame, now: Any, k: int = 100, exclude_seen: bool = True) -> list[Candidate]:
        """Top-k candidates for a user id (history from the log) or a history frame, at ``now``."""
        return self.retrieve_many([(user, now)], k=k, exclude_seen=exclude_seen)[0]

    def retrieve_many(self, requests: Sequence[tuple[str | pd.DataFrame, Any]], k: int = 100,
                      exclude_seen: bool = True, progress: bool = False) -> list[list[Candidate]]:
        self._require_fitted()
        out: list[list[Candidate]] = []
        ids = self.catalog.ids
        for start in tqdm(range(0, len(requests), BATCH), disable=not progress, desc="retrieving", unit="batch"):
            queries = [self._query(u, now) for u, now in requests[start:start + BATCH]]
            total, contrib = self.score_queries(queries, exclude_seen)
            kk = min(k, total.shape[1])
            top = np.argpartition(-total, kk - 1, axis=1)[:, :kk]
            for i in range(len(queries)):
                row = top[i][np.argsort(-total[i, top[i]], kind="stable")]
                row = row[np.isfinite(total[i, row])]
                out.append([Candidate(str(ids[c]), float(total[i, c]), r + 1,
                                      {n: float(v[i, c]) for n, v in contrib.items()}) for r, c in enumerate(row)])
        return out

    def true_item_ranks(self, targets: Sequence[HeldOut], history: Any = None, exclude_seen: bool = True,
                        progress: bool = False) -> np.ndarray:
        """0-based rank of each target's true item among all (unseen) items: the input to HR/NDCG/MRR."""
        from promptrec.eval.metrics import true_ranks

        self._require_fitted()
        ranks = []
        for start in tqdm(range(0, len(targets), BATCH), disable=not progress, desc="ranking", unit="batch"):
            batch = targets[start:start + BATCH]
            total = self.score_targets(batch, history, exclude_seen)
            ranks.append(true_ranks(total, self.catalog.codes([t.item_id for t in batch])))
        return np.concatenate(ranks) if ranks else np.zeros(0, dtype=int)

    def score_targets(self, targets: Sequence[HeldOut], history: Any = None, exclude_seen: bool = True) -> np.ndarray:
        """Blended scores of every catalogue item (columns in catalogue order; excluded items -inf) for
        held-out targets: each target's user at its ``now``."""
        self._require_fitted()
        return self.score_queries([self._target_query(t, history) for t in targets], exclude_seen)[0]

    def _target_query(self, target: HeldOut, history: Any) -> Query:
        if callable(history):
            return self._query(history(target), target.now, target.user_id)
        return self._query(target.user_id, target.now)

    # -- tuning -----------------------------------------------------------------------
    def tune(self, targets: Sequence[HeldOut], history: Any = None, *, objective: str = "ndcg@10",
             progress: bool = False) -> dict[str, Any]:
        """Set the blend weights by coordinate ascent on validation ``targets`` (see promptrec.retriever.blend)."""
        self._require_fitted()
        started = time.perf_counter()
        zs, trues, excl = [], [], []
        for start in tqdm(range(0, len(targets), BATCH), disable=not progress, desc="scoring validation"):
            batch = targets[start:start + BATCH]
            queries = [self._target_query(t, history) for t in batch]
            exclude = self._exclude(queries, True)
            zs.append(self._z_scores(queries, exclude))
            excl.append(exclude)
            trues.append(self.catalog.codes([t.item_id for t in batch]))
        z = {n: np.concatenate([b[n] for b in zs]) for n in self.signals}
        true_cols, exclude = np.concatenate(trues), np.concatenate(excl)
        weights, trace = tune_weights(z, true_cols, exclude, objective=objective)
        self.weights = weights
        self.tuning = {"method": "coordinate ascent on z-scored signals (promptrec.retriever.blend)",
                       "objective": objective, "validation_targets": len(targets), "weights": weights,
                       "objective_start": trace[0]["objective"], "objective_end": trace[-1]["objective"],
                       "trace": trace, "seconds": round(time.perf_counter() - started, 2)}
        return self.tuning

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write config, weights, fitted state, catalogue and log to a folder."""
        self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        dense, sparse = {}, {}
        for n, s in self.signals.items():
            for key, value in s.state().items():
                (sparse if sp.issparse(value) else dense)[f"{n}.{key}"] = value
        np.savez_compressed(path / "state.npz", **dense, **{"_retriever.release_ns": self.release_ns})
        for key, m in sparse.items():
            sp.save_npz(path / f"{key}.npz", m.tocsr())
        cat = self.catalog.frame.reset_index()
        cat["categories"] = cat["categories"].map(list)
        cat.to_parquet(path / "catalog.parquet", index=False)
        events = self.events if not len(self.live) else self.events.append(
            Interactions(self.live.all_frames(), seed=self.events.seed, timezone=self.events.timezone))
        events.frame.to_parquet(path / "events.parquet", index=False)  # live events included
        config = {"format_version": FORMAT_VERSION, "promptrec_version": __version__, "signals": {n: s.params for n, s in self.signals.items()},
                  "weights": self.weights, "tuning": self.tuning, "fitted_on": self.fitted_on,
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
        out = cls(signals=list(config["signals"]), weights=config["weights"], params=config["signals"])
        cat = pd.read_parquet(path / "catalog.parquet")
        cat["categories"] = cat["categories"].map(tuple)
        out.catalog = Catalog(cat)
        if len(out.catalog) != config["items"]:
            raise ValueError(f"{path}: catalog.parquet has {len(out.catalog)} items, the config {config['items']}.")
        dense = dict(np.load(path / "state.npz", allow_pickle=False))
        states: dict[str, dict[str, Any]] = {n: {} for n in out.signals}
        out.release_ns = dense.pop("_retriever.release_ns")
        for key, value in dense.items():
            n, _, name = key.partition(".")
            states[n][name] = value
        for key in config["sparse_state"]:
            n, _, name = key.partition(".")
            states[n][name] = sp.load_npz(path / f"{key}.npz").tocsr()
        for n, s in out.signals.items():
            s.load_state(states[n])
        out.tuning, out.fitted_on = config["tuning"], config["fitted_on"]
        events = pd.read_parquet(path / "events.parquet")
        out.use_log(Interactions(events, timezone=config["timezone"], _sorted=True))
        return out

    def _require_fitted(self) -> None:
        if self.log is None:
            raise RuntimeError("the retriever is not fitted: call fit(train, catalog, index) first.")

    def describe(self) -> dict[str, Any]:
        return {"signals": {n: s.params for n, s in self.signals.items()}, "weights": self.weights,
                "fitted_on": self.fitted_on, "tuned": None if self.tuning is None else
                {k: self.tuning[k] for k in ("objective", "validation_targets", "objective_start", "objective_end")}}
