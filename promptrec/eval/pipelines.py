"""The methods an evaluation compares, each turned into per-target records.

Score pipelines (baselines and the retriever) rate every catalogue item for a target; they
are all :class:`TimeAwareRetriever` instances with fixed signals, so they share its rules
(history strictly before ``now``, seen and not-yet-released items excluded). Rerank
pipelines order candidates with a :class:`Reranker`: the retriever's top N (full protocol)
or the sampled 20 (sampled protocol). A record is what the report needs about one target:
the true item's 0-based rank, the top-K list, and for rerank pipelines the candidates with
their LLM and retriever scores, so fusion weights can be applied afterwards without the LLM.
"""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Any, Callable, Iterable

import numpy as np

from promptrec.data.catalog import Catalog
from promptrec.data.splits import Split
from promptrec.eval.config import CANDIDATE_ORDERS, PipelineConfig
from promptrec.metrics import true_ranks
from promptrec.eval.targets import EvalTarget
from promptrec.data.candidate import Candidate, order_by_score
from promptrec.retriever.clock import ClockSignalError
from promptrec.retriever.fitting import RetrieverSettings, fit_on_split
from promptrec.retriever.retriever import TimeAwareRetriever, time_order
from promptrec.retriever.signals import Query, Signal

FOREVER = 1e7  # days: no decay, no window
MISS = 10**6  # rank of a true item the candidates did not contain


class PipelineUnavailable(RuntimeError):
    """A pipeline that cannot run on this machine (reported, not fatal)."""


class RandomSignal(Signal):
    """Uniform random scores, seeded by (seed, user, now): the same target always gets the same draw."""

    def __init__(self, seed: int = 0):
        super().__init__("random", {"seed": seed})

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        n = log.n_items
        out = np.empty((len(queries), n))
        for i, q in enumerate(queries):
            user = int.from_bytes(hashlib.sha256(q.user_id.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng([self.params["seed"], user, q.now_ns]).random(n)
        return out


def _score_model_spec(p: PipelineConfig, seed: int) -> tuple[list, dict[str, Any], bool]:
    """(signals, params, tune?) of a score pipeline."""
    o = p.options
    if p.kind == "random":
        return [RandomSignal(seed)], {}, False
    if p.kind == "popularity":
        return ["trending"], {"trending": {"half_life_days": FOREVER, "window_days": FOREVER}}, False
    if p.kind == "recent_popularity":
        return ["trending"], {"trending": {"half_life_days": o.get("half_life_days", FOREVER),
                                           "window_days": o.get("window_days", 7)}}, False
    if p.kind == "cooccurrence":
        return ["transition"], o.get("params", {}), False
    if p.kind == "content":
        return ["content"], {"content": {"half_life_days": FOREVER, "recent_queries": 0}}, False
    if p.kind == "user_frequency":
        return ["user_frequency"], {}, False
    if p.kind == "user_frequency_hour":
        return ["user_frequency"], {"user_frequency": {"hour_window": int(o.get("hour_window", 1))}}, False
    if p.kind == "retriever":
        signals = o.get("signals", "auto")
        return (signals if signals == "auto" else list(signals)), o.get("params", {}), o.get("tune", True)
    if p.kind in ("sasrec", "sasrec_time"):  # settings: promptrec.sequential.SASRecConfig fields
        if importlib.util.find_spec("torch") is None:
            raise PipelineUnavailable("not run: the sequential model needs torch (pip install 'promptrec[cpu]').")
        return [p.kind], {p.kind: dict(o.get("settings", {}))}, False
    raise ValueError(f"pipeline '{p.name}': kind {p.kind!r} is not a score pipeline.")


def fit_score_model(p: PipelineConfig, split: Split, catalog: Catalog, index: Any, seed: int,
                    repeats: str = "auto") -> TimeAwareRetriever:
    """A fitted (and, for retriever pipelines, tuned) model, through the library's one fit path
    (promptrec.retriever.fitting). Options: ``tune`` (true / "auto", "lightgbm", "coordinate" or false),
    ``optional``, ``pool``, ``weights``, ``ranker``: the fields of :class:`RetrieverSettings`."""
    signals, params, tune = _score_model_spec(p, seed)
    settings = RetrieverSettings(signals=signals, params=params, weights=p.options.get("weights"), repeats=repeats,
                                 pool=p.options.get("pool", "auto"), tune=tune, ranker=p.options.get("ranker"),
                                 optional=tuple(p.options.get("optional", ())))
    try:
        return fit_on_split(split, catalog, index, settings)
    except ClockSignalError as exc:  # data without times: the other pipelines still run
        raise PipelineUnavailable(f"not run: {exc}") from None


def score_records(model: TimeAwareRetriever, targets: list[EvalTarget], protocol: str, top_k: int,
                  progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Per-target records of a score pipeline: rank of the true item and top-k (full), or its rank
    among the sampled candidates (sampled) or the file's (candidates)."""
    cat = model.catalog
    ids = cat.ids
    out = []
    ordered = [targets[i] for i in time_order([t.now for t in targets])]  # records are keyed by target index
    size = model.batch_size
    for start in range(0, len(ordered), size):
        batch = ordered[start:start + size]
        scores = model.score_targets([t.held for t in batch],
                                     columns=None if protocol == "full" else [t.candidates_for(protocol)
                                                                              for t in batch])
        if protocol == "full":
            ranks = true_ranks(scores, cat.codes([t.item_id for t in batch]))
            kk = min(top_k, scores.shape[1])
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            for t, r, row, s in zip(batch, ranks, top, scores):
                row = row[np.argsort(-s[row], kind="stable")]
                row = row[np.isfinite(s[row])]
                out.append({"i": t.index, "rank": int(r), "top": [str(ids[c]) for c in row]})
        else:
            for t, s in zip(batch, scores):
                shown = t.candidates_for(protocol)
                cols = cat.codes(shown)
                r = int(true_ranks(s[cols][None, :], np.array([shown.index(t.item_id)]))[0])
                out.append({"i": t.index, "rank": r})
        if progress:
            progress(len(batch))
    return out


def rerank_requests(reranker, retriever: TimeAwareRetriever, split: Split, targets: list[EvalTarget], protocol: str,
                    n_candidates: int, evidence: bool = True, order: str = "drawn") -> list:
    """The reranker's requests: retriever top-N (full) or the sampled candidates with retriever scores (sampled);
    with ``evidence``, each carries the retriever's facts about its candidates for the prompt. The sampled
    candidates are shown as drawn (shuffled), or with ``order="retriever"`` sorted by the retriever's score, as
    the full protocol's are (LlamaRec style: the LLM reranks the retriever's ranking)."""
    if order not in CANDIDATE_ORDERS:
        raise ValueError(f"unknown candidate order {order!r}; choose one of {', '.join(CANDIDATE_ORDERS)}.")
    if protocol == "full":
        cands = retriever.retrieve_many([(t.user_id, t.held.context or t.now) for t in targets], k=n_candidates)
    else:
        shown = [t.candidates_for(protocol) for t in targets]
        scores = retriever.score_targets([t.held for t in targets], columns=shown)
        cands = [[Candidate(item, float(s[c]), pos + 1) for pos, (item, c) in
                  enumerate(zip(items, retriever.catalog.codes(items)))] for items, s in zip(shown, scores)]
        if order == "retriever":
            cands = [[Candidate(row[i].item_id, row[i].score, pos + 1) for pos, i in
                      enumerate(order_by_score([c.score for c in row]))] for row in cands]
    out = []
    for t, c in zip(targets, cands):
        when = t.held.context or t.now
        facts = retriever.explain(t.user_id, when, [x.item_id for x in c]) if evidence else None
        out.append(reranker.request(split.history(t.held), c, when, t.user_id, evidence=facts))
    return out


def rerank_records(reranker, requests: list, targets: list[EvalTarget]) -> list[dict[str, Any]]:
    """Per-target records of a rerank pipeline (LLM scores without fusion; fusion is applied later)."""
    saved, reranker.fusion = reranker.fusion, 0.0
    try:
        ranked = reranker.rerank_many(requests)
    finally:
        reranker.fusion = saved
    out = []
    for t, req, res in zip(targets, requests, ranked):
        llm = {i.item_id: i.llm_score for i in res.items}
        ids = [c.item_id for c in req.candidates]
        out.append({"i": t.index, "cands": ids, "retr": [_finite(c.score) for c in req.candidates],
                    "llm": [float(llm[i]) for i in ids], "fell_back": bool(res.fell_back),
                    "prompt_tokens": int(res.prompt_tokens), "raw": [c.output for c in res.calls][:3]})
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None  # JSON has no -inf; None = not recommendable at now


def fused_records(records: Iterable[dict[str, Any]], truths: dict[int, str], weight: float, top_k: int,
                  tail_ranks: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """Rank and top-k of each rerank record under fusion ``weight`` (0 = the LLM alone). A true item outside the
    candidates keeps the rank ``tail_ranks`` gives it (the retriever's, on full ranking: the reranker reorders its
    top N and leaves the rest in its order), else it is a miss."""
    from promptrec.reranker.fusion import fused_order

    out = []
    for rec in records:
        retr = np.array([-np.inf if v is None else v for v in rec["retr"]], dtype=float)
        order = [rec["cands"][j] for j in fused_order(np.array(rec["llm"]), retr, weight)]
        truth = truths[rec["i"]]
        rank = order.index(truth) if truth in order else max(len(order), (tail_ranks or {}).get(rec["i"], MISS))
        out.append({"i": rec["i"], "rank": rank, "top": order[:top_k]})
    return out
