"""Feature rows for the learned blend: every signal's features plus the request's context, per candidate.

Candidates are the union of each signal's top-N items (and, where repeats are allowed, every item
of the user's own history), never the whole catalogue. With a candidate pool, arrays hold the pooled
items' columns only (``items``, sorted codes) and every column index refers to them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.learned import CONTEXT_FEATURES, RankingRows
from promptrec.retriever.signals.base import HOUR_NS, Query, Signal, columns_of, features_on, local_hour_dow


class FeatureBuilder:
    """Turns queries into feature arrays (batch x items) and candidate rows for one set of signals."""

    def __init__(self, signals: dict[str, Signal], log: Any):
        self.signals, self.log = signals, log
        self.names: list[str] = []
        self.signal_of: dict[str, str] = {}

    def build(self, queries: list[Query], items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """name -> (batch x items) array for signal features (every item, or ``items``), (batch,) for context
        features."""
        feats: dict[str, np.ndarray] = {}
        signal_of: dict[str, str] = {}
        for name, s in self.signals.items():
            for fname, values in features_on(s, queries, self.log, items).items():
                feats[fname] = np.asarray(values, dtype=np.float32)
                signal_of[fname] = name
        feats.update(self._context(queries))
        signal_of.update({n: "context" for n in CONTEXT_FEATURES})
        if not self.names:
            self.names, self.signal_of = list(feats), signal_of
        return feats

    def _context(self, queries: list[Query]) -> dict[str, np.ndarray]:
        hours, weekdays = local_hour_dow(np.array([q.now_ns for q in queries], dtype=np.int64), self.log.timezone)
        since = [np.log1p((q.now_ns - q.times[-1]) / HOUR_NS) if len(q.times) else np.nan for q in queries]
        return {"context_hour": hours.astype(np.float32), "context_weekday": weekdays.astype(np.float32),
                "context_hours_since_last": np.array(since, np.float32),
                "context_history_length": np.log1p(np.array([len(q.codes) for q in queries], np.float32))}

    def candidates(self, feats: dict[str, np.ndarray], exclude: np.ndarray, top_n: int,
                   queries: list[Query], items: np.ndarray | None = None) -> np.ndarray:
        """Boolean (batch x items): each signal's top-N by its main score (signals that propose candidates), plus
        the user's own items when they may be recommended; never an excluded item."""
        mask = np.zeros(exclude.shape, dtype=bool)
        n = min(top_n, exclude.shape[1])
        rows = np.arange(exclude.shape[0])[:, None]
        proposers = [name for name, s in self.signals.items() if s.proposes_candidates]
        for name in proposers if items is None else ():
            score = np.where(exclude, -np.inf, np.nan_to_num(feats[name], nan=-np.inf))
            top = np.argpartition(-score, n - 1, axis=1)[:, :n]
            mask[rows, top] = True
        if items is not None:  # pooled: each row's top-N among its own recommendable columns, which do not
            for i in range(len(mask)):  # depend on what else shares the batch (nor, at ties, do the picks)
                own = np.flatnonzero(~exclude[i])
                for name in proposers if len(own) else ():
                    score = np.nan_to_num(feats[name][i, own], nan=-np.inf)
                    m = min(top_n, len(own))
                    mask[i, own[np.argpartition(-score, m - 1)[:m]]] = True
        for i, q in enumerate(queries):
            if items is None:
                mask[i, q.codes] = True
            else:
                own = columns_of(items, q.codes)
                mask[i, own[own >= 0]] = True
        return mask & ~exclude

    def matrix(self, feats: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, names: list[str]) -> np.ndarray:
        """Feature matrix (len(rows) x features) of the (query, item) cells, columns in ``names`` order."""
        missing = [n for n in names if n not in feats]
        if missing:
            raise ValueError(f"the learned blend was trained with features {missing} that these signals do not give; "
                             "fit and tune the retriever again.")
        out = np.empty((len(rows), len(names)), dtype=np.float32)
        for j, name in enumerate(names):
            v = feats[name]
            out[:, j] = v[rows] if v.ndim == 1 else v[rows, cols]
        return out

    def rows(self, queries: list[Query], exclude: np.ndarray, true_cols: np.ndarray, top_n: int,
             items: np.ndarray | None = None) -> RankingRows:
        """Training rows of one batch: candidates of queries whose true item is among them (``true_cols``:
        column of each query's true item, -1 where it is not one of the columns)."""
        feats = self.build(queries, items)
        cells = self.candidates(feats, exclude, top_n, queries, items)
        has_truth = cells[np.arange(len(queries)), np.maximum(true_cols, 0)] & (true_cols >= 0)
        cells[~has_truth] = False
        rows, cols = np.nonzero(cells)
        return RankingRows(self.matrix(feats, rows, cols, self.names), (cols == true_cols[rows]).astype(np.int32),
                           np.bincount(rows, minlength=len(queries))[has_truth], int((~has_truth).sum()),
                           targets=np.flatnonzero(has_truth))

    @staticmethod
    def concat(chunks: list[RankingRows]) -> RankingRows:
        if not chunks:
            return RankingRows(np.zeros((0, 0), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64))
        return RankingRows(np.concatenate([c.features for c in chunks]), np.concatenate([c.labels for c in chunks]),
                           np.concatenate([c.groups for c in chunks]), sum(c.queries_without_truth for c in chunks),
                           sum(c.earlier_queries for c in chunks), np.concatenate([c.targets for c in chunks]))
