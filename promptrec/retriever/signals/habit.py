"""Personal time habits: the user's own items and categories at this hour and kind of day.

"Coffee at 8, gym at 7 pm, the same bar on Fridays": from the user's history before ``now``,
recency-decayed, each past event weighted by how close its local hour is to the hour of ``now``
(smoothed over neighbouring hours). Estimates back off to the user's overall profile and, for
users with little data, to everybody's profile at this hour.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.signals.base import (HOUR_NS, CategorySignal, Query, columns_of, hour_kernel, joined,
                                              local_hour_dow, recency_weights)


class HabitSignal(CategorySignal):
    """log P(item | user, hour of ``now``) with back-off: user at this hour -> user overall -> all users at
    this hour. ``hour_prior`` and ``user_prior`` are the pseudo-counts of each back-off step.
    ``recency_rank`` adds, as a learned-blend feature, each of the user's items' place in the order of last
    use (1: the last item, 2: the one before it; return trips), not a change to the score. ``category_since``
    adds the hours since the user last chose anything of each item's categories ("coffee an hour ago": not
    another coffee shop now), as a learned-blend feature. ``user_style`` adds three per-user features that say
    how this user's past returns went (smoothed shares over the history: returns among all events, returns
    within 3 steps of the last visit, returns at the hour of the last visit), so that the blend can weigh
    recency for users who loop and the hour for users with a routine."""

    scores_items = True

    def __init__(self, half_life_days: float = 14.0, hour_bandwidth: float = 1.0, hour_prior: float = 2.0,
                 user_prior: float = 5.0, recency_rank: bool = False, category_since: bool = False,
                 user_style: bool = False):
        super().__init__("habit", {"half_life_days": half_life_days, "hour_bandwidth": hour_bandwidth,
                                   "hour_prior": hour_prior, "user_prior": user_prior, "recency_rank": recency_rank,
                                   "category_since": category_since, "user_style": user_style})

    def _global_at_hour(self, log: Any, now_ns: int, hour: int) -> np.ndarray:
        """Everybody's item shares at this hour (smoothed over neighbouring hours), once per slot (log.memo)."""
        def compute() -> np.ndarray:
            at = log.hours_near(now_ns, hour, self.params["hour_bandwidth"]) + 0.1
            return at / at.sum()

        return log.memo(("habit_prior", id(self), self.params["hour_bandwidth"], log.slot(now_ns), hour), compute)

    def _parts(self, queries: list[Query], log: Any, score_only: bool = False, items: np.ndarray | None = None,
               ) -> dict[str, np.ndarray]:
        """name -> (batch x items) array, every query's history summed in one pass (``np.bincount`` over
        (query, item) cells, each cell's events added in the same order as one query at a time would).
        ``score_only``: just "score" (what a linear blend uses; the same bits, less work). ``items``: only
        those columns (sorted codes); totals over the user's history still count every event."""
        p, batch = self.params, len(queries)
        now = np.array([q.now_ns for q in queries], dtype=np.int64)
        hour, dow = local_hour_dow(now, log.timezone)
        columns = slice(None) if items is None else items
        prior = np.stack([self._global_at_hour(log, int(t), int(h))[columns] for t, h in zip(now, hour)])
        lengths = np.array([len(q.codes) for q in queries])
        owner = np.repeat(np.arange(batch), lengths)
        empty = lengths == 0
        codes, times = joined([q.codes for q in queries]), joined([q.times for q in queries])
        calendars = [q.calendar(log.timezone) for q in queries if len(q.codes)]
        hours, dows = joined([c[0] for c in calendars]), joined([c[1] for c in calendars])
        rec = recency_weights(times, now[owner], p["half_life_days"])
        near = hour_kernel(hours, hour[owner], p["hour_bandwidth"])
        same_daytype = (dows >= 5) == (dow[owner] >= 5)
        n = log.n_items if items is None else len(items)
        column = codes if items is None else columns_of(items, codes)
        keep = slice(None) if items is None else column >= 0  # the events of pooled items
        cell = (owner * n + column)[keep]

        def per_cell(weights: np.ndarray | None = None) -> np.ndarray:
            w = None if weights is None else weights[keep]
            return np.bincount(cell, weights=w, minlength=batch * n).reshape(batch, n).astype(np.float64)

        def row_total(weights: np.ndarray, cells: np.ndarray) -> np.ndarray:
            """(batch x 1) each user's total weight over all items (pooled or not)."""
            if items is None:
                return _row_sums(cells)
            return np.bincount(owner, weights=weights, minlength=batch).reshape(-1, 1)

        recent, at_hour = per_cell(rec), per_cell(rec * near)
        at_hour_total = row_total(rec * near, at_hour)
        user = (recent + p["user_prior"] * prior) / (row_total(rec, recent) + p["user_prior"])
        score = np.log((at_hour + p["hour_prior"] * user) / (at_hour_total + p["hour_prior"]))
        score[empty] = np.log(prior[empty])
        if score_only:
            return {"score": score}
        visits, at_hour_daytype = per_cell(), per_cell(rec * near * same_daytype)
        last_seen = np.full(batch * n, np.nan)
        last_seen[cell] = times[keep]  # times are oldest first: the last assignment wins
        last_seen = last_seen.reshape(batch, n)
        since = np.log1p((now[:, None] - last_seen) / HOUR_NS)
        item_cat = self.item_cat if items is None else self.item_cat[items]
        extra = {"recency_rank": np.stack([_recency_rank(row) for row in last_seen])} if p["recency_rank"] else {}
        if p["category_since"]:
            if items is None:
                last_of_kind = _category_last_seen(last_seen, item_cat)
            else:  # every place of the user's history counts, pooled or not
                used = np.unique(codes)
                last_used = np.full((batch, len(used)), np.nan)
                last_used[owner, np.searchsorted(used, codes)] = times
                last_of_kind = _category_last_seen(last_used, self.item_cat[used], of=item_cat)
            extra["category_since"] = np.log1p((now[:, None] - last_of_kind) / HOUR_NS)
        if p.get("user_style"):
            style = np.stack([user_style_shares(q.codes, q.calendar(log.timezone)[0]) for q in queries])
            extra |= {f"style_{name}": np.repeat(style[:, j:j + 1], n, axis=1)
                      for j, name in enumerate(("returns", "loops", "hourly"))}

        def category_share(per_item: np.ndarray, weights: np.ndarray) -> np.ndarray:
            """(batch x items) each item's categories' share of the row's weight (summed per category over the
            whole history, normalised)."""
            if items is None:
                per_cat = (self.cat_item @ per_item.T).T
            else:
                per_cat = (sp.csr_matrix((weights, (owner, codes)), shape=(batch, log.n_items)) @ self.item_cat).toarray()
            return (item_cat @ (per_cat / np.maximum(_row_sums(per_cat), 1e-9)).T).T

        return {"score": score, "visits": np.log1p(visits), "recent": recent, "hour": at_hour,
                "hour_share": at_hour / np.maximum(at_hour_total, 1e-9), "hour_daytype": at_hour_daytype,
                "since": since, "category_hour": category_share(at_hour, rec * near),
                "category": category_share(recent, rec)} | extra

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        return self._parts(queries, log, score_only=True, items=items)["score"]

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {("habit" if k == "score" else f"habit_{k}"): v for k, v in self._parts(queries, log, items=items).items()}


def _category_last_seen(last_seen: np.ndarray, item_cat: Any, of: Any = None) -> np.ndarray:
    """(batch x items) the last time each query's user chose any item sharing a category with each item
    (NaN: never, or an item without categories), from the per-item last times; ``item_cat`` (items x
    categories) is of the same items, ``of`` (default ``item_cat``) of the items to answer for."""
    pairs = item_cat.tocsr()  # (item, category) pairs, each item's categories together
    item_of = np.repeat(np.arange(pairs.shape[0]), np.diff(pairs.indptr))
    per_cat = np.full((len(last_seen), pairs.shape[1]), np.nan)
    np.fmax.at(per_cat.T, pairs.indices, last_seen.T[item_of])
    pairs = pairs if of is None else of.tocsr()
    out = np.full((len(last_seen), pairs.shape[0]), np.nan)
    has = np.diff(pairs.indptr) > 0
    if has.any():
        values = per_cat[:, pairs.indices]
        out[:, has] = np.fmax.reduceat(values, pairs.indptr[:-1][has], axis=1)
    return out


def user_style_shares(codes: np.ndarray, hours: np.ndarray, prior: float = 2.0) -> np.ndarray:
    """How a user's past events went: the share of returns to an earlier item, and among returns the share
    within 3 events of the previous visit and the share within an hour of day of it; each smoothed toward
    0.5 with ``prior`` pseudo-events."""
    previous: dict[int, tuple[int, int]] = {}  # item -> (position, hour) of its last event so far
    returns = loops = hourly = 0
    for i, (code, hour) in enumerate(zip(codes.tolist(), hours.tolist())):
        if code in previous:
            j, last_hour = previous[code]
            returns += 1
            loops += i - j <= 3
            gap = abs(hour - last_hour)
            hourly += min(gap, 24 - gap) <= 1
        previous[code] = (i, hour)
    return np.array([(returns + prior / 2) / (len(codes) + prior), (loops + prior / 2) / (returns + prior),
                     (hourly + prior / 2) / (returns + prior)])


def _row_sums(a: np.ndarray) -> np.ndarray:
    """(batch x 1) sums of each row, each added as ``row.sum()`` adds it alone."""
    return np.array([[row.sum()] for row in a]).reshape(-1, 1)


def _recency_rank(last_seen: np.ndarray) -> np.ndarray:
    """1 for the item used last, 2 for the distinct item used before it, ...; NaN for items never used."""
    rank = np.full(len(last_seen), np.nan)
    seen = np.flatnonzero(~np.isnan(last_seen))
    rank[seen[np.argsort(-last_seen[seen], kind="stable")]] = np.arange(1, len(seen) + 1)
    return rank
