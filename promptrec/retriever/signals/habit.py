"""Personal time habits: the user's own items and categories at this hour and kind of day.

"Coffee at 8, gym at 7 pm, the same bar on Fridays": from the user's history before ``now``,
recency-decayed, each past event weighted by how close its local hour is to the hour of ``now``
(smoothed over neighbouring hours). Estimates back off to the user's overall profile and, for
users with little data, to everybody's profile at this hour.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.event_log import HOURS
from promptrec.retriever.signals.base import HOUR_NS, CategorySignal, Query, hour_kernel, recency_weights


class HabitSignal(CategorySignal):
    """log P(item | user, hour of ``now``) with back-off: user at this hour -> user overall -> all users at
    this hour. ``hour_prior`` and ``user_prior`` are the pseudo-counts of each back-off step.
    ``recency_rank`` adds, as a learned-blend feature, each of the user's items' place in the order of last
    use (1: the last item, 2: the one before it; return trips), not a change to the score."""

    def __init__(self, half_life_days: float = 14.0, hour_bandwidth: float = 1.0, hour_prior: float = 2.0,
                 user_prior: float = 5.0, recency_rank: bool = False):
        super().__init__("habit", {"half_life_days": half_life_days, "hour_bandwidth": hour_bandwidth,
                                   "hour_prior": hour_prior, "user_prior": user_prior, "recency_rank": recency_rank})

    def _global_at_hour(self, log: Any, now_ns: int, hour: int, cache: dict) -> np.ndarray:
        key = (log.slot(now_ns), hour)
        if key not in cache:
            hours, _ = log.calendar_counts(now_ns)
            at = hours @ hour_kernel(np.arange(HOURS), hour, self.params["hour_bandwidth"]) + 0.1
            cache[key] = at / at.sum()
        return cache[key]

    def _parts(self, q: Query, log: Any, cache: dict) -> dict[str, np.ndarray]:
        p, n = self.params, log.n_items
        hour, dow = log.local_calendar(q.now_ns)
        prior = self._global_at_hour(log, q.now_ns, hour, cache)
        if not len(q.codes):
            zero, missing = np.zeros(n), np.full(n, np.nan)
            return {"score": np.log(prior), "visits": zero, "recent": zero, "hour": zero, "hour_share": zero,
                    "hour_daytype": zero, "since": missing, "category_hour": zero, "category": zero} \
                | ({"recency_rank": missing} if p["recency_rank"] else {})
        hours, dows = q.calendar(log.timezone)
        rec = recency_weights(q.times, q.now_ns, p["half_life_days"])
        near = hour_kernel(hours, hour, p["hour_bandwidth"])
        same_daytype = (dows >= 5) == (dow >= 5)
        visits = np.bincount(q.codes, minlength=n).astype(float)
        recent = np.bincount(q.codes, weights=rec, minlength=n)
        at_hour = np.bincount(q.codes, weights=rec * near, minlength=n)
        at_hour_daytype = np.bincount(q.codes, weights=rec * near * same_daytype, minlength=n)
        last_seen = np.full(n, np.nan)
        last_seen[q.codes] = q.times  # times are oldest first: the last assignment wins
        since = np.log1p((q.now_ns - last_seen) / HOUR_NS)
        user = (recent + p["user_prior"] * prior) / (recent.sum() + p["user_prior"])
        score = np.log((at_hour + p["hour_prior"] * user) / (at_hour.sum() + p["hour_prior"]))
        cat_hour = self.cat_item @ at_hour
        cat_all = self.cat_item @ recent
        extra = {"recency_rank": _recency_rank(last_seen)} if p["recency_rank"] else {}
        return {"score": score, "visits": np.log1p(visits), "recent": recent, "hour": at_hour,
                "hour_share": at_hour / max(at_hour.sum(), 1e-9), "hour_daytype": at_hour_daytype, "since": since,
                "category_hour": self.item_cat @ (cat_hour / max(cat_hour.sum(), 1e-9)),
                "category": self.item_cat @ (cat_all / max(cat_all.sum(), 1e-9))} | extra

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        cache: dict = {}
        return np.stack([self._parts(q, log, cache)["score"] for q in queries])

    def features(self, queries: list[Query], log: Any) -> dict[str, np.ndarray]:
        cache: dict = {}
        parts = [self._parts(q, log, cache) for q in queries]
        return {("habit" if k == "score" else f"habit_{k}"): np.stack([pp[k] for pp in parts]) for k in parts[0]}


def _recency_rank(last_seen: np.ndarray) -> np.ndarray:
    """1 for the item used last, 2 for the distinct item used before it, ...; NaN for items never used."""
    rank = np.full(len(last_seen), np.nan)
    seen = np.flatnonzero(~np.isnan(last_seen))
    rank[seen[np.argsort(-last_seen[seen], kind="stable")]] = np.arange(1, len(seen) + 1)
    return rank
