"""Evaluation configs: a YAML or TOML file that says what to evaluate, read into typed dataclasses.

    dataset: {path: ../shared/data/ml-100k}      # or {path: demo}
    split: {name: leave-last-out}     # or {name: replay, ...}: day by day, frozen vs refitted (promptrec.eval.replay)
    protocols: [full, sampled, retrieval]
    llm_users: 200
    pipelines:
      - {name: popularity, kind: popularity}
      - {name: retriever, kind: retriever}
      - {name: LLM label scoring, kind: rerank, strategy: label_scoring, fusion: tune}

Every key is checked: an unknown key or kind is an error naming the file and the key.
See ``eval/configs/`` for complete examples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptrec.data.domain import Domain

PROTOCOLS = ("full", "sampled", "retrieval", "candidates")
DEFAULT_PROTOCOLS = ("full", "sampled", "retrieval")  # candidates needs a candidates_file
RANKED_PROTOCOLS = ("full", "sampled", "candidates")  # protocols with per-target ranks (retrieval reads full's)
SCORE_KINDS = ("random", "popularity", "recent_popularity", "cooccurrence", "content", "user_frequency",
               "user_frequency_hour", "retriever", "sasrec", "sasrec_time")
KINDS = SCORE_KINDS + ("rerank",)
CANDIDATE_ORDERS = ("drawn", "retriever")  # a rerank pipeline's sampled candidates: as drawn, or retriever-sorted


class ConfigError(ValueError):
    """A config file that cannot be used, with the file and key."""


@dataclass
class DatasetConfig:
    path: str = "demo"  # a folder, or "demo" for the embedded demo data
    format: str = "auto"
    tie_seed: int = 0  # order of same-second events
    options: dict[str, Any] = field(default_factory=dict)  # passed to the loader (timezone, columns...)
    domain: Any = None  # the prompts' words for what users do: a preset ("products") or {did, will, history}
    context: list[str] = field(default_factory=list)  # event columns declared as context (weather...)

    @property
    def is_demo(self) -> bool:
        return self.path == "demo" or self.format == "demo"


@dataclass
class SplitConfig:
    name: str = "leave-last-out"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    """One ranking method. ``options`` go to the method (signals, window_days, strategy, bootstrap...)."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_llm(self) -> bool:
        return self.kind == "rerank"


@dataclass
class EvalConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    pipelines: list[PipelineConfig] = field(default_factory=list)
    protocols: list[str] = field(default_factory=lambda: list(DEFAULT_PROTOCOLS))
    candidates_file: str | None = None  # the candidates protocol's lists: a line per user (promptrec.eval.candidates)
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    retrieval_ns: list[int] = field(default_factory=lambda: [20, 50, 100])
    full_candidates: int = 20  # retriever top-N the reranker orders in the full-ranking protocol
    sampled_negatives: int = 19  # LLMRank style: the true item + 19 unseen items
    repeats: str = "auto"  # may a user's own past items be recommended? auto: from the training log's repeat rate
    llm_users: int = 200  # seeded sample of test (and of validation) targets for LLM pipelines
    bootstrap_samples: int = 1000
    seed: int = 0
    index_root: str = "indexes"
    reranker: dict[str, Any] = field(default_factory=dict)  # defaults for every rerank pipeline
    name: str = "eval"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of everything that changes results (not the file's name or location)."""
        d = self.to_dict()
        d.pop("source")
        return _hash(_unset_domain_dropped(d))

    def shared_fingerprint(self) -> str:
        """A hash of what every pipeline's results depend on: the config without its list of pipelines."""
        d = self.to_dict()
        for key in ("source", "pipelines", "name"):
            d.pop(key)
        return _hash(_unset_domain_dropped(d))

    def pipeline_fingerprint(self, p: PipelineConfig) -> str:
        """A hash of one pipeline's own settings and, for a reranker, those of the retriever it reranks:
        adding, removing or editing another pipeline leaves its cached results valid."""
        deps = [p] + [q for q in self.pipelines if p.uses_llm and q.name == p.options.get("retriever")]
        return _hash([dataclasses.asdict(q) for q in deps])[:8]

    @property
    def max_k(self) -> int:
        return max(self.ks)


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> EvalConfig:
    """Read a ``.yaml``/``.yml``/``.toml`` eval config; ``overrides`` replace top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; see eval/configs/ for examples.")
    text = path.read_text()
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}") from None
    raw = {**(raw or {}), **(overrides or {})}
    cfg = parse_config(raw, str(path))
    base = path.resolve().parent
    if not cfg.dataset.is_demo and not Path(cfg.dataset.path).is_absolute():
        # relative dataset paths are relative to where promptrec runs, as on the command line;
        # if that does not exist but the path exists relative to the config file, use that
        if not Path(cfg.dataset.path).exists() and (base / cfg.dataset.path).exists():
            cfg.dataset.path = str(base / cfg.dataset.path)
    given = cfg.candidates_file
    if given and not Path(given).is_absolute() and not Path(given).exists() and (base / given).exists():
        cfg.candidates_file = str(base / given)  # as the dataset path: where promptrec runs, else by the config
    return cfg


def parse_config(raw: dict[str, Any], source: str = "<config>") -> EvalConfig:
    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: '{key}': {msg}")

    known = {f.name for f in dataclasses.fields(EvalConfig)} - {"source"}
    for key in raw:
        if key not in known:
            raise fail(key, f"unknown key; allowed: {sorted(known)}.")
    cfg = EvalConfig(source=source)
    for key, value in raw.items():
        if key == "dataset":
            value = {"path": value} if isinstance(value, str) else value
            cfg.dataset = _dataclass(DatasetConfig, value, "dataset", fail)
            try:
                Domain.of(cfg.dataset.domain)
            except ValueError as exc:
                raise fail("dataset.domain", str(exc)) from None
            context = cfg.dataset.context
            context = [context] if isinstance(context, str) else context
            if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
                raise fail("dataset.context", f"a list of event column names, e.g. [weather]; got {context!r}.")
            if context:  # the loader declares them (promptrec.data.context_columns)
                cfg.dataset.context, cfg.dataset.options = context, {**cfg.dataset.options, "context": context}
        elif key == "split":
            value = {"name": value} if isinstance(value, str) else dict(value)
            name = value.pop("name", "leave-last-out")
            cfg.split = SplitConfig(name, value.pop("options", {}) | value)
        elif key == "pipelines":
            cfg.pipelines = [_pipeline(p, i, fail) for i, p in enumerate(value or [])]
        else:
            setattr(cfg, key, value)
    if cfg.split.name == "replay":  # prequential replay (promptrec.eval.replay): its options checked here
        from promptrec.eval.replay import replay_settings

        replay_settings(cfg.split.options, source)
    bad = [p for p in cfg.protocols if p not in PROTOCOLS]
    if bad:
        raise fail("protocols", f"unknown {bad}; choose from {list(PROTOCOLS)}.")
    if ("candidates" in cfg.protocols) != bool(cfg.candidates_file):
        raise fail("candidates_file", "protocol 'candidates' ranks the lists of a candidates_file: give both or "
                                      "neither (a file of one line per user: user id, then the candidate ids).")
    if not cfg.pipelines:
        raise fail("pipelines", "no pipelines to evaluate; list at least one (e.g. {name: popularity, kind: popularity}).")
    names = [p.name for p in cfg.pipelines]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise fail("pipelines", f"duplicate names {sorted(dup)}; each pipeline needs its own name.")
    for p in cfg.pipelines:
        ref = p.options.get("retriever")
        if p.kind == "rerank":
            retrievers = [q.name for q in cfg.pipelines if q.kind == "retriever"]
            if ref is None and retrievers:
                p.options["retriever"] = retrievers[0]
            elif ref is None or ref not in retrievers:
                raise fail("pipelines", f"rerank pipeline '{p.name}' needs 'retriever:' naming a retriever "
                                        f"pipeline of this config (have: {retrievers}).")
            if p.options.get("order", "drawn") not in CANDIDATE_ORDERS:
                raise fail("pipelines", f"rerank pipeline '{p.name}': order is 'drawn' (the sampled candidates "
                                        "as drawn, shuffled) or 'retriever' (sorted by the retriever's score).")
    cfg.ks = sorted({int(k) for k in cfg.ks})
    return cfg


def _unset_domain_dropped(d: dict[str, Any]) -> dict[str, Any]:
    """The config as hashed: a dataset without a domain hashes as before domains existed (caches stay valid)."""
    if d.get("dataset", {}).get("domain") is None:
        d["dataset"] = {k: v for k, v in d["dataset"].items() if k != "domain"}
    if not d.get("dataset", {}).get("context", True):  # likewise without context columns
        d["dataset"] = {k: v for k, v in d["dataset"].items() if k != "context"}
    if d.get("candidates_file", "unset") is None:  # likewise without a candidates file
        d.pop("candidates_file")
    return d


def _dataclass(cls, value: Any, key: str, fail):
    if not isinstance(value, dict):
        raise fail(key, "expected a mapping.")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - allowed
    if unknown:
        raise fail(key, f"unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
    return cls(**value)


def _pipeline(value: Any, i: int, fail) -> PipelineConfig:
    if not isinstance(value, dict) or "kind" not in value:
        raise fail(f"pipelines[{i}]", "each pipeline is a mapping with at least 'kind' (and a 'name').")
    value = dict(value)
    kind = value.pop("kind")
    if kind not in KINDS:
        raise fail(f"pipelines[{i}].kind", f"unknown kind {kind!r}; choose from {list(KINDS)}.")
    name = str(value.pop("name", kind))
    return PipelineConfig(name, kind, _numbers(value.pop("options", {}) | value))


def _numbers(value: Any) -> Any:
    """Numeric strings become floats: YAML 1.1 reads ``1.0e7`` (no exponent sign) as a string."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value) if any(ch.isdigit() for ch in value) and "e" in value.lower() else value
        except ValueError:
            return value
    return value
