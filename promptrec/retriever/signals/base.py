"""What every signal shares: the query, the data signals learn from, and the Signal contract.

A query is a user's history strictly before ``now`` (item codes and times) plus the request's
scene (device, location, declared context columns). Signals return raw scores (batch x items); the
retriever normalises and blends them, or hands their :meth:`Signal.features` to the learned blend. Global statistics
come from :class:`TimeIndexedLog` and only from events before ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from promptrec.data.times import local_hour_dow

DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
HOURS = 24


@dataclass
class Query:
    user_id: str
    now_ns: int
    codes: np.ndarray  # history item codes, oldest first
    times: np.ndarray  # history times (ns), oldest first
    device: str | None = None
    location: tuple[float, float] | None = None  # (lat, lon) of the request, if known
    hours: np.ndarray | None = None  # local hour of each history event (computed on demand if None)
    dows: np.ndarray | None = None  # local weekday of each history event
    extras: Mapping[str, Any] = field(default_factory=dict)  # the request's other context values (weather...)

    def calendar(self, timezone: str) -> tuple[np.ndarray, np.ndarray]:
        """Local hour and weekday of each history event."""
        if self.hours is None or self.dows is None:
            self.hours, self.dows = local_hour_dow(self.times, timezone)
        return self.hours, self.dows


@dataclass
class FitData:
    """What signals learn from: training sequences, item vectors, categories, release times, scene."""

    train_users: np.ndarray
    train_codes: np.ndarray  # sorted by user, then time
    n_items: int
    item_vectors: np.ndarray | None
    item_categories: list[tuple[str, ...]]
    release_ns: np.ndarray  # int64, min int where unknown
    train_times: np.ndarray | None = None  # ns, aligned with train_codes
    item_coords: np.ndarray | None = None  # items x (lat, lon), NaN where unknown
    train_devices: np.ndarray | None = None  # device of each training event (None / "" where unknown)
    timezone: str = "UTC"
    train_context: dict[str, np.ndarray] = field(default_factory=dict)  # declared context column -> value per event


@dataclass
class Signal:
    """Base class: ``fit`` learns from training data, ``score`` rates all items per query.

    ``features`` gives the learned blend more than one column where a signal knows more than one
    number per item (the default is its score alone). Signals with ``scores_items`` also take
    ``items=`` (sorted item codes) and compute only those columns (candidate pools,
    :mod:`promptrec.retriever.pool`); others are scored whole and sliced."""

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    scores_items = False  # score / features accept items= (a column subset) and compute only those columns
    needs_item_vectors = False  # fit reads FitData.item_vectors (the retriever then needs an ItemIndex)
    trains_model = False  # fit trains a model (minutes, not a pass over the log): refits on earlier windows cost
    proposes_candidates = True  # its top N join the learned blend's candidates (False: features only)

    def fit(self, data: FitData) -> None:
        pass

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        raise NotImplementedError

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {self.name: scores_on(self, queries, log, items)}

    def state(self) -> dict[str, Any]:
        """Fitted arrays to persist (name -> numpy array or scipy sparse matrix)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


def scores_on(signal: Signal, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
    """``signal.score`` for every item, or for the item codes ``items`` only (columns in that order)."""
    if items is None:
        return signal.score(queries, log)
    if signal.scores_items:
        return signal.score(queries, log, items=items)
    return signal.score(queries, log)[:, items]


def features_on(signal: Signal, queries: list[Query], log: Any, items: np.ndarray | None = None,
                ) -> dict[str, np.ndarray]:
    """``signal.features`` for every item, or for the item codes ``items`` only."""
    if items is None:
        return signal.features(queries, log)
    if signal.scores_items:
        return signal.features(queries, log, items=items)
    return {k: v[:, items] for k, v in signal.features(queries, log).items()}


def columns_of(items: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each code's position among the sorted item codes ``items`` (-1 where it is not one of them)."""
    codes = np.asarray(codes, dtype=np.int64)
    if not len(items):
        return np.full(len(codes), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(items, codes), len(items) - 1)
    return np.where(items[pos] == codes, pos, -1)


def n_columns(log: Any, items: np.ndarray | None) -> int:
    """How many columns a signal's scores have: every item, or ``items``."""
    return log.n_items if items is None else len(items)


class CategorySignal(Signal):
    """A signal that backs items off to their categories: keeps the items x categories matrix (and its
    transpose, built once: a transpose per query cost more than the product)."""

    item_cat: Any = None  # items x categories (scipy sparse)
    cat_item: Any = None  # its transpose

    def fit(self, data: FitData) -> None:
        self.load_state({"item_cat": category_matrix(data.item_categories, data.n_items)})

    def state(self) -> dict[str, Any]:
        return {"item_cat": self.item_cat}

    def load_state(self, state: dict[str, Any]) -> None:
        self.item_cat = state["item_cat"]
        self.cat_item = self.item_cat.T.tocsr()


def joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The queries' per-event arrays end to end, as int64 (empty when no query has history)."""
    return np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)


def recency_weights(times: np.ndarray, now_ns: int, half_life_days: float) -> np.ndarray:
    return np.exp2(-(now_ns - times).astype(np.float64) / (half_life_days * DAY_NS))


def hour_kernel(hours: np.ndarray, hour: int, bandwidth: float) -> np.ndarray:
    """Gaussian weight of each hour by its circular distance to ``hour`` (23h and 0h are neighbours)."""
    d = np.abs(np.asarray(hours) - hour)
    d = np.minimum(d, HOURS - d)
    return np.exp(-0.5 * (d / bandwidth) ** 2) if bandwidth > 0 else (d == 0).astype(float)


def user_item_counts(data: FitData):
    """The training users (sorted ids) and their (users x items) event counts, a float32 sparse matrix."""
    import scipy.sparse as sp

    users, rows = np.unique(np.asarray(data.train_users).astype(str), return_inverse=True)
    counts = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, data.train_codes)),
                           shape=(len(users), data.n_items))
    counts.sum_duplicates()
    return users, counts


def category_matrix(item_categories: list[tuple[str, ...]], n_items: int):
    """(items x categories) sparse matrix, each item's categories averaged (rows sum to 1 or 0)."""
    import scipy.sparse as sp

    cats = sorted({c for cs in item_categories for c in cs})
    pos = {c: j for j, c in enumerate(cats)}
    rows = [i for i, cs in enumerate(item_categories) for _ in cs]
    cols = [pos[c] for cs in item_categories for c in cs]
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, max(1, len(cats))))
    counts = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(1 / np.maximum(counts, 1)) @ m).tocsr()
