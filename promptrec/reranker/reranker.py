"""Reranker: orders a user's candidates with an LLM, from a prompt that says when things happened.

    reranker = Reranker(catalog=ds.catalog)                       # SmolLM2 on vLLM, label scoring
    ranked = reranker.rerank(history, candidates, now=now, k=10)  # -> RankedList

Strategies (same prompts and parsing for every backend):

* ``label_scoring`` - one forward pass per prompt; the next-token log-probabilities of the
  candidate labels, renormalised over the labels, rank all candidates at once;
* ``listwise`` - the model writes the labels in order; :func:`parse_ranking` repairs the text
  (duplicates dropped, unknown labels ignored, missing candidates appended in retriever order);
* ``pointwise`` - one prompt per candidate; the probability of "yes" (against "no") scores it.

``bootstrap=n`` reranks under n seeded shuffles of the candidate order (the first is the
retriever's order) and averages the scores (``aggregate="mean"``) or their Borda points
(``"borda"``), which cancels position bias. The history comes before the candidates in the
prompt, so the shuffles share a prefix that vLLM's prefix cache computes once. ``fusion=a``
blends z-scored LLM and retriever scores: (1 - a) * llm + a * retriever; :meth:`tune_fusion`
picks ``a`` on validation requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.records import Item
from promptrec.eval.metrics import ndcg
from promptrec.models import DEFAULT_LLM
from promptrec.prompt.builder import PromptBuilder
from promptrec.prompt.labels import LabelError, label_token_ids
from promptrec.reranker.backends import Backend, make_backend
from promptrec.reranker.parsing import parse_ranking
from promptrec.reranker.types import LLMCall, RankedItem, RankedList, RerankRequest
from promptrec.retriever.candidate import Candidate

STRATEGIES = ("label_scoring", "listwise", "pointwise")
AGGREGATES = ("mean", "borda")


class Reranker:
    """An LLM that orders candidates; see the module docstring for strategies, bootstrapping and fusion."""

    def __init__(self, model: str = DEFAULT_LLM, backend: str | Backend = "vllm", strategy: str = "label_scoring",
                 template: str | None = None, *, catalog: Catalog, prompts_dir: str | Path | None = None,
                 labels: str = "letters", max_candidates: int = 20, max_prompt_tokens: int = 800,
                 max_history: int = 20, timezone: str = "UTC", bootstrap: int = 1, aggregate: str = "mean",
                 fusion: float = 0.0, seed: int = 0, listwise_max_tokens: int | None = None,
                 backend_options: dict[str, Any] | None = None):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}.")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {AGGREGATES}.")
        self.backend = backend if isinstance(backend, Backend) else make_backend(backend, model, **(backend_options or {}))
        self.model, self.strategy, self.template = model, strategy, template
        self.catalog = catalog
        self.bootstrap, self.aggregate, self.fusion, self.seed = max(1, bootstrap), aggregate, fusion, seed
        self.max_candidates = max_candidates
        self.listwise_max_tokens = listwise_max_tokens  # default: 4 tokens per label + 8
        self.builder = PromptBuilder(prompts_dir=prompts_dir, tokenizer=self.backend.tokenizer,
                                     max_prompt_tokens=max_prompt_tokens, max_history=max_history, labels=labels,
                                     timezone=timezone)
        self._label_ids: dict[str, dict[str, int]] = {}
        # check once, at load, that every label the scheme can use is one token for this model
        self.label_ids("" if self.builder.chat else " ", self.builder.labels.labels(max_candidates))
        if strategy == "pointwise":
            self.answer_ids("" if self.builder.chat else " ")

    # -- token ids ------------------------------------------------------------------
    def label_ids(self, prefix: str, labels: list[str]) -> list[int]:
        key = prefix + "|" + ",".join(labels)
        if key not in self._label_ids:
            self._label_ids[key] = label_token_ids(self.backend.tokenizer, labels, prefix)
        return [self._label_ids[key][lab] for lab in labels]

    def answer_ids(self, prefix: str) -> list[int]:
        """Token ids of 'yes' and 'no' as the model would write them first."""
        for yes, no in (("yes", "no"), ("Yes", "No")):
            try:
                return self.label_ids(prefix, [yes, no])
            except LabelError:
                continue
        raise LabelError("neither 'yes'/'no' nor 'Yes'/'No' are single tokens for this model; pointwise needs them.")

    # -- public API -------------------------------------------------------------------
    def rerank(self, history: pd.DataFrame | list, candidates: Sequence[Candidate | str | Item], now: Any = None,
               k: int | None = None) -> RankedList:
        """Order ``candidates`` for a user with ``history`` (events strictly before ``now``; default: now)."""
        return self.rerank_many([self.request(history, candidates, now)], k=k)[0]

    def request(self, history: pd.DataFrame | list, candidates: Sequence[Candidate | str | Item], now: Any = None,
                user_id: str = "") -> RerankRequest:
        cands = [c if isinstance(c, Candidate) else
                 Candidate(c.item_id if isinstance(c, Item) else str(c), -float(r), r + 1)  # keep the given order
                 for r, c in enumerate(candidates)]
        when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        return RerankRequest(history, cands, when, user_id)

    def rerank_many(self, requests: Sequence[RerankRequest], k: int | None = None) -> list[RankedList]:
        """Rerank a batch: every prompt of every request (and shuffle) goes to the backend together."""
        for r in requests:
            if len(r.candidates) > self.max_candidates:
                raise ValueError(f"{len(r.candidates)} candidates but this reranker was loaded for at most "
                                 f"{self.max_candidates}; pass max_candidates= when creating it.")
            if len({c.item_id for c in r.candidates}) != len(r.candidates):
                raise ValueError("duplicate candidates in a request; each item may appear once.")
        if self.strategy == "pointwise":
            results = self._pointwise(requests)
        else:
            results = self._ordered(requests)
        return [self._finish(r, res, k) for r, res in zip(requests, results)]

    # -- strategies ---------------------------------------------------------------------
    def _shuffles(self, n: int, request_index: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, request_index])
        return [np.arange(n)] + [rng.permutation(n) for _ in range(self.bootstrap - 1)]

    def _items(self, request: RerankRequest, order: np.ndarray) -> list[Item]:
        return [self.catalog[request.candidates[i].item_id] for i in order]

    def _ordered(self, requests: Sequence[RerankRequest]) -> list[dict[str, Any]]:
        """Label scoring or listwise generation, over every shuffle of every request."""
        jobs = []  # (request index, order, prompt)
        for ri, req in enumerate(requests):
            for order in self._shuffles(len(req.candidates), ri):
                prompt = self.builder.build(self.strategy, req.history, self._items(req, order), req.now,
                                            self.catalog, template=self.template)
                jobs.append((ri, order, prompt))
        per_request: list[dict[str, Any]] = [{"scores": [], "calls": [], "fell_back": False, "raw": []}
                                             for _ in requests]
        if self.strategy == "label_scoring":
            by_size: dict[tuple[int, str], list[int]] = {}
            for j, (_, _, p) in enumerate(jobs):
                by_size.setdefault((len(p.labels), p.label_prefix), []).append(j)
            for (n, prefix), idx in by_size.items():
                labels = jobs[idx[0]][2].labels
                lp, lengths = self.backend.choice_logprobs([jobs[j][2].text for j in idx], self.label_ids(prefix, labels))
                for row, j, length in zip(lp, idx, lengths):
                    ri, order, prompt = jobs[j]
                    scores = np.empty(n)
                    scores[order] = row  # label i names candidate order[i]
                    best = labels[int(np.argmax(row))]
                    per_request[ri]["scores"].append(scores)
                    per_request[ri]["raw"].append(best)
                    per_request[ri]["calls"].append(LLMCall(prompt.text, best, length, 1,
                                                            dict(zip(labels, map(float, row)))))
        else:
            max_tokens = self.listwise_max_tokens or 4 * max(len(p.labels) for _, _, p in jobs) + 8
            gens = self.backend.generate([p.text for _, _, p in jobs], max_tokens=max_tokens)
            for (ri, order, prompt), gen in zip(jobs, gens):
                positions, fell_back = parse_ranking(gen.text, prompt.labels)
                n = len(order)
                scores = np.empty(n)
                scores[order[positions]] = (n - np.arange(n)) / n  # Borda points, best = 1
                per_request[ri]["scores"].append(scores)
                per_request[ri]["raw"].append(gen.text)
                per_request[ri]["fell_back"] |= fell_back
                per_request[ri]["calls"].append(LLMCall(prompt.text, gen.text, gen.prompt_tokens, gen.output_tokens))
        return per_request

    def _pointwise(self, requests: Sequence[RerankRequest]) -> list[dict[str, Any]]:
        prompts, owners = [], []
        for ri, req in enumerate(requests):
            for ci, cand in enumerate(req.candidates):
                p = self.builder.build("pointwise", req.history, [], req.now, self.catalog,
                                       candidate=self.catalog[cand.item_id], template=self.template)
                prompts.append(p)
                owners.append((ri, ci))
        out = [{"scores": [np.zeros(len(r.candidates))], "calls": [], "fell_back": False, "raw": []} for r in requests]
        if prompts:
            ids = self.answer_ids(prompts[0].label_prefix)
            lp, lengths = self.backend.choice_logprobs([p.text for p in prompts], ids)
            for (ri, ci), row, p, length in zip(owners, lp, prompts, lengths):
                out[ri]["scores"][0][ci] = row[0]  # log P(yes), renormalised against "no"
                out[ri]["calls"].append(LLMCall(p.text, "yes" if row[0] >= row[1] else "no", length, 1,
                                                {"yes": float(row[0]), "no": float(row[1])}))
        return out

    # -- aggregation and fusion -----------------------------------------------------------
    def _aggregate(self, scores: list[np.ndarray]) -> np.ndarray:
        stack = np.vstack(scores)
        if self.aggregate == "borda":
            n = stack.shape[1]
            ranks = np.argsort(np.argsort(-stack, axis=1, kind="stable"), axis=1, kind="stable")
            stack = (n - ranks) / n
        return stack.mean(axis=0)

    def _finish(self, req: RerankRequest, res: dict[str, Any], k: int | None) -> RankedList:
        llm = self._aggregate(res["scores"])
        retr = np.array([c.score for c in req.candidates], dtype=float)
        final = fuse(llm, retr, self.fusion)
        order = np.lexsort((np.arange(len(final)), -final))  # ties keep the retriever's order
        items = [RankedItem(req.candidates[i].item_id, r + 1, float(final[i]), float(llm[i]), float(retr[i]))
                 for r, i in enumerate(order)]
        calls = res["calls"]
        return RankedList(items[:k] if k else items, self.strategy, self.backend.name,
                          raw_output="\n---\n".join(res["raw"]), prompt_tokens=calls[0].prompt_tokens if calls else 0,
                          fell_back=res["fell_back"], calls=calls,
                          meta={"bootstrap": self.bootstrap, "aggregate": self.aggregate, "fusion": self.fusion,
                                "model": self.model})

    def tune_fusion(self, requests: Sequence[RerankRequest], true_items: Sequence[str],
                    grid: Sequence[float] = tuple(np.round(np.linspace(0, 1, 11), 2))) -> dict[str, Any]:
        """Pick the fusion weight that maximises NDCG@10 of the true items on validation requests."""
        saved, self.fusion = self.fusion, 0.0
        ranked = self.rerank_many(requests)
        self.fusion = saved
        curve = {}
        for a in grid:
            ranks = []
            for req, res, truth in zip(requests, ranked, true_items):
                llm = {i.item_id: i.llm_score for i in res.items}
                ids = [c.item_id for c in req.candidates]
                final = fuse(np.array([llm[i] for i in ids]), np.array([c.score for c in req.candidates]), a)
                order = np.lexsort((np.arange(len(final)), -final))
                ranks.append([ids[i] for i in order].index(truth) if truth in ids else len(ids))
            curve[float(a)] = ndcg(np.array(ranks), 10)
        self.fusion = max(curve, key=lambda a: (curve[a], -abs(a - 0.5)))
        return {"fusion": self.fusion, "ndcg@10_by_fusion": curve, "requests": len(requests)}

    def close(self) -> None:
        self.backend.close()


def fuse(llm: np.ndarray, retriever: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * z(llm) + weight * z(retriever), z-scored within the request."""
    if weight <= 0:
        return llm.astype(float)
    return (1 - weight) * _z(llm) + weight * _z(retriever)


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros_like(x)
    x = np.where(finite, x, x[finite].min() - 1.0)
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


_CACHE: dict[tuple, Reranker] = {}


def rerank(history: pd.DataFrame | list, candidates: Sequence[Candidate | str | Item], *, catalog: Catalog,
           now: Any = None, k: int | None = None, **options: Any) -> RankedList:
    """One call: rerank with a cached :class:`Reranker` built from ``options`` (model, backend, strategy...)."""
    key = (id(catalog), tuple(sorted((k_, repr(v)) for k_, v in options.items())))
    if key not in _CACHE:
        _CACHE[key] = Reranker(catalog=catalog, **options)
    return _CACHE[key].rerank(history, candidates, now=now, k=k)
