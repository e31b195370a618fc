"""Tuning a :class:`~promptrec.retriever.retriever.TimeAwareRetriever`'s blend on validation targets held out in
time: the learned blend (LightGBM, with rows from earlier windows), linear weights by coordinate ascent, the choice
between them, and whether optional signals earn their place. The retriever's ``tune``, ``ranking_rows`` (and the
private helpers tests call) delegate here."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from promptrec.data.splits import HeldOut
from promptrec.metrics import gain_beyond_noise
from promptrec.retriever.blend import objective_values, tune_weights
from promptrec.retriever.features import FeatureBuilder
from promptrec.retriever.learned import AUTO_EARLIER_WINDOWS, LearnedBlend, RankerConfig, RankingRows
from promptrec.retriever.pool import pack_rows
from promptrec.retriever.scoring import exclusion, pool_columns, z_scores
from promptrec.retriever.signals import Signal

if TYPE_CHECKING:
    from promptrec.retriever.retriever import TimeAwareRetriever

TUNE_METHODS = ("auto", "lightgbm", "coordinate")


def tune(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any = None, *, objective: str = "ndcg@10",
         method: str = "auto", ranker: RankerConfig | dict | None = None, progress: bool = False,
         optional: Sequence[str] = ()) -> dict[str, Any]:
    """:meth:`TimeAwareRetriever.tune`: learn the blend on validation ``targets`` (held out in time)."""
    r._require_fitted()
    if method not in TUNE_METHODS:
        raise ValueError(f"method={method!r}; choose one of {TUNE_METHODS}.")
    unknown = sorted(set(optional) - set(r.signals))
    if unknown:
        raise ValueError(f"optional signal(s) {unknown} are not in this retriever ({sorted(r.signals)}).")
    if optional and not set(r.signals) - set(optional):
        raise ValueError("every signal is optional: leave at least one signal out of `optional`.")
    if optional and method == "coordinate":
        raise ValueError("optional signals are judged on the later validation targets, which coordinate ascent "
                         "tunes on: use method='auto' or 'lightgbm'.")
    tuning = _tune_blend(r, targets, history, objective, method, ranker, progress)
    if optional:
        _judge_optional(r, list(optional), tuning, targets, history, objective, method, ranker, progress)
    return r.tuning


def _can_refit(r: TimeAwareRetriever) -> bool:
    """Whether copies of this retriever can be fitted on earlier events: fitted in this process, with
    signals given by name."""
    return r._fit_inputs is not None and not any(
        isinstance(s, Signal) for s in ([] if r._requested == "auto" else r._requested) + r._extra)


def ranker_config(r: TimeAwareRetriever, ranker: RankerConfig | dict | None) -> RankerConfig:
    """The learned blend's settings with ``earlier_windows="auto"`` resolved: AUTO_EARLIER_WINDOWS when the
    retriever can be refitted and no signal trains a model (each window would train it again), else 0.
    Windows that have no earlier training events are skipped where they are built. Resolved for each blend
    tuned: without optional signals that train a model, the blend can use the windows that one with them
    could not, and the verdict compares the two blends a user would get."""
    cfg = ranker if isinstance(ranker, RankerConfig) else RankerConfig.from_dict(ranker)
    if cfg.earlier_windows != "auto":
        return cfg
    trained = any(s.trains_model for s in r.signals.values())
    return replace(cfg, earlier_windows=AUTO_EARLIER_WINDOWS if _can_refit(r) and not trained else 0)


def _judge_optional(r: TimeAwareRetriever, optional: list[str], with_them: dict[str, Any],
                    targets: Sequence[HeldOut], history: Any, objective: str, method: str, ranker: Any,
                    progress: bool) -> None:
    """Tune again without ``optional`` and keep them only if the blend with them is better on the later
    validation targets beyond noise (a one-sided paired test at 5%, the rule that picks the learned blend
    over the linear one): a lead as small as a LightGBM seed moves the score is not a reason to keep a
    signal, least of all one that trains a model."""
    each_with = r._stop_each
    if each_with is None:  # too few targets for a later part: nothing to judge on, keep every signal
        r.tuning = with_them | {"optional_signals": {"signals": optional, "kept": True,
                                                     "reason": "too few validation targets to judge"}}
        return
    kept = (r.signals, r._extra, r._requested, r.weights, r.ranker, r.features)
    r.signals = {n: s for n, s in r.signals.items() if n not in optional}
    r._extra = [s for s in r._extra if s not in optional]
    if r._requested != "auto":  # refits on earlier windows build the same signals
        r._requested = [s for s in r._requested if (s.name if isinstance(s, Signal) else s) not in optional]
    r.features = FeatureBuilder(r.signals, r.log)
    without = _tune_blend(r, targets, history, objective, method, ranker, progress)
    each_without = r._stop_each
    score_without = None if each_without is None else float(each_without.mean())
    verdict = {"signals": optional, "stop_objective_with": float(each_with.mean()),
               "stop_objective_without": score_without,
               "rule": "kept only if better beyond noise (one-sided paired test at 5%)",
               "earlier_windows_used": {"with": with_them["learned"]["earlier_windows"]["used"],
                                        "without": without.get("learned", {}).get("earlier_windows", {}).get("used")},
               "kept": score_without is None or gain_beyond_noise(each_with - each_without)}
    if verdict["kept"]:
        r.signals, r._extra, r._requested, r.weights, r.ranker, r.features = kept
        r.tuning = with_them | {"optional_signals": verdict}
    else:
        r.tuning = without | {"optional_signals": verdict}


def _tune_blend(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any, objective: str, method: str,
                ranker: RankerConfig | dict | None, progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    r.ranker = None
    cfg = ranker_config(r, ranker)
    ordered = sorted(targets, key=lambda t: t.now)
    cut = int(round(len(ordered) * (1 - cfg.stop_fraction)))
    learnable = len(r.signals) > 1 and cut >= 20 and len(ordered) - cut >= 10
    if method == "lightgbm" and not learnable:
        raise ValueError(f"the learned blend needs at least 30 validation targets and two signals "
                         f"(have {len(ordered)} and {len(r.signals)}); use method='coordinate'.")
    r._stop_each = None
    if method == "coordinate" or not learnable:
        r.tuning = _tune_linear(r, ordered, history, objective, progress) | {
            "seconds": round(time.perf_counter() - started, 2)}
        return r.tuning
    early, late = ordered[:cut], ordered[cut:]
    r.weights = {n: 1.0 for n in r.signals}
    equal_score = float(_objective(r, late, history, objective, None).mean())
    learned = _train_ranker(r, early, late, history, cfg, progress)
    learned_each = _objective(r, late, history, objective, learned)
    learned_score = float(learned_each.mean())
    r._stop_each = learned_each
    # objective_start / _end: the later validation targets with equal linear weights / the kept blend
    report: dict[str, Any] = {"objective": objective, "validation_targets": len(ordered),
                              "fit_targets": len(early), "stop_targets": len(late), "objective_start": equal_score,
                              "objective_end": learned_score, "learned": learned.report,
                              "learned_stop_objective": learned_score}
    if method == "auto":
        linear = _tune_linear(r, early, history, objective, progress)
        linear_each = _objective(r, late, history, objective, None)
        linear_score = float(linear_each.mean())
        report |= {"linear_stop_objective": linear_score, "linear_weights_on_fit_targets": linear["weights"]}
        if linear_score > learned_score:
            r._stop_each = linear_each
        if not gain_beyond_noise(learned_each - linear_each):  # the simpler blend unless the learned one is better
            r.tuning = report | _tune_linear(r, ordered, history, objective, progress) | {
                "objective_start": equal_score, "objective_end": linear_score,
                "method": "coordinate ascent on z-scored signals (promptrec.retriever.blend); the learned blend "
                          "was not better beyond noise on the later validation targets",
                "seconds": round(time.perf_counter() - started, 2)}
            return r.tuning
    r.ranker = learned
    r.tuning = report | {"method": "LightGBM lambdarank over signal and context features "
                                   "(promptrec.retriever.learned)", "weights": r.weights,
                         "seconds": round(time.perf_counter() - started, 2)}
    return r.tuning


def _batches(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any, progress: bool, desc: str):
    size = r.batch_size
    for start in tqdm(range(0, len(targets), size), disable=not progress, desc=desc):
        batch = targets[start:start + size]
        queries = [r._target_query(t, history) for t in batch]
        yield batch, queries, exclusion(r, queries), r.catalog.codes([t.item_id for t in batch])


def _tune_linear(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any, objective: str,
                 progress: bool) -> dict[str, Any]:
    zs, trues, excl = [], [], []
    for _, queries, exclude, true_cols in _batches(r, targets, history, progress, "scoring validation"):
        pooled = pool_columns(r, queries)
        if pooled is not None:  # each request's own pool, left-aligned (the batches' columns differ)
            z = z_scores(r, queries, exclude[:, pooled.items], pooled)
            exclude, true_cols = pooled.view(exclude, true_cols)
            z, exclude, true_cols = pack_rows(pooled.own, z, exclude, true_cols)
        else:
            z = z_scores(r, queries, exclude)
        zs.append(z)
        excl.append(exclude)
        trues.append(true_cols)
    width = max(e.shape[1] for e in excl)  # packed batches differ in width: pad with excluded cells
    z = {n: np.concatenate([_pad(b[n], width, 0.0) for b in zs]) for n in r.signals}
    weights, trace = tune_weights(z, np.concatenate(trues), np.concatenate([_pad(e, width, True) for e in excl]),
                                  objective=objective)
    r.weights = weights
    return {"method": "coordinate ascent on z-scored signals (promptrec.retriever.blend)",
            "objective": objective, "validation_targets": len(targets), "weights": weights,
            "objective_start": trace[0]["objective"], "objective_end": trace[-1]["objective"], "trace": trace}


def ranking_rows(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any = None, top_n: int | None = None,
                 progress: bool = False, desc: str = "features") -> RankingRows:
    """:meth:`TimeAwareRetriever.ranking_rows`: the learned blend's rows (candidates and features) for ``targets``."""
    r._require_fitted()
    if top_n is None:
        top_n = (r.ranker.config if r.ranker is not None else RankerConfig()).top_n
    out, done = [], 0
    for batch, queries, exclude, true_cols in _batches(r, targets, history, progress, desc):
        pooled = pool_columns(r, queries)
        if pooled is not None:
            exclude, true_cols = pooled.view(exclude, true_cols)
        rows = r.features.rows(queries, exclude, true_cols, top_n, None if pooled is None else pooled.items)
        out.append(replace(rows, targets=rows.targets + done))
        done += len(batch)
    return r.features.concat(out)


def _train_ranker(r: TimeAwareRetriever, fit: Sequence[HeldOut], stop: Sequence[HeldOut], history: Any,
                  cfg: RankerConfig, progress: bool) -> LearnedBlend:
    earlier = earlier_window_rows(r, fit[0].now if fit else None, fit[-1].now if fit else None, cfg, progress) \
        if cfg.earlier_windows else []
    parts = {name: ranking_rows(r, targets, history, cfg.top_n, progress, f"features ({name})")
             for name, targets in (("fit", fit), ("stop", stop))}
    learned = LearnedBlend.train(r.features.concat([parts["fit"], *earlier]), parts["stop"],
                                 r.features.names, r.features.signal_of, cfg)
    learned.report["earlier_windows"] = {"asked": cfg.earlier_windows, "used": len(earlier)}
    return learned


def earlier_window_rows(r: TimeAwareRetriever, start: Any, end: Any, cfg: RankerConfig, progress: bool) -> list:
    """Training rows from the windows before the validation targets' (each as long as [start, end]): for
    each, a copy of this retriever fitted on the training events before the window scores the targets in
    it, so every row sees only what was known before its window, as the validation rows do."""
    from promptrec.data.splits import temporal_split
    from promptrec.retriever.retriever import TimeAwareRetriever

    if not _can_refit(r):
        raise ValueError("earlier_windows refits the retriever on earlier events: call fit() in this process "
                         "first, with signals given by name (not Signal objects), or set earlier_windows=0.")
    train, index = r._fit_inputs
    span = pd.Timestamp(end) - pd.Timestamp(start)
    rows = []
    for w in range(1, cfg.earlier_windows + 1 if span > pd.Timedelta(0) else 1):
        a, b = pd.Timestamp(start) - w * span, pd.Timestamp(start) - (w - 1) * span
        earlier = train.before(a)
        if not len(earlier):
            break
        targets = temporal_split(r.events, valid_start=a, test_start=b).validation
        if len(targets) < 20:
            break
        clone = TimeAwareRetriever(
            signals=["auto", *r._extra] if r._requested == "auto" else r._requested, params=r._params,
            weights=r._fixed_weights or None, repeats="allow" if r.allow_repeats else "exclude",
            stats_resolution_s=r.stats_resolution_s,
            pool=r.pool.config if r.pool is not None else None, context=r.context_columns)
        clone.fit(earlier, r.catalog, index, log=r.events)
        if list(clone.signals) != list(r.signals):
            break  # the earlier events lack what a signal needs (e.g. devices): not the same features
        found = clone.ranking_rows(targets, None, cfg.top_n, progress, f"features (window -{w})")
        found.earlier_queries = len(found.groups)
        rows.append(found)
    return rows


def _objective(r: TimeAwareRetriever, targets: Sequence[HeldOut], history: Any, objective: str,
               ranker: LearnedBlend | None) -> np.ndarray:
    """Each target's objective with ``ranker`` (None: the current linear weights), full ranking."""
    saved, r.ranker = r.ranker, ranker
    try:
        values = []
        for batch, queries, exclude, true_cols in _batches(r, targets, history, False, ""):
            s = r._scores(queries, exclude)[0]
            values.append(objective_values(s, true_cols, ~np.isfinite(s), objective))
        return np.concatenate(values) if values else np.zeros(0)
    finally:
        r.ranker = saved


def _pad(a: np.ndarray, width: int, fill: Any) -> np.ndarray:
    """(rows x width): ``a`` with ``fill`` columns added on the right."""
    if a.shape[1] == width:
        return a
    return np.concatenate([a, np.full((len(a), width - a.shape[1]), fill, dtype=a.dtype)], axis=1)
