"""The additive statistics of a training log: what a fit counts, in a form that shards of users add up.

    stats = EventStatistics.of(fit_data, window=5)            # one process
    stats = merge(EventStatistics.of(a), EventStatistics.of(b))  # two shards of disjoint users: the same

Per item event counts, item x local hour and item x weekday counts, first-seen times (a minimum, not a sum),
user x item counts, the transition signal's per-step pair matrices, the place signal's consecutive pairs and
item x value counts of context columns (device...) are all sums over users (or a minimum), so a log split by
whole users gives the same statistics shard by shard (promptrec.retriever.ray_fit). Every signal state a default
retriever fits from its training events follows from them (``promptrec.retriever.ray_fit.fit_from_statistics``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions, epoch_ns
from promptrec.data.times import local_hour_dow
from promptrec.retriever.signals.base import FitData, user_item_counts
from promptrec.retriever.signals.context_column import value_counts
from promptrec.retriever.signals.place import consecutive_pairs
from promptrec.retriever.signals.transition import step_pairs

HOURS, DAYS = 24, 7
NEVER = np.iinfo(np.int64).max  # first-seen time of an item without events


@dataclass
class EventStatistics:
    """Counts of a training log (events of catalogue items only), additive over disjoint sets of users."""

    n_items: int
    window: int  # transition steps counted (1 .. window)
    pair_half_life_hours: float  # 0: pairs counted; else weighted by the time between their events
    timezone: str  # where hours and weekdays are read
    item_events: np.ndarray  # int64 (items,)
    item_hour: np.ndarray  # int64 (items x 24), local hour
    item_weekday: np.ndarray  # int64 (items x 7), Monday = 0
    first_seen: np.ndarray  # int64 (items,) UTC ns of each item's first event, NEVER where none
    users: np.ndarray  # sorted user ids (str), the rows of user_items
    user_items: sp.csr_matrix  # float32 (users x items) event counts (as signals.base.user_item_counts)
    step_pairs: list[sp.csr_matrix]  # float64 (items x items) per step 1 .. window (signals.transition.step_pairs)
    place_gap_hours: float = 24.0  # consecutive events this close count as place pairs (the place signal's)
    place_pairs: sp.csr_matrix | None = None  # int64 (items x items) (signals.place.consecutive_pairs)
    # context column ("device" for FitData.train_devices) -> (seen values sorted, int64 items x values counts)
    context: dict[str, tuple[np.ndarray, sp.csr_matrix]] = field(default_factory=dict)
    catalog_digest: str = ""  # the catalogue whose item codes these are (catalog_digest), "" where not recorded

    @classmethod
    def empty(cls, n_items: int, *, window: int = 5, pair_half_life_hours: float = 0.0,
              timezone: str = "UTC", place_gap_hours: float = 24.0) -> "EventStatistics":
        """The statistics of no events (what merging starts from)."""
        return cls(n_items, int(window), float(pair_half_life_hours), timezone, np.zeros(n_items, np.int64),
                   np.zeros((n_items, HOURS), np.int64), np.zeros((n_items, DAYS), np.int64),
                   np.full(n_items, NEVER, np.int64), np.zeros(0, dtype=str),
                   sp.csr_matrix((0, n_items), dtype=np.float32),
                   [sp.csr_matrix((n_items, n_items), dtype=np.float64) for _ in range(int(window))],
                   float(place_gap_hours), sp.csr_matrix((n_items, n_items), dtype=np.int64), {})

    @classmethod
    def of(cls, data: FitData, *, window: int = 5, pair_half_life_hours: float = 0.0,
           place_gap_hours: float = 24.0) -> "EventStatistics":
        """The statistics of one process's training data (sorted by user, then time, as a fit's); context
        counts for ``FitData.train_devices`` (as "device") and each of ``FitData.train_context``."""
        n, codes = data.n_items, np.asarray(data.train_codes, dtype=np.int64)
        if data.train_times is None:
            raise ValueError("EventStatistics need the events' times (FitData.train_times).")
        times = np.asarray(data.train_times, dtype=np.int64)
        out = cls.empty(n, window=window, pair_half_life_hours=pair_half_life_hours, timezone=data.timezone,
                        place_gap_hours=place_gap_hours)
        columns = ({} if data.train_devices is None else {"device": data.train_devices}) | {
            c: v for c, v in data.train_context.items() if c != "device" or data.train_devices is None}
        for column, values in columns.items():
            vocab, counts = value_counts(values, codes, n)
            out.context[column] = (vocab, canonical(counts[:, :len(vocab)].astype(np.int64)))
        if not len(codes):
            return out
        hour, dow = local_hour_dow(times, data.timezone)
        out.item_events = np.bincount(codes, minlength=n).astype(np.int64)
        out.item_hour = np.bincount(codes * HOURS + hour, minlength=n * HOURS).reshape(n, HOURS).astype(np.int64)
        out.item_weekday = np.bincount(codes * DAYS + dow, minlength=n * DAYS).reshape(n, DAYS).astype(np.int64)
        np.minimum.at(out.first_seen, codes, times)
        out.users, out.user_items = user_item_counts(data)
        out.step_pairs = [canonical(m) for m in step_pairs(data, int(window), pair_half_life_hours)]
        out.place_pairs = canonical(consecutive_pairs(data, place_gap_hours))
        return out

    @classmethod
    def of_log(cls, log: Interactions, catalog: Catalog, *, window: int = 5, pair_half_life_hours: float = 0.0,
               place_gap_hours: float = 24.0, context: Sequence[str] = ()) -> "EventStatistics":
        """The statistics of an event log, as ``TimeAwareRetriever.fit`` reads it (events of unknown items
        dropped), with context counts for the log's ``context`` columns ("device" among them if wanted)."""
        out = cls.of(fit_data_of(log, catalog, context), window=window, pair_half_life_hours=pair_half_life_hours,
                     place_gap_hours=place_gap_hours)
        out.catalog_digest = catalog_digest(catalog)
        return out

    @property
    def item_returns(self) -> np.ndarray:
        """int64 (items,) each item's events that are a return (a user's event at an item they used before)."""
        return self.item_events - self.item_users

    @property
    def item_users(self) -> np.ndarray:
        """int64 (items,) the distinct users of each item."""
        return np.bincount(self.user_items.indices, minlength=self.n_items).astype(np.int64)

    def same_as(self, other: "EventStatistics") -> list[str]:
        """The names of the fields that differ (exactly); empty when both are the same statistics."""
        return [f.name for f in fields(self) if not _equal(getattr(self, f.name), getattr(other, f.name))]


def merge(a: EventStatistics, b: EventStatistics) -> EventStatistics:
    """The statistics of two shards of disjoint users together: sums, the earlier first-seen time, user rows of
    both (sorted by user id)."""
    settings = ("n_items", "window", "pair_half_life_hours", "timezone", "place_gap_hours")
    differ = [s for s in settings if getattr(a, s) != getattr(b, s)]
    if differ:
        raise ValueError(f"cannot merge statistics computed with other settings: {differ}.")
    digests = {a.catalog_digest, b.catalog_digest} - {""}
    if len(digests) > 1:
        raise ValueError("cannot merge statistics counted against different catalogues (item codes differ).")
    users = np.concatenate([a.users.astype(str), b.users.astype(str)])
    order = np.argsort(users, kind="stable")
    users = users[order]
    if len(users) > 1 and (users[1:] == users[:-1]).any():
        shared = users[1:][users[1:] == users[:-1]][:3].tolist()
        raise ValueError(f"shards share users (e.g. {shared}): split a log by whole users.")
    return EventStatistics(
        a.n_items, a.window, a.pair_half_life_hours, a.timezone, a.item_events + b.item_events,
        a.item_hour + b.item_hour, a.item_weekday + b.item_weekday, np.minimum(a.first_seen, b.first_seen),
        users, canonical(sp.vstack([a.user_items, b.user_items], format="csr")[order]),
        [canonical(x + y) for x, y in zip(a.step_pairs, b.step_pairs)], a.place_gap_hours,
        canonical(a.place_pairs + b.place_pairs), merge_context(a.context, b.context, a.n_items),
        next(iter(digests), ""))


def merge_context(a: dict[str, tuple[np.ndarray, sp.csr_matrix]], b: dict[str, tuple[np.ndarray, sp.csr_matrix]],
                  n_items: int) -> dict[str, tuple[np.ndarray, sp.csr_matrix]]:
    """Context counts of two shards together: per column, the union of the seen values (sorted), counts added."""
    out = {}
    for column in sorted(set(a) | set(b)):
        parts = [x[column] for x in (a, b) if column in x]
        vocab = np.array(sorted(set().union(*(v.tolist() for v, _ in parts))), dtype=str)
        total = sp.csr_matrix((n_items, len(vocab)), dtype=np.int64)
        for values, counts in parts:
            into = sp.csr_matrix((np.ones(len(values), np.int64), (np.arange(len(values)),
                                  np.searchsorted(vocab, values))), shape=(len(values), len(vocab)))
            total = total + counts.astype(np.int64) @ into
        out[column] = (vocab, canonical(total))
    return out


def dense_counts(entry: tuple[np.ndarray, sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray]:
    """A column's (values, counts) as ``signals.context_column.value_counts`` gives them (float, at least one column)."""
    vocab, counts = entry
    out = np.zeros((counts.shape[0], max(1, len(vocab))))
    out[:, :len(vocab)] = counts.toarray()
    return vocab, out


def fit_data_of(log: Interactions, catalog: Catalog, context: Sequence[str] = ()) -> FitData:
    """The part of a fit's FitData the statistics read: users, item codes and times (unknown items dropped), and
    the ``context`` columns the log has ("device" as FitData.train_devices)."""
    frame = log.frame
    codes = catalog.codes_of(frame["item_id"])
    known = codes >= 0

    def kept(values: np.ndarray) -> np.ndarray:
        return values if known.all() else values[known]

    ts = epoch_ns(frame["timestamp"])
    users = frame["user_id"].to_numpy()
    columns = {c: kept(frame[c].to_numpy(dtype=object)) for c in context if c in frame.columns}
    return FitData(kept(users), codes[known].astype(np.int64), len(catalog), None, [], np.zeros(0, np.int64),
                   kept(ts), timezone=log.timezone, train_devices=columns.pop("device", None),
                   train_context=columns)


def catalog_digest(catalog: Catalog) -> str:
    """A short hash of the catalogue's item ids in code order: statistics count items by code."""
    return hashlib.sha256("\n".join(map(str, catalog.ids)).encode()).hexdigest()[:16]


def refuse_other_catalog(stats: EventStatistics, catalog: Catalog) -> None:
    """Raise if ``stats`` recorded a catalogue other than ``catalog``: their item codes would be misread."""
    if stats.catalog_digest and stats.catalog_digest != catalog_digest(catalog):
        raise ValueError("the statistics were counted against another catalogue (other items, or another order): "
                         "count them again with this one.")


def canonical(m: Any) -> sp.csr_matrix:
    """A CSR matrix with sorted indices and no duplicates (equal matrices then have equal arrays)."""
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.sort_indices()
    return m


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, tuple):
        return isinstance(y, tuple) and len(x) == len(y) and all(_equal(u, v) for u, v in zip(x, y))
    if sp.issparse(x) or sp.issparse(y):
        return sp.issparse(x) and sp.issparse(y) and x.shape == y.shape and (x != y).nnz == 0
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(_equal(u, v) for u, v in zip(x, y))
    if isinstance(x, np.ndarray):
        return isinstance(y, np.ndarray) and x.shape == y.shape and np.array_equal(x, y)
    return x == y
