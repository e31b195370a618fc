"""Evidence: why a candidate is there, as facts a small LLM can read in its prompt.

    facts = retriever.explain("u42", Context(now, location=(40.75, -73.98)), ["p1", "p2"])
    facts[0].visits, facts[0].visits_this_time, facts[0].distance_km, facts[0].follows_last

Every fact is computed from events strictly before ``now``: the user's own history (how often
and when they used the item, how often at this time of day, their visits to its category), the
item's place relative to the request (or to the user's last place), and everyone's behaviour
(how many events it had, how that ranks among the items used so far, in the last week, at this
time of day, its busiest weekday and part of day, and how often people went to it straight after
the item the user had last). Templates turn
these into words (``prompts/evidence.j2``).

Transition counts are read from the log the retriever was fitted with (``use_log``); events added
live (``add_events``) count in every other fact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from promptrec.data.times import PARTS_OF_DAY, part_of_hour, slot_name
from promptrec.retriever.signals.base import Query
from promptrec.retriever.signals.place import haversine_km

DAY_NS = 86_400 * 10**9
WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
PARTS = tuple(name for _, name in PARTS_OF_DAY)  # morning, afternoon, evening, night: the templates' words
PART_BY_HOUR = tuple(part_of_hour(h) for h in range(24))
HOUR_TO_PART = np.array([[PART_BY_HOUR[h] == p for p in PARTS] for h in range(24)], dtype=np.float64)  # 24 x 4
MIN_EVENTS_FOR_PROFILE = 8  # an item's busiest day / part of day is said only with this many events
NEXT_GAP_NS = DAY_NS  # "went there next": the following event of the same user, less than a day later


@dataclass(frozen=True)
class CandidateEvidence:
    """What is known about one candidate for one user at ``now`` (all before ``now``)."""

    item_id: str
    visits: int  # the user's events with this item
    last_visit: pd.Timestamp | None  # the latest of them (UTC)
    visits_this_time: int  # of the visits, those within an hour of now's local hour of day
    usual_time: str | None  # "weekday evenings" when most of >= 2 visits share a slot
    category_visits: int  # the user's events with items of this item's first category
    distance_km: float | None  # from the request's location, else from the user's last place
    events: int  # everyone's events with this item
    events_last_week: int  # of those, in the 7 days before now
    share_this_time: float | None  # fraction of its events within an hour of now's hour of day (>= 8 events)
    busiest_day: str | None  # "Fridays" when clearly above the other days (>= 8 events)
    busiest_part: str | None  # "evening" when clearly above the other parts of the day (>= 8 events)
    follows_last: int  # times anyone went to this item next after the user's last item
    popularity: float | None = None  # share of the items used before now with fewer events (None: nobody had it)


class PairCounts:
    """Consecutive (item, next item) pairs of the same user within a day, sorted for counts before ``now``."""

    def __init__(self, users: np.ndarray, codes: np.ndarray, times: np.ndarray, n_items: int):
        same = (users[1:] == users[:-1]) & (codes[:-1] >= 0) & (codes[1:] >= 0) & ((times[1:] - times[:-1]) < NEXT_GAP_NS)
        key = codes[:-1][same].astype(np.int64) * n_items + codes[1:][same]
        ts = times[1:][same]
        order = np.lexsort((ts, key))
        self.key, self.ts, self.n_items = key[order], ts[order], n_items

    def count(self, prev: int, nxt: np.ndarray, now_ns: int) -> np.ndarray:
        keys = prev * self.n_items + np.asarray(nxt, dtype=np.int64)
        lo = np.searchsorted(self.key, keys, side="left")
        hi = np.searchsorted(self.key, keys, side="right")
        return np.array([int(np.searchsorted(self.ts[a:b], now_ns, side="left")) for a, b in zip(lo, hi)])


def _near_hour(hours: np.ndarray, hour: int) -> np.ndarray:
    d = np.abs(np.asarray(hours) - hour) % 24
    return np.minimum(d, 24 - d) <= 1


def _clear_peak(counts: np.ndarray, names: Sequence[str]) -> str | None:
    """The name of the largest count when it is at least 1.5 times the mean of the others."""
    if counts.sum() < MIN_EVENTS_FOR_PROFILE:
        return None
    top = int(np.argmax(counts))
    rest = np.delete(counts, top)
    return names[top] if counts[top] >= 1.5 * max(rest.mean(), 1e-9) else None


def explain(retriever: Any, query: Query, item_ids: Sequence[str]) -> list[CandidateEvidence]:
    """Evidence for each of ``item_ids`` for the user and time of ``query`` (see the module docstring)."""
    catalog, log = retriever.catalog, retriever.log
    codes = catalog.codes(list(item_ids))
    now_ns = query.now_ns
    hours, dows = query.calendar(log.timezone)
    now_hour, _ = log.local_calendar(now_ns)
    hour_counts, dow_counts = log.calendar_counts(now_ns)
    week = np.bincount(log.codes[log.position(now_ns - 7 * DAY_NS):log.position(now_ns)], minlength=log.n_items)
    totals = dow_counts.sum(axis=1)
    used = np.sort(totals[totals > 0])
    first_cat, coords = _item_table(retriever)
    user_cats = Counter(first_cat[query.codes].tolist())
    here = None
    if coords is not None:
        if query.location is not None:
            here = query.location
        elif len(query.codes) and np.isfinite(coords[query.codes[-1]]).all():
            here = tuple(coords[query.codes[-1]])
    follows = np.zeros(len(codes), dtype=int)
    if len(query.codes):
        follows = _pairs(retriever).count(int(query.codes[-1]), codes, now_ns)
    out = []
    for j, (item_id, c) in enumerate(zip(item_ids, codes)):
        mine = query.codes == c
        n_mine = int(mine.sum())
        usual = None
        if n_mine >= 2:
            slot, n = Counter(slot_name(int(h), int(d)) for h, d in zip(hours[mine], dows[mine])).most_common(1)[0]
            usual = slot if n * 2 > n_mine else None
        dist = None
        if here is not None and np.isfinite(coords[c]).all():
            dist = float(haversine_km(here[0], here[1], coords[c, 0], coords[c, 1]))
        total = float(dow_counts[c].sum())
        by_part = hour_counts[c] @ HOUR_TO_PART
        out.append(CandidateEvidence(
            item_id=str(item_id), visits=n_mine,
            last_visit=pd.Timestamp(int(query.times[mine].max()), tz="UTC") if n_mine else None,
            visits_this_time=int(_near_hour(hours[mine], now_hour).sum()) if n_mine else 0,
            usual_time=usual, category_visits=user_cats[int(first_cat[c])] if first_cat[c] >= 0 else 0,
            distance_km=dist, events=int(total), events_last_week=int(week[c]),
            share_this_time=float(hour_counts[c][_near_hour(np.arange(24), now_hour)].sum() / total)
            if total >= MIN_EVENTS_FOR_PROFILE else None,
            busiest_day=_clear_peak(dow_counts[c], WEEKDAYS), busiest_part=_clear_peak(by_part, PARTS),
            follows_last=int(follows[j]),
            popularity=float(np.searchsorted(used, total, side="left") / len(used)) if total > 0 else None))
    return out


def _item_table(retriever: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Per catalogue item: the code of its first category (-1: none) and its coordinates; built once per catalogue
    (not per request)."""
    cached = getattr(retriever, "_evidence_items", None)
    if cached is None or cached[0] is not retriever.catalog:
        first = [cats[0] if cats else None for cats in retriever.catalog.frame["categories"]]
        names = {c: i for i, c in enumerate(sorted({c for c in first if c is not None}))}
        codes = np.array([-1 if c is None else names[c] for c in first], dtype=np.int64)
        retriever._evidence_items = cached = (retriever.catalog, codes, retriever.catalog.coordinates())
    return cached[1], cached[2]


def _pairs(retriever: Any) -> PairCounts:
    """The retriever's pair counts, built once per event log."""
    cached = getattr(retriever, "_pair_counts", None)
    if cached is None or cached[0] is not retriever.events:
        ev = retriever.events
        pairs = PairCounts(ev.frame["user_id"].to_numpy(), retriever._row_codes, ev._ts, len(retriever.catalog))
        retriever._pair_counts = cached = (ev, pairs)
    return cached[1]
