"""Scoring a batch of queries: which items may be recommended at ``now``, the candidate pool's columns, each
signal's z-scores, the linear or learned blend (:class:`ScoredBatch`), and each query's top-k as candidates.
The functions take the fitted :class:`~promptrec.retriever.retriever.TimeAwareRetriever` whose state they read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from promptrec.data.candidate import Candidate
from promptrec.retriever.blend import blend, standardize
from promptrec.retriever.pool import PooledColumns
from promptrec.retriever.signals import Query
from promptrec.retriever.signals.base import columns_of, scores_on

if TYPE_CHECKING:
    from promptrec.retriever.retriever import TimeAwareRetriever

MIN_INT = np.iinfo(np.int64).min


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


def z_scores(r: TimeAwareRetriever, queries: list[Query], exclude: np.ndarray,
             pooled: PooledColumns | None = None) -> dict[str, np.ndarray]:
    """Each signal's z-scores over the catalogue (``exclude``: items that are not), or over a pooled batch's
    columns with the catalogue's scale estimated from each request's pool and the reference sample."""
    items, weight = (None, None) if pooled is None else (pooled.items, pooled.weight)
    return {n: standardize(scores_on(s, queries, r.log, items), exclude, weight)
            for n, s in r.signals.items()}


def pool_columns(r: TimeAwareRetriever, queries: list[Query], columns: np.ndarray | None = None,
                 exclude_seen: bool | None = None) -> PooledColumns | None:
    """Without a candidate pool None: every item is scored. With one, the batch's columns: its requests' pools
    and the reference sample; the boolean ``columns`` (batch x items, e.g. sampled candidates) join each
    request's pool."""
    if r.pool is None:
        return None
    repeats = r.allow_repeats if exclude_seen is None else not exclude_seen
    pools = r.pool.gather(queries, r.log, r.signals, r.release_ns, repeats)
    if columns is not None:
        pools = [np.union1d(p, np.flatnonzero(c)) for p, c in zip(pools, columns)]
    return r.pool.columns(pools, len(r.catalog))


def exclusion(r: TimeAwareRetriever, queries: list[Query], exclude_seen: bool | None = None,
              items: np.ndarray | None = None) -> np.ndarray:
    """Items that cannot be recommended: items not yet available at ``now`` (released after it, or, for
    items without a release time in a catalogue built from the events, nobody used them before it), and,
    unless repeats are allowed, the items the user has already consumed. Columns: every item, or ``items``."""
    exclude_seen = (not r.allow_repeats) if exclude_seen is None else exclude_seen
    cols = slice(None) if items is None else items
    release, first_seen = r.release_ns[cols], r.log.first_seen[cols]
    unknown = release == MIN_INT
    mask = np.zeros((len(queries), len(release)), dtype=bool)
    for i, q in enumerate(queries):
        unseen = first_seen >= q.now_ns
        mask[i] = unseen & ((release > q.now_ns) | (unknown & r.available_from_first_event))
        if exclude_seen:
            own = q.codes if items is None else columns_of(items, q.codes)
            mask[i, own[own >= 0]] = True
    return mask


def score_batch(r: TimeAwareRetriever, queries: list[Query], exclude: np.ndarray | None = None,
                columns: np.ndarray | None = None, exclude_seen: bool | None = None) -> ScoredBatch:
    """Blended scores of every item, or, with a candidate pool, of the batch's pooled items (a request's
    scores are -inf outside its own pool; the learned blend's top-N are taken within it, the linear blend's
    z-scores on the catalogue's estimated scale). ``exclude``: the (batch x every item) mask of
    :func:`exclusion` if already made."""
    pooled = pool_columns(r, queries, columns, exclude_seen)
    items = None if pooled is None else pooled.items
    if exclude is None:
        exclude = exclusion(r, queries, exclude_seen, items)
    elif items is not None:
        exclude = exclude[:, items]
    unavailable = exclude
    if pooled is not None:
        exclude = exclude | ~pooled.own
        columns = None if columns is None else columns[:, items]
    if r.ranker is not None:
        total, feats = learned_scores(r, queries, exclude, columns, items)
        return ScoredBatch(total, items, {}, feats)
    z = z_scores(r, queries, unavailable, pooled)
    contrib = {n: r.weights.get(n, 0.0) * v for n, v in z.items()}
    total = blend(z, r.weights)
    total[exclude] = -np.inf
    return ScoredBatch(total, items, contrib)


def learned_scores(r: TimeAwareRetriever, queries: list[Query], exclude: np.ndarray,
                   columns: np.ndarray | None = None, items: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    feats = r.features.build(queries, items)
    cells = (r.features.candidates(feats, exclude, r.ranker.config.top_n, queries, items)
             if columns is None else columns & ~exclude)
    rows, cols = np.nonzero(cells)
    total = np.full(exclude.shape, -np.inf)
    X = r.features.matrix(feats, rows, cols, r.ranker.feature_names)
    if len(rows):
        total[rows, cols] = r.ranker.predict(X)
    return total, feats


def top_candidates(r: TimeAwareRetriever, scored: ScoredBatch, k: int) -> list[list[Candidate]]:
    """Each query's top ``k`` of a scored batch, best first, with what each score is made of (the learned blend's
    per-signal contributions, or the linear blend's weighted z-scores)."""
    total, ids = scored.total, r.catalog.ids if scored.items is None else r.catalog.ids[scored.items]
    kk = min(k, total.shape[1])
    if kk == 0:
        return [[] for _ in total]
    if scored.items is None:
        top = np.argpartition(-total, kk - 1, axis=1)[:, :kk]
        rows = [top[i][np.argsort(-total[i, top[i]], kind="stable")] for i in range(len(total))]
        rows = [row[np.isfinite(total[i, row])] for i, row in enumerate(rows)]
    else:  # ties go to the lower item code, whatever else shares the batch's columns
        ranked = [np.flatnonzero(np.isfinite(row)) for row in total]
        rows = [cols[np.argsort(-total[i, cols], kind="stable")[:kk]] for i, cols in enumerate(ranked)]
    if r.ranker is not None:
        qi = np.concatenate([np.full(len(row), i) for i, row in enumerate(rows)]).astype(int)
        cols = np.concatenate(rows).astype(int) if rows else np.zeros(0, int)
        parts = r.ranker.contributions(
            r.features.matrix(scored.feats, qi, cols, r.ranker.feature_names)) if len(cols) else []
        out, pos = [], 0
        for i, row in enumerate(rows):
            out.append([Candidate(str(ids[c]), float(total[i, c]), rank + 1, parts[pos + rank])
                        for rank, c in enumerate(row)])
            pos += len(row)
        return out
    names, out = list(scored.contrib), []
    for i, row in enumerate(rows):  # each candidate's contributions as Python floats, a row at a time
        parts = np.stack([scored.contrib[n][i, row] for n in names], axis=1).tolist() if names else []
        out.append([Candidate(str(ids[c]), float(total[i, c]), rank + 1,
                              dict(zip(names, parts[rank])) if names else {}) for rank, c in enumerate(row)])
    return out
