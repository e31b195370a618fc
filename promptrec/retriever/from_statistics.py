"""Fitting a retriever from :class:`EventStatistics` instead of its training events (promptrec.retriever.ray_fit
counts them on Ray): every signal's state through the code its own fit runs on its counts, so the retriever
equals ``TimeAwareRetriever.fit`` on the same events.

    retriever = fit_from_statistics(TimeAwareRetriever(), stats, log, catalog, index)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.retriever.signals import (AudienceSignal, ContentSignal, ContextColumnSignal, FreshnessSignal,
                                         HabitSignal, PlaceSignal, ReturnsSignal, Signal, TimeContextSignal,
                                         TransitionSignal, TrendingSignal, UserFrequencySignal)
from promptrec.retriever.signals.base import FitData
from promptrec.retriever.statistics import EventStatistics, dense_counts, refuse_other_catalog

EVENT_FREE = (ContentSignal, TrendingSignal, FreshnessSignal, HabitSignal, UserFrequencySignal)  # fit reads no events


def apply_statistics(retriever: Any, stats: EventStatistics) -> None:
    """Load the transition and audience state computed from ``stats`` into a fitted retriever's signals (those
    it has), as their own fit on the same events would have set it; the retriever then saves and loads as usual.
    (:func:`fit_from_statistics` fits a whole retriever from them.)"""
    if retriever.catalog is None or len(retriever.catalog) != stats.n_items:
        raise ValueError("apply_statistics needs a retriever fitted with the catalogue the statistics counted.")
    refuse_other_catalog(stats, retriever.catalog)
    for name in ("transition", "audience"):
        if name in retriever.signals:
            fit_signal(retriever.signals[name], stats, None)


def audience_state(stats: EventStatistics) -> dict[str, np.ndarray]:
    """The audience signal's state (distinct users and events per user of each item), as its fit computes it."""
    counts = stats.user_items
    events = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
    users = np.bincount(counts.indices, minlength=stats.n_items).astype(np.float64)
    return {"users": users, "events_per_user": events / np.maximum(users, 1.0)}


def fit_signal(signal: Signal, stats: EventStatistics, data: FitData | None) -> None:
    """Fit one signal from ``stats`` and ``data`` (the catalogue's part of a FitData, without events): the state
    its own fit on the counted events gives, through the same code. Signals that learn nothing from the events
    (content, trending, freshness, habit, user_frequency) fit on ``data`` alone; others (neighbours, sasrec...)
    are refused."""
    if isinstance(signal, TransitionSignal):
        p = signal.params
        wanted = (int(p["window"]), float(p.get("pair_half_life_hours", 0) or 0))
        if wanted != (stats.window, stats.pair_half_life_hours):
            raise ValueError(f"the transition signal counts (window, pair_half_life_hours) = {wanted}; the "
                             f"statistics have {(stats.window, stats.pair_half_life_hours)}.")
        signal.load_state({"matrix": signal.matrix_from_pairs(stats.step_pairs, stats.n_items)})
    elif isinstance(signal, AudienceSignal):
        signal.load_state(audience_state(stats))
    elif isinstance(signal, TimeContextSignal):
        signal.fit(data)  # categories (no events: both parts)
        if stats.item_events.sum():
            signal.fit_calendar(stats.item_hour.sum(axis=0), stats.item_weekday.sum(axis=0))
    elif isinstance(signal, PlaceSignal):
        if signal.params["scale_km"] is None and float(signal.params["max_gap_hours"]) != stats.place_gap_hours:
            raise ValueError(f"the place signal pairs events less than {signal.params['max_gap_hours']} hours "
                             f"apart; the statistics counted {stats.place_gap_hours} (place_gap_hours).")
        signal.fit(data, pairs=stats.place_pairs)
    elif isinstance(signal, ContextColumnSignal):
        if signal.column not in stats.context:
            raise ValueError(f"signal {signal.name!r} needs counts of the {signal.column!r} column: count them "
                             f"with context=[{signal.column!r}] (the statistics have {sorted(stats.context)}).")
        signal.fit_counts(*dense_counts(stats.context[signal.column]), data)
    elif isinstance(signal, ReturnsSignal):
        signal.fit_counts(stats.item_events, stats.item_returns, data)
    elif isinstance(signal, EVENT_FREE):
        signal.fit(data)
    else:
        raise ValueError(f"signal {signal.name!r} cannot be fitted from statistics; fit it in one process.")


def fit_from_statistics(retriever: Any, stats: EventStatistics, log: Interactions, catalog: Catalog,
                        index: Any = None) -> Any:
    """Fit ``retriever`` (a new TimeAwareRetriever) as ``retriever.fit(train, catalog, index, log=log)`` would,
    with every signal's state and the repeat rate (hence the signals ``signals="auto"`` chooses) taken from
    ``stats`` (the statistics of ``train``) instead of the events; ``log`` gives histories and time-dependent
    global statistics (``use_log``), the time range and whether times are known, the device column and declared
    context."""
    if len(catalog) != stats.n_items:
        raise ValueError(f"the statistics counted {stats.n_items} items; the catalogue has {len(catalog)}.")
    refuse_other_catalog(stats, catalog)
    if log.timezone != stats.timezone:
        raise ValueError(f"the statistics read hours in {stats.timezone}; the log's time zone is {log.timezone}.")
    events = int(stats.item_events.sum())
    # not refittable: tune() then learns from validation targets only, with no refits of the whole log here
    data = retriever.prepare_fit(log, catalog, index, int(stats.item_returns.sum()) / events if events else 0.0,
                                 refittable=False)
    for signal in retriever.signals.values():
        fit_signal(signal, stats, data)
    retriever.finish_fit(data, log, events)
    retriever.use_log(log)
    return retriever
