"""Saving and loading a fitted :class:`~promptrec.retriever.retriever.TimeAwareRetriever`: a folder with its config
(``retriever.json``), signal and pool state, learned blend, catalogue and event log (live events included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from promptrec import __version__
from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.retriever.learned import LearnedBlend
from promptrec.retriever.pool import CandidatePool, PoolConfig

if TYPE_CHECKING:
    from promptrec.retriever.retriever import TimeAwareRetriever

FORMAT_VERSION = 2


def save(r: TimeAwareRetriever, path: str | Path) -> Path:
    """Write config, weights, the learned blend, fitted state, catalogue and log to a folder."""
    r._require_fitted()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dense, sparse = {}, {}
    for n, s in r.signals.items():
        for key, value in s.state().items():
            (sparse if sp.issparse(value) else dense)[f"{n}.{key}"] = value
    pool_state = {} if r.pool is None else {f"_pool.{k}": v for k, v in r.pool.state().items()}
    np.savez_compressed(path / "state.npz", **dense, **pool_state, **{"_retriever.release_ns": r.release_ns})
    for key, m in sparse.items():
        sp.save_npz(path / f"{key}.npz", m.tocsr())
    cat = r.catalog.frame.reset_index()
    cat["categories"] = cat["categories"].map(list)
    cat.to_parquet(path / "catalog.parquet", index=False)
    events = r.events if not len(r.live) else r.events.append(
        Interactions(r.live.all_frames(), seed=r.events.seed, timezone=r.events.timezone,
                     times_known=r.events.times_known))
    events.frame.to_parquet(path / "events.parquet", index=False)  # live events included
    config = {"format_version": FORMAT_VERSION, "promptrec_version": __version__,
              "signals": {n: s.params for n, s in r.signals.items()}, "weights": r.weights,
              "repeats": r.repeats, "repeat_rate": r.repeat_rate, "allow_repeats": r.allow_repeats,
              "stats_resolution_s": r.stats_resolution_s, "context_columns": list(r.context_columns),
              "pool": None if r.pool is None else r.pool.config.to_dict(),
              "items_from_events": r.available_from_first_event,
              "learned_blend": None if r.ranker is None else r.ranker.save(path),
              "tuning": r.tuning, "fitted_on": r.fitted_on,
              "timezone": r.events.timezone, "sparse_state": sorted(sparse), "items": len(r.catalog),
              "domain": r.catalog.domain.to_dict()}
    (path / "retriever.json").write_text(json.dumps(config, indent=2, default=str))
    return path


def load(cls: type[TimeAwareRetriever], path: str | Path) -> TimeAwareRetriever:
    """A retriever saved by :func:`save` (format ``FORMAT_VERSION``), ready to retrieve."""
    path = Path(path)
    if not (path / "retriever.json").exists():
        raise FileNotFoundError(f"no fitted retriever at {path}; fit and save one first (promptrec retriever fit).")
    config = json.loads((path / "retriever.json").read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} was saved in retriever format {config.get('format_version')}, this promptrec "
                         f"reads {FORMAT_VERSION}; fit and save it again (promptrec retriever fit).")
    out = cls(signals=list(config["signals"]), weights=config["weights"], params=config["signals"],
              repeats=config["repeats"], stats_resolution_s=config.get("stats_resolution_s", 0.0),
              pool=config.get("pool"), context=config.get("context_columns", ()))
    out.repeat_rate, out.allow_repeats = config["repeat_rate"], config["allow_repeats"]
    out.available_from_first_event = config["items_from_events"]
    cat = pd.read_parquet(path / "catalog.parquet")
    cat["categories"] = cat["categories"].map(tuple)
    out.catalog = Catalog(cat, items_from_events=out.available_from_first_event, domain=config.get("domain"))
    if len(out.catalog) != config["items"]:
        raise ValueError(f"{path}: catalog.parquet has {len(out.catalog)} items, the config {config['items']}.")
    dense = dict(np.load(path / "state.npz", allow_pickle=False))
    states: dict[str, dict[str, Any]] = {n: {} for n in out.signals}
    out.release_ns = dense.pop("_retriever.release_ns")
    if config.get("pool") is not None:
        out.pool = CandidatePool(PoolConfig.from_dict(config["pool"]))
        out.pool.load_state({k.removeprefix("_pool."): dense.pop(k) for k in list(dense) if k.startswith("_pool.")},
                            len(out.catalog))
    for key, value in dense.items():
        n, _, name = key.partition(".")
        states[n][name] = value
    for key in config["sparse_state"]:
        n, _, name = key.partition(".")
        states[n][name] = sp.load_npz(path / f"{key}.npz").tocsr()
    for n, s in out.signals.items():
        s.load_state(states[n])
    out.tuning, out.fitted_on = config["tuning"], config["fitted_on"]
    if config.get("learned_blend"):
        out.ranker = LearnedBlend.load(path, config["learned_blend"])
    events = pd.read_parquet(path / "events.parquet")
    out.use_log(Interactions(events, timezone=config["timezone"], _sorted=True,
                             times_known=config["fitted_on"].get("times_known", True)))
    return out
