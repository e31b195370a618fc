"""Fitting statistics on Ray Data, for event logs larger than one machine's memory: a map-reduce over Parquet.

    retriever = fit_retriever_on_ray("events/", catalog, index, timezone="America/New_York", address="head:6379")
    retriever.save("indexes/my-retriever")      # the retriever a single-process fit on the same events gives
    stats = statistics_on_ray("events/", catalog, "America/New_York", address="head:6379")   # the counts alone

Map: tasks read the Parquet row groups (``user_id``, ``item_id``, ``timestamp``), turn item ids into catalogue
codes and tag each event with its shard (a hash of the user id), so a user's events all go to one shard. Shuffle:
Ray Data groups the events by shard (a sort-based shuffle, whose tasks spread over the nodes). Reduce: each shard
sorts its events by user, then time, then position in the files, and computes its :class:`EventStatistics`; the
driver merges the shards' statistics as they arrive. They equal the statistics of the same events counted in one
process: a log written from ``Interactions.frame`` is in event order, so its same-time events of one user keep
the order a single-process fit gives them.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.context_columns import declared_context
from promptrec.data.interactions import Interactions
from promptrec.retriever.from_statistics import apply_statistics, audience_state, fit_from_statistics  # noqa: F401
from promptrec.retriever.retriever import TimeAwareRetriever
from promptrec.retriever.signals import column_of
from promptrec.retriever.signals.base import FitData
from promptrec.retriever.signals.context_column import value_text
from promptrec.retriever.statistics import EventStatistics, catalog_digest, merge

COLUMNS = ["user_id", "item_id", "timestamp"]


@dataclass
class ShardStatistics:
    """One shard's statistics, and the Ray node that computed them."""

    shard: int
    node: str
    events: int
    stats: EventStatistics


def statistics_on_ray(parquet_path: str, catalog: Catalog, timezone: str, *, window: int = 5,
                      pair_half_life_hours: float = 0.0, place_gap_hours: float = 24.0, context: Sequence[str] = (),
                      address: str | None = None, shards: int | None = None) -> EventStatistics:
    """The :class:`EventStatistics` of a Parquet event log (a file or a folder of files), computed on Ray
    (local Ray by default, a cluster with ``address``) in ``shards`` shards of users (default: 2 per CPU; each
    shard's events are held by one task), with item x value counts of the ``context`` columns the files have
    ("device" among them if wanted). The driver merges each shard's statistics as it arrives."""
    out = EventStatistics.empty(len(catalog), window=window, pair_half_life_hours=pair_half_life_hours,
                                timezone=timezone, place_gap_hours=place_gap_hours)
    for part in _shard_parts(parquet_path, catalog, timezone, window, pair_half_life_hours, place_gap_hours,
                             context, address, shards):
        out = merge(out, part.stats)
    return out


def shard_statistics_on_ray(parquet_path: str, catalog: Catalog, timezone: str, *, window: int = 5,
                            pair_half_life_hours: float = 0.0, place_gap_hours: float = 24.0,
                            context: Sequence[str] = (), address: str | None = None,
                            shards: int | None = None) -> list[ShardStatistics]:
    """Each shard's statistics (in shard order) and the node that computed them, before merging."""
    parts = _shard_parts(parquet_path, catalog, timezone, window, pair_half_life_hours, place_gap_hours, context,
                         address, shards)
    return sorted(parts, key=lambda p: p.shard)


def _shard_parts(parquet_path: str, catalog: Catalog, timezone: str, window: int, pair_half_life_hours: float,
                 place_gap_hours: float, context: Sequence[str], address: str | None,
                 shards: int | None) -> Iterator[ShardStatistics]:
    import pyarrow.dataset as pads
    import ray

    owner = not ray.is_initialized()  # else: the caller's Ray session (and cluster) is used as it is
    if owner:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    before = (ctx.enable_progress_bars, ctx.shuffle_strategy)
    try:
        ctx.enable_progress_bars = False
        # a sort-based shuffle: the shards' tasks are plain tasks, spread over the nodes (a hash shuffle's
        # aggregator actors left every shard on one node)
        ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        n = int(shards or max(1, 2 * int(ray.cluster_resources().get("CPU", 1))))
        plan = row_groups(parquet_path)
        if not plan:
            return
        names = set(pads.dataset(str(parquet_path), format="parquet").schema.names)
        columns = [c for c in dict.fromkeys(context) if c in names and c not in COLUMNS]
        ids = ray.put(np.asarray(catalog.ids, dtype=object))
        events = ray.data.from_items(plan, override_num_blocks=len(plan)).map_batches(
            read_row_group, batch_size=1, batch_format="pandas",
            fn_kwargs={"catalog_ids": ids, "shards": n, "context": columns})
        out = events.groupby("shard").map_groups(
            shard_statistics, batch_format="pandas", scheduling_strategy="SPREAD",
            fn_kwargs={"n_items": len(catalog), "timezone": timezone, "window": int(window),
                       "pair_half_life_hours": float(pair_half_life_hours),
                       "place_gap_hours": float(place_gap_hours), "context": columns})
        digest = catalog_digest(catalog)
        for row in out.iter_rows():
            stats = pickle.loads(row["stats"])
            stats.catalog_digest = digest  # the codes are this catalogue's
            yield ShardStatistics(int(row["shard"]), str(row["node"]), int(row["events"]), stats)
    finally:
        ctx.enable_progress_bars, ctx.shuffle_strategy = before
        if owner:
            ray.shutdown()


def row_groups(parquet_path: str) -> list[dict[str, Any]]:
    """The Parquet row groups of a file or folder (files in name order), each with its first row's position in
    the whole log (ties between same-time events of a user are broken by that position)."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(str(parquet_path), format="parquet")
    plan, start = [], 0
    for path in sorted(dataset.files):
        meta = dataset.format.make_fragment(path, dataset.filesystem).metadata
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            if rows:
                plan.append({"path": path, "group": g, "start": start})
            start += rows
    return plan


def read_row_group(batch: pd.DataFrame, catalog_ids: Any, shards: int, context: Sequence[str] = ()) -> pd.DataFrame:
    """Map: one row group's events as (shard, user_id, code, ts, row, the ``context`` columns as text: "" where
    missing), events of unknown items dropped."""
    import pyarrow.dataset as pads
    import ray

    if isinstance(catalog_ids, ray.ObjectRef):
        catalog_ids = ray.get(catalog_ids)
    (path, group, start), = batch[["path", "group", "start"]].itertuples(index=False)
    source = pads.dataset(path, format="parquet")
    fragment = next(iter(source.get_fragments())).subset(row_group_ids=[int(group)])
    frame = fragment.to_table(columns=COLUMNS + list(context)).to_pandas()
    problem = input_problem(frame)
    if problem:
        raise ValueError(f"{path} (row group {group}): {problem}. The Ray fit reads a cleaned log, as "
                         "load_events(...).frame.to_parquet(...) writes it.")
    codes = pd.Index(catalog_ids).get_indexer(frame["item_id"].astype(str).to_numpy(dtype=object))
    users = frame["user_id"].astype(str).to_numpy(dtype=object)
    ts = pd.to_datetime(frame["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
    keep = codes >= 0
    rows = int(start) + np.arange(len(frame), dtype=np.int64)
    values = {c: np.array([value_text(v) for v in frame[c].to_numpy(dtype=object)[keep]], dtype=object)
              for c in context}
    return pd.DataFrame({"shard": shard_of(users[keep], shards), "user_id": users[keep],
                         "code": codes[keep].astype(np.int64), "ts": ts[keep], "row": rows[keep]} | values)


def input_problem(frame: pd.DataFrame) -> str | None:
    """What makes a Parquet part unfit for the statistics (times that are not timezone-aware, missing times or
    ids), or None: the loaders' own checks are not run again here."""
    if not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        return f"timestamp is {frame['timestamp'].dtype}, not a timezone-aware time (naive or epoch times are ambiguous)"
    for column in COLUMNS:
        missing = int(frame[column].isna().sum())
        if missing:
            return f"{missing} rows have no {column}"
    return None


def shard_of(users: np.ndarray, shards: int) -> np.ndarray:
    """Each user id's shard: a hash that is the same in every process."""
    if not len(users):
        return np.zeros(0, np.int64)
    return (pd.util.hash_array(np.asarray(users, dtype=object)) % np.uint64(shards)).astype(np.int64)


def shard_statistics(group: pd.DataFrame, n_items: int, timezone: str, window: int, pair_half_life_hours: float,
                     place_gap_hours: float = 24.0, context: Sequence[str] = ()) -> pd.DataFrame:
    """Reduce: the statistics of one shard's events (sorted by user, time, then position in the log)."""
    import ray

    group = group.sort_values(["user_id", "ts", "row"], kind="stable")
    values = {c: group[c].to_numpy(dtype=object) for c in context}
    data = FitData(group["user_id"].to_numpy(dtype=object), group["code"].to_numpy(np.int64), n_items, None, [],
                   np.zeros(0, np.int64), group["ts"].to_numpy(np.int64), timezone=timezone,
                   train_devices=values.pop("device", None), train_context=values)
    stats = EventStatistics.of(data, window=window, pair_half_life_hours=pair_half_life_hours,
                               place_gap_hours=place_gap_hours)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""  # (never starts Ray)
    return pd.DataFrame({"shard": [int(group["shard"].iloc[0])], "node": [node],
                         "events": [len(group)], "stats": [pickle.dumps(stats, protocol=5)]})


def fit_retriever_on_ray(parquet_path: str, catalog: Catalog, index: Any = None, *, timezone: str,
                         log: Interactions | None = None, address: str | None = None, shards: int | None = None,
                         context: Sequence[str] = (), **settings: Any) -> Any:
    """A fitted TimeAwareRetriever whose signal states, repeat rate and signal choice come from the statistics of
    the Parquet event log (the training events), counted on Ray (:func:`statistics_on_ray`); ``log`` (default: the
    same Parquet, read in this process by :func:`read_log`) gives its histories. ``settings`` are
    TimeAwareRetriever's (signals, params, repeats, pool...); ``context``: declared context columns (declared on
    a log read here; TimeAwareRetriever's ``context``). It saves, loads and serves as the retriever fitted in one
    process on the same events; ``tune`` then learns the blend in this process on its validation targets only
    (their number is the blend's training sample; LightGBM is not distributed)."""
    if log is None:
        log = read_log(parquet_path, timezone, context)
    retriever = TimeAwareRetriever(context=context, **settings)
    transition, place = (_params_of(retriever, name) for name in ("transition", "place"))
    columns = ["device", *declared_context(log), *context, *filter(None, map(column_of, retriever.signals))]
    stats = statistics_on_ray(parquet_path, catalog, timezone, window=transition.get("window", 5),
                              pair_half_life_hours=transition.get("pair_half_life_hours", 0.0) or 0.0,
                              place_gap_hours=place.get("max_gap_hours", 24.0),
                              context=list(dict.fromkeys(columns)), address=address, shards=shards)
    return fit_from_statistics(retriever, stats, log, catalog, index)


def _params_of(retriever: Any, name: str) -> dict[str, Any]:
    """A signal's settings: those of the retriever's signal if it has it already, else the retriever's params."""
    if name in retriever.signals:
        return retriever.signals[name].params
    return retriever._params.get(name, {})


def read_log(parquet_path: str, timezone: str, context: Sequence[str] = ()) -> Interactions:
    """The events of a Parquet file or folder (files in name order) as Interactions, in the order the statistics
    on Ray count them: by user, then time, same-time events of a user in their order in the files (a log written
    from ``Interactions.frame`` reads back in its own order); ``context``: columns to declare as context."""
    import pyarrow.dataset as pads

    from promptrec.data.context_columns import declare_context

    dataset = pads.dataset(str(parquet_path), format="parquet")
    frame = pd.concat([pads.dataset(f, format="parquet").to_table().to_pandas() for f in sorted(dataset.files)],
                      ignore_index=True)
    frame["user_id"], frame["item_id"] = frame["user_id"].astype(str), frame["item_id"].astype(str)
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    order = np.lexsort((np.arange(len(frame)), ts.to_numpy(dtype="datetime64[ns]").view("int64"),
                        frame["user_id"].to_numpy(dtype=object).astype(str)))
    log = Interactions(frame.iloc[order].reset_index(drop=True), timezone=timezone, _in_event_order=True)
    return declare_context(log, context) if context else log
