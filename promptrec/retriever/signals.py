"""The retriever's signals. Each scores every catalogue item for a batch of queries.

A query is a user's history strictly before ``now`` (item codes and times) and ``now``.
Signals return raw scores (batch x items); the retriever normalises and blends them.
Global statistics come from :class:`TimeIndexedLog` and only from events before ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.event_log import DAYS, HOURS, TimeIndexedLog

DAY_NS = 86_400 * 10**9


@dataclass
class Query:
    user_id: str
    now_ns: int
    codes: np.ndarray  # history item codes, oldest first
    times: np.ndarray  # history times (ns), oldest first


@dataclass
class FitData:
    """What signals learn from: training sequences, item vectors, categories, release times."""

    train_users: np.ndarray
    train_codes: np.ndarray  # sorted by user, then time
    n_items: int
    item_vectors: np.ndarray | None
    item_categories: list[tuple[str, ...]]
    release_ns: np.ndarray  # int64, min int where unknown


@dataclass
class Signal:
    """Base class: ``fit`` learns from training data, ``score`` rates all items per query."""

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def fit(self, data: FitData) -> None:
        pass

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Fitted arrays to persist (name -> numpy array or scipy sparse matrix)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


def recency_weights(times: np.ndarray, now_ns: int, half_life_days: float) -> np.ndarray:
    return np.exp2(-(now_ns - times).astype(np.float64) / (half_life_days * DAY_NS))


class ContentSignal(Signal):
    """Cosine similarity to a recency-decayed profile of the history's item embeddings, plus the most
    recent items as separate interest vectors (max-merged)."""

    def __init__(self, half_life_days: float = 30.0, recent_queries: int = 3, recent_weight: float = 0.5):
        super().__init__("content", {"half_life_days": half_life_days, "recent_queries": recent_queries,
                                     "recent_weight": recent_weight})
        self.vectors: np.ndarray | None = None

    def fit(self, data: FitData) -> None:
        if data.item_vectors is None:
            raise ValueError("the content signal needs item vectors: pass an ItemIndex to fit(), or disable it.")
        self.vectors = np.ascontiguousarray(data.item_vectors, dtype=np.float32)

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        p = self.params
        d = self.vectors.shape[1]
        profiles = np.zeros((len(queries), d), dtype=np.float32)
        for i, q in enumerate(queries):
            if len(q.codes):
                w = recency_weights(q.times, q.now_ns, p["half_life_days"]).astype(np.float32)
                profiles[i] = w @ self.vectors[q.codes]
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        profiles /= np.where(norms > 0, norms, 1)
        scores = profiles @ self.vectors.T
        m = int(p["recent_queries"])
        if m > 0 and p["recent_weight"] > 0:
            recent = np.full_like(scores, -1.0)
            for i, q in enumerate(queries):
                if len(q.codes):
                    recent[i] = (self.vectors[q.codes[-m:]] @ self.vectors.T).max(axis=0)
            scores = (1 - p["recent_weight"]) * scores + p["recent_weight"] * recent
        return scores

    def state(self) -> dict[str, Any]:
        return {"vectors": self.vectors}

    def load_state(self, state: dict[str, Any]) -> None:
        self.vectors = state["vectors"]


class TransitionSignal(Signal):
    """Item-to-item transitions from training sequences (which items follow which, within ``window`` steps),
    applied to the user's last items weighted by their recency."""

    def __init__(self, window: int = 5, step_decay: float = 0.8, backward: float = 0.5, source_norm: float = 0.75,
                 last_items: int = 10, position_decay: float = 0.7):
        super().__init__("transition", {"window": window, "step_decay": step_decay, "backward": backward,
                                        "source_norm": source_norm, "last_items": last_items,
                                        "position_decay": position_decay})
        self.matrix: sp.csr_matrix | None = None

    def fit(self, data: FitData) -> None:
        p, users, codes, n = self.params, data.train_users, data.train_codes, data.n_items
        rows, cols, vals = [], [], []
        for step in range(1, int(p["window"]) + 1):
            a = np.flatnonzero(users[:-step] == users[step:])
            w = np.full(len(a), p["step_decay"] ** (step - 1))
            rows += [codes[a], codes[a + step]]
            cols += [codes[a + step], codes[a]]
            vals += [w, w * p["backward"]]
        m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        m.sum_duplicates()
        out_weight = np.asarray(m.sum(axis=1)).ravel() + 1.0
        self.matrix = (sp.diags(out_weight ** -p["source_norm"]) @ m).tocsr().astype(np.float32)

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        p = self.params
        rows, cols, vals = [], [], []
        for i, q in enumerate(queries):
            last = q.codes[-int(p["last_items"]):][::-1]
            rows.append(np.full(len(last), i))
            cols.append(last)
            vals.append(p["position_decay"] ** np.arange(len(last)))
        weights = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(len(queries), self.matrix.shape[0]))
        return np.log1p(np.asarray((weights @ self.matrix).todense()))

    def state(self) -> dict[str, Any]:
        return {"matrix": self.matrix}

    def load_state(self, state: dict[str, Any]) -> None:
        self.matrix = state["matrix"]


class TrendingSignal(Signal):
    """Popularity in a window before ``now``, each event weighted by 0.5 ** (age / half-life)."""

    def __init__(self, half_life_days: float = 7.0, window_days: float = 35.0):
        super().__init__("trending", {"half_life_days": half_life_days, "window_days": window_days})

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        p = self.params
        out = np.empty((len(queries), log.n_items))
        cache: dict[int, np.ndarray] = {}
        for i, q in enumerate(queries):
            if q.now_ns not in cache:
                cache[q.now_ns] = np.log1p(log.decayed_counts(q.now_ns, p["half_life_days"] * DAY_NS,
                                                              p["window_days"] * DAY_NS))
            out[i] = cache[q.now_ns]
        return out


class TimeContextSignal(Signal):
    """Each item's affinity to the local hour and weekday of ``now``: log-lift of P(hour | item) over P(hour),
    smoothed toward the item's categories (and the catalogue) for items with few events."""

    def __init__(self, smoothing: float = 20.0, hour_bandwidth: float = 1.0):
        super().__init__("time_context", {"smoothing": smoothing, "hour_bandwidth": hour_bandwidth})
        self.item_cat: sp.csr_matrix | None = None

    def fit(self, data: FitData) -> None:
        cats = sorted({c for cs in data.item_categories for c in cs})
        pos = {c: j for j, c in enumerate(cats)}
        rows = [i for i, cs in enumerate(data.item_categories) for c in cs]
        cols = [pos[c] for cs in data.item_categories for c in cs]
        m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(data.n_items, max(1, len(cats))))
        counts = np.asarray(m.sum(axis=1)).ravel()
        self.item_cat = (sp.diags(1 / np.maximum(counts, 1)) @ m).tocsr()  # each item's categories, averaged

    def _lift(self, counts: np.ndarray, col: int) -> np.ndarray:
        a = self.params["smoothing"]
        total = counts.sum() + 1e-9
        p_global = (counts.sum(axis=0) + 1.0) / (total + counts.shape[1])
        cat_counts = self.item_cat.T @ counts  # categories x bins
        p_cat = (cat_counts + a * p_global) / (cat_counts.sum(axis=1, keepdims=True) + a)
        prior = np.asarray(self.item_cat @ p_cat)  # items x bins: the item's categories' profile
        n_item = counts.sum(axis=1, keepdims=True)
        p_item = (counts + a * prior) / (n_item + a)
        return np.log(p_item[:, col] / p_global[col])

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        out = np.empty((len(queries), log.n_items))
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        bw = self.params["hour_bandwidth"]
        dist = np.abs(np.arange(HOURS)[:, None] - np.arange(HOURS)[None, :])
        dist = np.minimum(dist, HOURS - dist)  # circular: 23h and 0h are neighbours
        kernel = np.exp(-0.5 * (dist / bw) ** 2) if bw > 0 else np.eye(HOURS)
        for i, q in enumerate(queries):
            hour, dow = log.local_calendar(q.now_ns)
            key = (log.position(q.now_ns), hour, dow)
            if key not in cache:
                hours, days = log.calendar_counts(q.now_ns)
                cache[key] = self._lift(hours @ kernel, hour) + self._lift(days, dow)
            out[i] = cache[key]
        return out

    def state(self) -> dict[str, Any]:
        return {"item_cat": self.item_cat}

    def load_state(self, state: dict[str, Any]) -> None:
        self.item_cat = state["item_cat"]


class FreshnessSignal(Signal):
    """Newer items score higher: minus log(1 + age in days) at ``now``, the age counted from the release time
    or, where that is unknown, from the item's first event before ``now`` (never seen: age 0, brand new).
    Items not yet available at ``now`` are removed by the retriever, not scored here."""

    def __init__(self):
        super().__init__("freshness", {})
        self.release_ns: np.ndarray | None = None

    def fit(self, data: FitData) -> None:
        self.release_ns = data.release_ns

    def score(self, queries: list[Query], log: TimeIndexedLog) -> np.ndarray:
        unknown = self.release_ns == np.iinfo(np.int64).min
        out = np.empty((len(queries), log.n_items))
        for i, q in enumerate(queries):
            born = np.where(unknown, np.minimum(log.first_seen, q.now_ns), self.release_ns)
            age_days = (q.now_ns - born.astype(np.float64)) / DAY_NS
            out[i] = -np.log1p(np.clip(age_days, 0, None))
        return out

    def state(self) -> dict[str, Any]:
        return {"release_ns": self.release_ns}

    def load_state(self, state: dict[str, Any]) -> None:
        self.release_ns = state["release_ns"]


SIGNALS = {"content": ContentSignal, "transition": TransitionSignal, "trending": TrendingSignal,
           "time_context": TimeContextSignal, "freshness": FreshnessSignal}
