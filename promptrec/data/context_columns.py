"""Declared context columns: extra columns of the event log (weather, channel, page, app surface) that the
retriever learns from and a request may give.

    ds = load_dataset(path, context=["weather"])        # or an eval config's dataset: {context: [weather]}
    declared_context(ds.interactions)                    # ('weather',)

The declaration is kept in the event frame's ``attrs``, so every log cut from it (splits, windows,
histories) carries it; a fitted retriever keeps its own copy (``TimeAwareRetriever.context_columns``),
saved with it.
"""

from __future__ import annotations

import re
from typing import Iterable

from promptrec.data.interactions import CORE_COLUMNS, Interactions

ATTR = "context"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# read by the scene signals and the request already, or names of the API's own parameters
RESERVED = {"device", "latitude", "longitude", "lat", "lon", "lng", "now", "k", "rerank", "user_id", "limit",
            "version", "location", "extras"}


def check_columns(columns: Iterable[str], available: Iterable[str]) -> tuple[str, ...]:
    """The declared columns, checked: present in the events, named like a query parameter, not reserved."""
    columns, available = tuple(dict.fromkeys(str(c) for c in columns)), list(available)
    extra = [c for c in available if c not in CORE_COLUMNS]
    for c in columns:
        if c in CORE_COLUMNS or c in RESERVED:
            raise ValueError(f"context column {c!r} cannot be declared: the name is the event log's or the request's "
                             f"own ({'device and location are read as context already' if c in RESERVED else 'core'})"
                             f"; declare other columns (the events have {extra or 'none'}).")
        if c not in available:
            raise ValueError(f"context column {c!r} is not in the events; they have the context columns "
                             f"{extra or 'none'} (besides {CORE_COLUMNS}).")
        if not NAME.match(c):
            raise ValueError(f"context column {c!r}: a declared column needs a name of letters, digits and '_' "
                             "starting with a letter (it becomes a query parameter); rename the column.")
    return columns


def declare_context(events: Interactions, columns: Iterable[str]) -> Interactions:
    """Mark ``columns`` of ``events`` as context (checked; in place, and returned)."""
    events.frame.attrs[ATTR] = check_columns(columns, events.frame.columns)
    return events


def declared_context(events: Interactions | None) -> tuple[str, ...]:
    """The columns declared as context on ``events`` (empty when none are)."""
    return () if events is None else tuple(events.frame.attrs.get(ATTR, ()))
