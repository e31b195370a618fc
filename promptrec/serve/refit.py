"""Refit from the event store: the original log plus every live event the store holds, fitted with the
library's one fit path and written as a new model version (``promptrec retriever fit --events``)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from promptrec.data.context_columns import declare_context, declared_context
from promptrec.data.dataset import Dataset
from promptrec.data.interactions import Interactions
from promptrec.retriever.fitting import RetrieverSettings, fit_retriever
from promptrec.serve.event_rows import to_event_rows
from promptrec.serve.event_rules import stored_row_problem
from promptrec.serve.stores import open_event_store
from promptrec.serve.versions import ModelVersions, code_version

log = logging.getLogger(__name__)


def stored_events(store_target: str | Path, catalog_ids: Any) -> tuple[pd.DataFrame, int]:
    """The store's applicable events (rules kept, catalogue items only, quarantined rows left out) as an
    event frame, and the highest sequence number read (0 for an empty store)."""
    store = open_event_store(store_target)
    try:
        rows = store.load(0)
    finally:
        store.close()
    last = int(rows["seq"].max()) if len(rows) else 0
    good = rows[[stored_row_problem(r) is None for r in rows.to_dict("records")]] if len(rows) else rows
    frame = to_event_rows(good)
    frame = frame[frame["item_id"].isin(pd.Index(catalog_ids))]
    return frame.reset_index(drop=True), last


def refit_version(dataset: Dataset, store_target: str | Path | None, versions_root: str | Path, *,
                  split: str = "leave-last-out", settings: RetrieverSettings | None = None,
                  index_root: str | Path = "indexes") -> str:
    """Fit on ``dataset`` plus the store's events and write a new version under ``versions_root``; returns
    the version name. Its manifest says the data window, event counts, the store sequence number it includes,
    fit time, the validation objective, the code version and the settings."""
    live, store_seq = (stored_events(store_target, dataset.catalog.ids) if store_target is not None
                       else (pd.DataFrame(), 0))
    inter = dataset.interactions
    if len(live):
        inter = declare_context(inter.append(Interactions(live, seed=inter.seed, timezone=inter.timezone)),
                                declared_context(inter))  # posted events may lack the columns: still declared
    merged = Dataset(dataset.name, dataset.catalog, inter, dataset.report, dataset.source)
    settings = settings or RetrieverSettings()
    t0 = time.perf_counter()
    retriever = fit_retriever(merged, split, index_root=index_root, settings=settings)
    fit_s = time.perf_counter() - t0
    first, last = inter.time_range()
    tuning = retriever.tuning or {}
    manifest = {"data_window": {"first": first.isoformat(), "last": last.isoformat()},
                "events": {"log": len(dataset.interactions), "store": len(live), "total": len(inter)},
                "store_seq": store_seq, "fit_seconds": round(fit_s, 2),
                "validation": {k: tuning[k] for k in ("objective", "objective_start", "objective_end", "method")
                               if k in tuning},
                "code_version": code_version(),
                "config": {"split": split, "settings": _plain(asdict(settings)), "signals": list(retriever.signals)}}
    version = ModelVersions(versions_root).write(retriever, manifest)
    log.info("model version %s: %d events (%d from the store, up to seq %d), fitted in %.1f s", version, len(inter),
             len(live), store_seq, fit_s)
    return version


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
