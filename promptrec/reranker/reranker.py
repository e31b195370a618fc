"""Reranker: orders a user's candidates with an LLM, from a prompt that says when things happened.

    reranker = Reranker(catalog=ds.catalog)                       # SmolLM2 on vLLM, label scoring
    ranked = reranker.rerank(history, candidates, now=now, k=10)  # -> RankedList

Strategies (same prompts and parsing for every backend):

* ``label_scoring`` - one forward pass per prompt; the next-token log-probabilities of the
  candidate labels, renormalised over the labels, rank all candidates at once;
* ``listwise`` - the model writes the labels in order; :func:`parse_ranking` repairs the text
  (duplicates dropped, unknown labels ignored, missing candidates appended in retriever order);
* ``pointwise`` - one prompt per candidate; the probability of "yes" (against "no") scores it.

``bootstrap=n`` reranks under n shuffles of the candidate order (the first is the retriever's
order; the others seeded by the request's time and candidates, :func:`request_key`) and averages
the scores (``aggregate="mean"``) or their Borda points (``"borda"``), which cancels position bias. The history comes before the candidates in the
prompt, so the shuffles share a prefix that vLLM's prefix cache computes once. ``fusion=a``
blends z-scored LLM and retriever scores: (1 - a) * llm + a * retriever; :meth:`tune_fusion`
picks ``a`` on validation requests, and keeps the retriever's order (a = 1) unless the LLM's
validation gain is beyond noise (:func:`choose_fusion`).

A request's answer does not depend on its batch: ``rerank()`` is ``rerank_many([request])``, and the
prompts and scores of a request are the same alone, in any batch and batch order, to 1e-3 in log-probability
(bit-identical with transformers, and with vLLM in float32; vLLM in bfloat16 varies by up to 0.18,
docs/reranking.md "Same answer in any batch").

``adapter=`` serves a LoRA adapter from ``promptrec finetune``; ``adapter_mode`` says how: "lora"
(vLLM's LoRARequest or peft: many adapters on one engine, the way on GPUs), "merged" (the adapter
merged into the base weights once, :mod:`promptrec.reranker.merge`: base-model speed), or "auto"
(merged for vLLM without a CUDA GPU, whose CPU LoRA kernels are ~4x slower; else lora).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from promptrec.data.candidate import Candidate
from promptrec.data.catalog import Catalog
from promptrec.data.records import Item
from promptrec.metrics import ndcg
from promptrec.models import DEFAULT_LLM
from promptrec.prompt.builder import Prompt, PromptBuilder
from promptrec.prompt.labels import LabelError, label_token_ids
from promptrec.reranker.backends import Backend, make_backend
from promptrec.reranker.fusion import FUSION_GRID, choose_fusion, fuse, fused_order, z_scores  # noqa: F401 (old path)
from promptrec.reranker.parsing import parse_ranking
from promptrec.reranker.types import LLMCall, RankedItem, RankedList, RerankRequest

STRATEGIES = ("label_scoring", "listwise", "pointwise")
AGGREGATES = ("mean", "borda")


class Reranker:
    """An LLM that orders candidates; see the module docstring for strategies, bootstrapping and fusion."""

    def __init__(self, model: str = DEFAULT_LLM, backend: str | Backend = "vllm", strategy: str = "label_scoring",
                 template: str | None = None, *, catalog: Catalog, prompts_dir: str | Path | None = None,
                 labels: str = "letters", max_candidates: int = 20, max_prompt_tokens: int | None = None,
                 max_history: int = 20, timezone: str = "UTC", bootstrap: int = 1, aggregate: str = "mean",
                 fusion: float = 0.0, seed: int = 0, listwise_max_tokens: int | None = None,
                 backend_options: dict[str, Any] | None = None, adapter: str | Path | None = None,
                 adapter_mode: str = "auto"):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}.")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {AGGREGATES}.")
        self.adapter, self.adapter_manifest, self.adapter_served = None, None, None
        backend_options = dict(backend_options or {})
        if adapter is not None:
            from promptrec.reranker.adapter import check_adapter, max_lora_rank
            from promptrec.reranker.merge import adapter_serving

            self.adapter_manifest = check_adapter(adapter, model)
            if self.adapter_manifest.get("labels", labels) != labels:
                raise ValueError(f"adapter {adapter} was trained with '{self.adapter_manifest['labels']}' labels; "
                                 f"create the reranker with labels='{self.adapter_manifest['labels']}'.")
            self.adapter = str(adapter)
            self.adapter_served = adapter_serving(adapter, adapter_mode, backend)
            if self.adapter_served == "lora" and backend == "vllm":
                backend_options.setdefault("enable_lora", True)
                backend_options.setdefault("max_lora_rank", max_lora_rank([self.adapter_manifest]))
        if max_prompt_tokens is None:  # the adapter's training prompts, else promptrec's default budget
            max_prompt_tokens = int((self.adapter_manifest or {}).get("data", {}).get("max_prompt_tokens", 800))
        if not isinstance(backend, Backend):
            from promptrec.reranker.merge import weights_to_load

            backend = make_backend(backend, weights_to_load(model, self.adapter, self.adapter_served),
                                   **backend_options)
        self.backend = backend
        self._lora = self.adapter if self.adapter_served == "lora" else None  # merged weights need no LoRA request
        self.backend.set_adapter(self._lora)  # fails early when the backend cannot serve it
        self.model, self.strategy, self.template = model, strategy, template
        self.catalog = catalog
        self.bootstrap, self.aggregate, self.fusion, self.seed = max(1, bootstrap), aggregate, fusion, seed
        self.max_candidates = max_candidates
        self.listwise_max_tokens = listwise_max_tokens  # default: 4 tokens per label + 8
        self.builder = PromptBuilder(prompts_dir=prompts_dir, tokenizer=self.backend.tokenizer,
                                     max_prompt_tokens=max_prompt_tokens, max_history=max_history, labels=labels,
                                     timezone=timezone)
        if self.adapter_manifest:
            from promptrec.reranker.adapter import template_drift

            template_drift(self.adapter_manifest, self.builder.library)
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
               k: int | None = None, evidence: Sequence[Any] | None = None) -> RankedList:
        """Order ``candidates`` for a user with ``history`` (events strictly before ``now``; default: now);
        ``evidence``: ``retriever.explain(user, now, item_ids)``, said per candidate in the prompt."""
        return self.rerank_many([self.request(history, candidates, now, evidence=evidence)], k=k)[0]

    def request(self, history: pd.DataFrame | list, candidates: Sequence[Candidate | str | Item], now: Any = None,
                user_id: str = "", evidence: Sequence[Any] | None = None) -> RerankRequest:
        """One request; ``evidence``: the retriever's facts per candidate (``retriever.explain``), for the prompt."""
        cands = [c if isinstance(c, Candidate) else
                 Candidate(c.item_id if isinstance(c, Item) else str(c), -float(r), r + 1)  # keep the given order
                 for r, c in enumerate(candidates)]
        from promptrec.context import Context

        facts = None if evidence is None else {e.item_id: e for e in evidence}
        if isinstance(now, Context):
            return RerankRequest(history, cands, now.now, user_id, now, facts)
        when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        return RerankRequest(history, cands, when, user_id, evidence=facts)

    def rerank_many(self, requests: Sequence[RerankRequest], k: int | None = None) -> list[RankedList]:
        """Rerank a batch: every prompt of every request (and shuffle) goes to the backend together."""
        self.backend.set_adapter(self._lora)  # a shared backend may serve other rerankers in between
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
    def _shuffles(self, request: RerankRequest) -> list[np.ndarray]:
        """The candidate orders of a request: the given one, then ``bootstrap - 1`` permutations seeded by the
        request's content (:func:`request_key`), never by its place in a batch."""
        n = len(request.candidates)
        rng = np.random.default_rng([self.seed, *request_key(request)])
        return [np.arange(n)] + [rng.permutation(n) for _ in range(self.bootstrap - 1)]

    def _items(self, request: RerankRequest, order: np.ndarray) -> list[Item]:
        return [self.catalog[request.candidates[i].item_id] for i in order]

    def _prompt(self, request: RerankRequest, order: np.ndarray) -> Prompt:
        """The request's prompt with its candidates in ``order`` (and their evidence, if the request has it)."""
        items = self._items(request, order)
        facts = None if request.evidence is None else [request.evidence.get(it.item_id) for it in items]
        return self.builder.build(self.strategy, request.history, items, request.when, self.catalog,
                                  template=self.template, evidence=facts)

    def _ordered(self, requests: Sequence[RerankRequest]) -> list[dict[str, Any]]:
        """Label scoring or listwise generation, over every shuffle of every request.

        The prompts in the given order go to the backend first and the shuffles after them, so
        the shuffles find each user's shared prefix (everything before the candidate list)
        already in vLLM's prefix cache instead of recomputing it in the same batch.
        """
        per_request: list[dict[str, Any]] = [{"scores": [], "calls": [], "fell_back": False, "raw": []}
                                             for _ in requests]
        shuffles = [self._shuffles(req) for req in requests]
        for wave in ([0], list(range(1, self.bootstrap))) if self.bootstrap > 1 else ([0],):
            jobs = [(ri, shuffles[ri][s], self._prompt(req, shuffles[ri][s])) for ri, req in enumerate(requests)
                    for s in wave]
            if self.strategy == "label_scoring":
                self._score_labels(jobs, per_request)
            else:
                self._generate_lists(jobs, per_request)
        return per_request

    def _score_labels(self, jobs: list[tuple[int, np.ndarray, Prompt]], per_request: list[dict[str, Any]]) -> None:
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

    def _generate_lists(self, jobs: list[tuple[int, np.ndarray, Prompt]], per_request: list[dict[str, Any]]) -> None:
        by_budget: dict[int, list[int]] = {}  # each prompt's own token budget, whatever else is in the batch
        for j, (_, _, p) in enumerate(jobs):
            by_budget.setdefault(self.listwise_max_tokens or 4 * len(p.labels) + 8, []).append(j)
        gens: list[Any] = [None] * len(jobs)
        for max_tokens, idx in by_budget.items():
            for j, gen in zip(idx, self.backend.generate([jobs[j][2].text for j in idx], max_tokens=max_tokens)):
                gens[j] = gen
        for (ri, order, prompt), gen in zip(jobs, gens):
            positions, fell_back = parse_ranking(gen.text, prompt.labels)
            n = len(order)
            scores = np.empty(n)
            scores[order[positions]] = (n - np.arange(n)) / n  # Borda points, best = 1
            per_request[ri]["scores"].append(scores)
            per_request[ri]["raw"].append(gen.text)
            per_request[ri]["fell_back"] |= fell_back
            per_request[ri]["calls"].append(LLMCall(prompt.text, gen.text, gen.prompt_tokens, gen.output_tokens))

    def _pointwise(self, requests: Sequence[RerankRequest]) -> list[dict[str, Any]]:
        prompts, owners = [], []
        for ri, req in enumerate(requests):
            for ci, cand in enumerate(req.candidates):
                p = self.builder.build("pointwise", req.history, [], req.when, self.catalog,
                                       candidate=self.catalog[cand.item_id], template=self.template,
                                       candidate_evidence=None if req.evidence is None else req.evidence.get(cand.item_id))
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
        order = fused_order(llm, retr, self.fusion)  # ties keep the retriever's order
        items = [RankedItem(req.candidates[i].item_id, r + 1, float(final[i]), float(llm[i]), float(retr[i]))
                 for r, i in enumerate(order)]
        calls = res["calls"]
        return RankedList(items[:k] if k else items, self.strategy, self.backend.name,
                          raw_output="\n---\n".join(res["raw"]), prompt_tokens=calls[0].prompt_tokens if calls else 0,
                          fell_back=res["fell_back"], calls=calls,
                          meta={"bootstrap": self.bootstrap, "aggregate": self.aggregate, "fusion": self.fusion,
                                "model": self.model, "adapter": self.adapter,
                                "adapter_served": self.adapter_served})

    def tune_fusion(self, requests: Sequence[RerankRequest], true_items: Sequence[str],
                    grid: Sequence[float] = FUSION_GRID) -> dict[str, Any]:
        """Pick the fusion weight on validation requests (see :func:`choose_fusion`)."""
        saved, self.fusion = self.fusion, 0.0
        ranked = self.rerank_many(requests)
        self.fusion = saved
        grid = sorted({float(a) for a in grid} | {1.0})
        per_request = {}
        for a in grid:
            ranks = []
            for req, res, truth in zip(requests, ranked, true_items):
                llm = {i.item_id: i.llm_score for i in res.items}
                ids = [c.item_id for c in req.candidates]
                order = fused_order(np.array([llm[i] for i in ids]), np.array([c.score for c in req.candidates]), a)
                ranks.append([ids[i] for i in order].index(truth) if truth in ids else len(ids))
            per_request[a] = np.array(ranks)
        self.fusion = choose_fusion(per_request)
        return {"fusion": self.fusion, "ndcg@10_by_fusion": {a: ndcg(r, 10) for a, r in per_request.items()},
                "requests": len(requests)}

    def close(self) -> None:
        self.backend.close()


def request_key(request: RerankRequest) -> list[int]:
    """Four 32-bit words of a SHA-256 of the request's time and candidate ids (what its prompts are made of,
    beside the history): the same in any process (unlike ``hash()``), in any batch, and with or without a
    user id, so bootstrap shuffles follow the request, not its place in a batch or the call that sent it."""
    now = pd.Timestamp(request.now).value  # the instant, whatever the time zone
    text = "\x1f".join([str(now), *(c.item_id for c in request.candidates)])
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


_CACHE: dict[tuple, Reranker] = {}


def rerank(history: pd.DataFrame | list, candidates: Sequence[Candidate | str | Item], *, catalog: Catalog,
           now: Any = None, k: int | None = None, **options: Any) -> RankedList:
    """One call: rerank with a cached :class:`Reranker` built from ``options`` (model, backend, strategy...)."""
    key = (id(catalog), tuple(sorted((k_, repr(v)) for k_, v in options.items())))
    if key not in _CACHE:
        _CACHE[key] = Reranker(catalog=catalog, **options)
    return _CACHE[key].rerank(history, candidates, now=now, k=k)


def reranker_for(retriever: Any, backend: str, model: str, strategy: str, *, candidates: int, bootstrap: int = 1,
                 fusion: float = 0.0, adapter: str | None = None, backend_options: dict | None = None) -> Reranker:
    """A reranker for a fitted retriever's catalogue and time zone, sized for ``candidates`` (at least 20)."""
    return Reranker(model, backend, strategy, catalog=retriever.catalog, bootstrap=bootstrap, fusion=fusion,
                    timezone=retriever.events.timezone, max_candidates=max(20, candidates),
                    backend_options=backend_options or {}, adapter=adapter)
