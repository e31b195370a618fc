"""Repeat consumption as a property of the data: how often users go back to an item they already used.

People go back to their gym; they rarely re-rate a film. ``repeats="auto"`` lets the data decide:
the user's own past items are candidates when the training log's repeat rate is at least
``REPEAT_THRESHOLD``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promptrec.data.ids import id_codes

REPEAT_THRESHOLD = 0.05


def returns_mask(users, items) -> np.ndarray:
    """Per event (events in time order): True where the same user used the same item earlier."""
    user_codes = pd.factorize(np.asarray(users))[0].astype(np.int64)
    item_codes, seen = pd.factorize(np.asarray(items))
    pair = user_codes * (len(seen) + 1) + item_codes  # one int64 per (user, item): hashing two columns is slower
    return pd.Series(pair).duplicated(keep="first").to_numpy()


def repeat_rate(frame: pd.DataFrame) -> float:
    """Share of events whose (user, item) pair occurred earlier for that user."""
    if not len(frame):
        return 0.0
    return float(returns_mask(id_codes(frame["user_id"]), id_codes(frame["item_id"])).mean())


def hour_profile(frame: pd.DataFrame, timezone: str) -> list[float]:
    """Share of events in each local hour of the day (0-23)."""
    if not len(frame):
        return [0.0] * 24
    hours = frame["timestamp"].dt.tz_convert(timezone).dt.hour
    counts = hours.value_counts().reindex(range(24), fill_value=0)
    return [round(float(v), 4) for v in counts / counts.sum()]
