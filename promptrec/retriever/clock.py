"""Which signals read clock time, for data whose times are only an order (``Interactions.times_known`` False).

Order-based signals (transition, sequential, content, co-occurrence, popularity over all earlier events) work on
ordinal pseudo-times; signals that read the hour, the weekday or ages in days would learn from the invented
times, so ``signals="auto"`` leaves them out and naming one explicitly is an error (:func:`refuse_clock`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

FOREVER_DAYS = 1e6  # a window or half-life at least this long reads no clock: every earlier event counts alike
# trending without a window: popularity over every earlier event (the eval's popularity baseline uses these)
POPULARITY = {"half_life_days": 1e7, "window_days": 1e7}
ORDER_SETTINGS = {"transition": {"gap_half_life_hours": 0.0}, "content": {"half_life_days": 1e7}}
ALWAYS = {"time_context": "it scores items by the hour and weekday of now",
          "freshness": "it scores items by how long ago they first appeared",
          "habit": "it scores the user's items by the hour of day",
          "sasrec_time": "its model reads each event's gap, hour and weekday"}


def clock_use(name: str, params: Mapping[str, Any]) -> str | None:
    """Why the signal ``name`` with ``params`` reads clock time, or None when it reads the order only."""
    if name in ALWAYS:
        return ALWAYS[name]
    if name == "trending" and min(float(params.get(k, 0.0)) for k in POPULARITY) < FOREVER_DAYS:
        return ("it counts events in a window of days before now (half_life_days and window_days of 1e7 make it "
                "popularity over all earlier events, which needs no clock)")
    if name == "user_frequency" and params.get("hour_window") is not None:
        return "it counts the user's items at this hour of day (hour_window)"
    if name == "transition" and float(params.get("pair_half_life_hours", 0) or 0) > 0:
        return "it weighs training pairs by their age in hours (pair_half_life_hours)"
    return None


class ClockSignalError(ValueError):
    """A signal that reads clock time was asked for on data whose times are only an order."""


def refuse_clock(signals: Mapping[str, Any]) -> None:
    """Raise for the first of ``signals`` (name -> Signal) that reads clock time."""
    for name, s in signals.items():
        why = clock_use(name, getattr(s, "params", {}))
        if why:
            raise ClockSignalError(f"signal '{name}' reads clock time ({why}), and this data has no times: its events "
                             "carry only each user's order (a sequence file). Leave it out of signals, or use "
                             "signals='auto', which leaves out every signal that reads the clock.")


def order_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the order-based signals' weighting by elapsed time turned off where not set (pseudo-times
    say nothing about how long ago an event was, and a request's real ``now`` lies years after them)."""
    out = dict(params)
    for name, settings in ORDER_SETTINGS.items():
        out[name] = {**settings, **params.get(name, {})}
    return out


def order_only(names: Sequence[str], params: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """``signals="auto"`` on data without times: the names kept and the params to use (trending becomes popularity
    over all earlier events unless its params say otherwise); what is left out is said once, in a warning."""
    params = {**order_params(params), "trending": {**POPULARITY, **params.get("trending", {})}}
    kept = [n for n in names if clock_use(n, params.get(n, {})) is None]
    dropped = [n for n in names if n not in kept]
    log.warning("this data has no times, only each user's order: signals='auto' leaves out %s (they read clock "
                "time), and trending counts every earlier event (popularity).", ", ".join(dropped) or "nothing")
    return kept, params
