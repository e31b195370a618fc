"""Candidate pools: a cheap first stage that picks, per request, the items the signals then score.

By default every signal scores every catalogue item (exact, and fast enough up to tens of thousands of
items). Above ``POOL_AUTO_ITEMS`` items (or when asked) the retriever first gathers each request's pool
from sources that cost little per request, and the signals score only pooled items:

| source | items | needs |
|---|---|---|
| history | the user's own items, most recent first | repeats allowed |
| transition | what follows the user's last items most (the transition signal's matrix) | transition |
| similar | each of the user's last items' nearest neighbours by embedding (a k-NN graph built at fit) | content |
| nearby | the places closest to the request's location, else the user's last place (k-d tree) | place |
| popular | the most used items in the trending window before ``now`` (everybody) | always |
| hour | the items used most at ``now``'s local hour (everybody) | always |
| fresh | the newest items released before ``now`` | release times |

Items outside a request's pool are not ranked. The linear blend's z-scores keep the catalogue's scale: a
pool is a biased sample (near, popular, similar items), and z-scores taken over it weigh the signals differently
from z-scores over every item (at 50,000 synthetic places, 7% of the next check-ins that the exhaustive top 100
held were in the pool but ranked out of its top 100 that way). So each batch also scores a fixed uniform sample of
the catalogue (``reference`` items), and each signal's mean and spread for a request are estimated from its pool
(exactly) plus the sample's items outside it (each standing for its share of the rest of the catalogue). The
learned blend's per-signal top-N are taken within the pool. ``eval/benchmarks/bench_catalog_scale.py`` measures how closely a
pooled ranking follows the exhaustive one (hits of the next event, overlap of the top 100).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from promptrec.retriever.signals.base import DAY_NS, FitData, Query, Signal, columns_of
from promptrec.retriever.signals.place import on_sphere
from promptrec.retriever.signals.trending import TrendingSignal

POOL_AUTO_ITEMS = 50_000  # pool="auto" pools catalogues larger than this
EXACT_KNN_ITEMS = 20_000  # the k-NN graph is exact up to this many items, FAISS IVF beyond


@dataclass
class PoolConfig:
    """How many items each source adds to a request's pool (0 turns a source off)."""

    history: int = 1000  # the user's most recent distinct items
    transition: int = 200
    similar: int = 20  # neighbours of each of the last ``similar_of`` distinct items
    similar_of: int = 10
    nearby: int = 300
    popular: int = 200
    hour: int = 100
    fresh: int = 50
    reference: int = 500  # a fixed uniform sample of the catalogue, scored only for the z-scores' scale (0: the pool's)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "PoolConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown pool setting(s) {unknown}; choose from {[f.name for f in fields(cls)]}.")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def max_size(self) -> int:
        """The most items one request's pool can hold."""
        return (self.history + self.transition + self.similar * self.similar_of + self.nearby + self.popular
                + self.hour + self.fresh)


def resolve_pool(pool: Any) -> PoolConfig | str | None:
    """``"auto"`` (pool large catalogues), ``None`` / ``"off"`` (never), ``"on"`` / a PoolConfig / a dict of its
    settings (always)."""
    if pool is None or pool == "off":
        return None
    if pool == "auto":
        return "auto"
    if pool == "on":
        return PoolConfig()
    if isinstance(pool, PoolConfig):
        return pool
    if isinstance(pool, dict):
        return PoolConfig.from_dict(pool)
    raise ValueError(f"pool={pool!r}; use 'auto', 'on', 'off', None, a PoolConfig or a dict of its settings.")


class CandidatePool:
    """Gathers each request's pool (item codes) from the sources of a :class:`PoolConfig`."""

    def __init__(self, config: PoolConfig):
        self.config = config
        self.neighbours: np.ndarray | None = None  # items x k nearest items by embedding (-1: none)
        self.reference = np.zeros(0, np.int64)  # sorted item codes of the uniform sample (set by fit / load_state)
        self._tree = None  # k-d tree over located places (built on first use)
        self._released: tuple[np.ndarray, np.ndarray] | None = None  # release times sorted, their items

    # -- fitting -------------------------------------------------------------------------
    def fit(self, data: FitData) -> "CandidatePool":
        if self.config.similar > 0 and data.item_vectors is not None:
            self.neighbours = nearest_items(data.item_vectors, self.config.similar)
        self.reference = reference_sample(data.n_items, self.config.reference)
        return self

    def state(self) -> dict[str, Any]:
        return {} if self.neighbours is None else {"neighbours": self.neighbours}

    def load_state(self, state: dict[str, Any], n_items: int) -> None:
        self.neighbours = state.get("neighbours")
        self.reference = reference_sample(n_items, self.config.reference)

    def columns(self, pools: list[np.ndarray], n_items: int) -> "PooledColumns":
        """A batch's columns for its requests' ``pools`` (sorted item codes each) and the reference sample."""
        items = np.unique(np.concatenate([*pools, self.reference])) if pools else self.reference
        own = np.zeros((len(pools), len(items)), dtype=bool)
        for i, p in enumerate(pools):
            own[i, np.searchsorted(items, p)] = True
        weight = own.astype(np.float32)
        sample = np.searchsorted(items, self.reference)
        for i in range(len(pools)):
            outside = sample[~own[i, sample]]
            if len(outside):  # each sampled item outside the pool stands for its share of the rest of the catalogue
                weight[i, outside] = (n_items - own[i].sum()) / len(outside)
        return PooledColumns(items, own, weight)

    # -- gathering -----------------------------------------------------------------------
    def gather(self, queries: list[Query], log: Any, signals: dict[str, Signal],
               release_ns: np.ndarray | None = None, repeats: bool = True) -> list[np.ndarray]:
        """Each query's pool: sorted unique item codes (the user's own items only where ``repeats`` allows them)."""
        c = self.config
        transition, place = signals.get("transition"), signals.get("place")
        trending = (signals.get("trending") or TrendingSignal()).params  # its window even where it is not a signal
        follows = transition.follows(queries).tocsr() if transition is not None and c.transition else None
        out = []
        for i, q in enumerate(queries):
            parts = [_recent_distinct(q.codes, c.history if repeats else 0)]
            if follows is not None:
                parts.append(_top_of_sparse_row(follows, i, c.transition))
            if self.neighbours is not None and c.similar_of:
                parts.append(self.neighbours[_recent_distinct(q.codes, c.similar_of)].ravel())
            if place is not None and c.nearby:
                parts.append(self._nearby(place, q, c.nearby))
            if c.popular:
                half_life, window = trending["half_life_days"] * DAY_NS, trending["window_days"] * DAY_NS
                parts.append(_slot_top(log, ("pool_popular", log.slot(q.now_ns), half_life, window), c.popular,
                                       lambda: log.decayed_counts(q.now_ns, half_life, window)))
            if c.hour:
                hour = log.local_calendar(q.now_ns)[0]
                parts.append(_slot_top(log, ("pool_hour", log.slot(q.now_ns), hour), c.hour,
                                       lambda: log.calendar_counts(q.now_ns)[0][:, hour]))
            if c.fresh and release_ns is not None:
                parts.append(self._newest_before(release_ns, q.now_ns, c.fresh))
            codes = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
            out.append(np.unique(codes[codes >= 0]))
        return out

    def _nearby(self, place: Any, q: Query, k: int) -> np.ndarray:
        origin = place._origin(q)
        if origin is None:
            return np.zeros(0, np.int64)
        if self._tree is None:
            from scipy.spatial import cKDTree

            located = np.flatnonzero(np.isfinite(place.coords).all(axis=1))
            self._tree = (cKDTree(on_sphere(place.coords[located])), located)
        tree, located = self._tree
        _, idx = tree.query(on_sphere(np.asarray([origin], dtype=np.float64)), k=min(k, len(located)))
        return located[np.atleast_1d(idx.ravel())]

    def _newest_before(self, release_ns: np.ndarray, now_ns: int, k: int) -> np.ndarray:
        """The ``k`` items released last before ``now`` (items without a release time never)."""
        if self._released is None:
            known = np.flatnonzero(release_ns != np.iinfo(np.int64).min)
            order = known[np.argsort(release_ns[known], kind="stable")]
            self._released = (release_ns[order], order)
        times, items = self._released
        end = int(np.searchsorted(times, now_ns, side="left"))
        return items[max(0, end - k):end]


@dataclass
class PooledColumns:
    """A pooled batch's columns: ``items`` (sorted item codes: the union of its requests' pools and the reference
    sample), which of them each request's own pool holds (``own``, batch x columns: only these are ranked) and each
    cell's ``weight`` in that request's z-score mean and spread (1 in the pool, the rest of the catalogue spread
    over the sampled items outside it, 0 elsewhere)."""

    items: np.ndarray
    own: np.ndarray
    weight: np.ndarray

    def view(self, exclude: np.ndarray, true_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch x every item) ``exclude`` and item codes ``true_cols`` as this batch's columns: cells outside a
        request's own pool excluded, true items as column positions (-1: not among the columns)."""
        return exclude[:, self.items] | ~self.own, columns_of(self.items, true_cols)


def reference_sample(n_items: int, size: int, seed: int = 0) -> np.ndarray:
    """``size`` item codes drawn uniformly without replacement (sorted; the same for the same catalogue size)."""
    if size <= 0 or n_items <= 0:
        return np.zeros(0, np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_items, min(size, n_items), replace=False)).astype(np.int64)


def nearest_items(vectors: np.ndarray, k: int) -> np.ndarray:
    """(items x k) each item's ``k`` most similar other items by inner product of the (unit) vectors: exact
    up to ``EXACT_KNN_ITEMS`` items, FAISS IVF (4 sqrt(n) lists, 16 probed) beyond. -1 where fewer exist."""
    from promptrec.index.faiss_backend import faiss_module

    faiss = faiss_module()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    if n <= EXACT_KNN_ITEMS:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
        index.nprobe = 16
    index.add(x)
    _, ids = index.search(x, min(k + 1, n))
    out = np.full((n, k), -1, dtype=np.int64)
    for i, row in enumerate(ids):  # drop the item itself wherever it comes
        row = row[(row != i) & (row >= 0)][:k]
        out[i, :len(row)] = row
    return out


def _recent_distinct(codes: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` most recently used distinct items of a history (oldest first)."""
    if not len(codes) or k <= 0:
        return np.zeros(0, np.int64)
    rev = np.asarray(codes)[::-1]
    _, first = np.unique(rev, return_index=True)
    return rev[np.sort(first)[:k]]


def _top_of_sparse_row(m: Any, i: int, k: int) -> np.ndarray:
    lo, hi = m.indptr[i], m.indptr[i + 1]
    cols, vals = m.indices[lo:hi], m.data[lo:hi]
    if len(cols) > k:
        cols = cols[np.argpartition(-vals, k - 1)[:k]]
    return cols


def _slot_top(log: Any, key: tuple, k: int, values: Any) -> np.ndarray:
    """The ``k`` items with the largest ``values()``, positive only: once per ``key`` (e.g. a time slot) and kept
    between batches (``log.memo``)."""
    def compute() -> np.ndarray:
        v = np.asarray(values(), dtype=np.float64)
        top = np.argpartition(-v, min(k, len(v)) - 1)[:k] if len(v) > k else np.arange(len(v))
        return top[v[top] > 0]

    return log.memo(key + (k,), compute)


def pack_rows(own: np.ndarray, arrays: dict[str, np.ndarray], exclude: np.ndarray, true_cols: np.ndarray,
              ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each request's own pool, left-aligned, so that batches with different columns can be stacked:
    ``arrays`` and ``exclude`` (batch x the batch's columns) become (batch x width), width one more than the
    largest pool, cells past a row's pool excluded; ``true_cols`` (among the batch's columns, -1: not pooled)
    become positions in the packed rows (a padding cell, always excluded, where the true item is not pooled)."""
    counts = own.sum(axis=1)
    width = int(counts.max(initial=0)) + 1
    rows, cols = np.nonzero(own)  # row-major: each row's pooled columns in ascending order
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    packed = {}
    for name, values in arrays.items():
        out = np.zeros((len(own), width), dtype=values.dtype)
        out[rows, slot] = values[rows, cols]
        packed[name] = out
    packed_exclude = np.ones((len(own), width), dtype=bool)
    packed_exclude[rows, slot] = exclude[rows, cols]
    true_slot = np.full(len(own), width - 1, dtype=np.int64)
    for i, c in enumerate(true_cols):
        if c >= 0 and own[i, c]:
            true_slot[i] = int(own[i, :c].sum())
    return packed, packed_exclude, true_slot
