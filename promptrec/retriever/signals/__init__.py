"""The retriever's signals, one file each. Each scores every catalogue item for a batch of queries (or, with a
candidate pool, the pooled items only: ``Signal.scores_items``).

| name | what it knows |
|---|---|
| content | item embeddings similar to the user's history (recency-weighted) |
| transition | what follows the user's last items (everybody's and the user's own), weighted by elapsed time |
| trending | popularity in a recent window before ``now`` |
| time_context | items that fit the local hour and weekday of ``now`` (everybody) |
| freshness | new items |
| habit | the user's own items and categories at this hour (personal time habits) |
| place | distance from the request's location (or the user's last place), busy areas |
| device | items people use on the request's device |
| context-<column> | items people use under the request's value of a declared context column (weather...) |
| user_frequency | the user's most visited items (a baseline; optionally at this hour) |
| neighbours | what the most similar users chose (user-based collaborative filtering) |
| audience | how many different people use an item, and how much of its use is the same people returning |
| returns | how often a visit to each kind of item is a return, for everybody and for this user (features only) |
| sasrec | a trained SASRec's next-item scores (trained in ``fit``; torch) |
| sasrec_time | the same model told each event's gap, hour and weekday and those of ``now`` |
"""

from promptrec.retriever.signals.base import (DAY_NS, HOUR_NS, FitData, Query, Signal, category_matrix,
                                              hour_kernel, local_hour_dow, recency_weights)
from promptrec.retriever.signals.audience import AudienceSignal
from promptrec.retriever.signals.content import ContentSignal
from promptrec.retriever.signals.context_column import ContextColumnSignal, column_of, signal_name
from promptrec.retriever.signals.device import DeviceSignal
from promptrec.retriever.signals.freshness import FreshnessSignal
from promptrec.retriever.signals.habit import HabitSignal
from promptrec.retriever.signals.neighbours import NeighboursSignal
from promptrec.retriever.signals.place import PlaceSignal, haversine_km
from promptrec.retriever.signals.returns import ReturnsSignal
from promptrec.retriever.signals.sequential import SASRecSignal, TimeSASRecSignal
from promptrec.retriever.signals.time_context import TimeContextSignal
from promptrec.retriever.signals.transition import TransitionSignal
from promptrec.retriever.signals.trending import TrendingSignal
from promptrec.retriever.signals.user_frequency import UserFrequencySignal

SIGNALS = {"content": ContentSignal, "transition": TransitionSignal, "trending": TrendingSignal,
           "time_context": TimeContextSignal, "freshness": FreshnessSignal, "habit": HabitSignal,
           "place": PlaceSignal, "device": DeviceSignal, "user_frequency": UserFrequencySignal,
           "neighbours": NeighboursSignal, "audience": AudienceSignal, "returns": ReturnsSignal,
           "sasrec": SASRecSignal, "sasrec_time": TimeSASRecSignal}


def make_signal(name: str, params: dict | None = None) -> Signal:
    """The signal called ``name`` (``context-<column>`` for a declared context column) with ``params``."""
    column = column_of(name)
    if column is not None:
        return ContextColumnSignal(column, **(params or {}))
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; choose from {sorted(SIGNALS)} or 'context-<column>' for a "
                         "declared context column.")
    return SIGNALS[name](**(params or {}))


__all__ = ["DAY_NS", "HOUR_NS", "SIGNALS", "FitData", "Query", "Signal", "category_matrix", "hour_kernel",
           "local_hour_dow", "recency_weights", "haversine_km", "AudienceSignal", "ContentSignal",
           "ContextColumnSignal", "column_of", "make_signal", "signal_name", "DeviceSignal",
           "FreshnessSignal", "HabitSignal", "NeighboursSignal", "PlaceSignal", "ReturnsSignal", "SASRecSignal",
           "TimeContextSignal", "TimeSASRecSignal", "TransitionSignal", "TrendingSignal", "UserFrequencySignal"]
