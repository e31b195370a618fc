"""What a fit settles before it reads events: the signals ``signals="auto"`` chooses, and the item vectors they read.

Both the single-process fit (``TimeAwareRetriever.fit``) and the fit from counted statistics
(promptrec.retriever.from_statistics) take them from here, so the two choose alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from promptrec.data.catalog import Catalog
from promptrec.retriever.clock import order_only
from promptrec.retriever.signals import Signal, signal_name

DEFAULT_SIGNALS = ("content", "transition", "trending", "time_context", "freshness", "habit")
SCENE_SIGNALS = ("place", "device")  # added by signals="auto" where the data has coordinates / devices
# signals="auto" also adds one "context-<column>" signal per declared context column (promptrec.data.context_columns)
REPEAT_SIGNALS = ("returns",)  # added by signals="auto" where the user's own items may be recommended again


def auto_signals(*, has_index: bool, has_coords: bool, has_devices: bool, declared: Sequence[str],
                 allow_repeats: bool, times_known: bool, params: dict[str, dict[str, Any]],
                 extra: Sequence[str | Signal] = ()) -> tuple[list[str | Signal], dict[str, dict[str, Any]]]:
    """The signals ``signals="auto"`` fits on data like this, and their parameters (times that are only an order
    leave out the signals that read the clock)."""
    scene = [n for n, ok in zip(SCENE_SIGNALS, (has_coords, has_devices)) if ok]
    returns = list(REPEAT_SIGNALS) if allow_repeats else []
    context = [signal_name(c) for c in declared]
    defaults = DEFAULT_SIGNALS if has_index else [s for s in DEFAULT_SIGNALS if s != "content"]
    if not times_known:
        defaults, params = order_only(defaults, params)
    return list(defaults) + scene + context + returns + list(extra), params


def item_vectors(signals: Mapping[str, Signal], catalog: Catalog, index: Any) -> np.ndarray | None:
    """The catalogue's item vectors (catalogue order) where a signal reads them, else None."""
    readers = [n for n, s in signals.items() if s.needs_item_vectors]
    if not readers:
        return None
    if index is None:
        raise ValueError(f"signal(s) {readers}: each needs an ItemIndex for its item vectors "
                         "(fit(..., index=...)), or leave them out of signals.")
    missing = [i for i in catalog.ids if i not in index]
    if missing:
        raise ValueError(f"{len(missing)} catalog items are not in the index (e.g. {missing[:3]}); "
                         "update the index with index.add(catalog).")
    return index.vectors(list(catalog.ids))
