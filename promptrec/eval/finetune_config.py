"""LoRA fine-tuning shaped by an eval config: ``promptrec finetune --config``.

It trains on the config's data and split, with examples shaped like its rerank pipelines, from the retriever its
pipelines use, so it lives with the evaluation (it reads eval configs and fits through the eval's pipelines).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptrec.finetune import LoraConfig


def finetune_on_config(config: str | Path, *, out: str | Path, data: str | Path | None = None, model: str | None = None,
                       examples: int = 1500, valid_examples: int = 200, candidates: int = 20, evidence: bool = True,
                       order: str = "retriever", protocol: str | None = None, prompts_dir: str | Path | None = None,
                       max_prompt_tokens: int = 800, lora: LoraConfig | None = None, progress: bool = True
                       ) -> dict[str, Any]:
    """Train on an eval config's data and split, with examples shaped like its rerank pipelines on ``protocol``
    (default: "full" when the config runs it, else "sampled"), from the config's time-aware retriever (fitted and
    tuned as ``promptrec eval`` does) with its evidence in the prompt:

    - "full": the retriever's top ``candidates`` at each training event's time, in its order (``order``: see
      :func:`~promptrec.finetune.examples.build_retrieved_examples`; events it missed are then left out, so
      fewer than ``examples`` remain);
    - "sampled": the true item and the config's ``sampled_negatives`` random items the user never touches,
      sorted by the retriever's score (``order="retriever"``, for pipelines with ``order: retriever``) or shuffled.

    Returns the manifest written to ``out``."""
    from promptrec.data.loaders import load_dataset
    from promptrec.data.splits import make_split
    from promptrec.eval.config import PipelineConfig, load_config
    from promptrec.eval.pipelines import fit_score_model
    from promptrec.finetune import LoraConfig, sample_positions, train_and_write
    from promptrec.finetune.examples import build_examples, build_retrieved_examples, training_targets
    from promptrec.index.item_index import ItemIndex
    from promptrec.models import DEFAULT_LLM, load_tokenizer
    from promptrec.prompt.builder import PromptBuilder

    cfg = load_config(config)
    if data is not None:
        cfg.dataset.path = str(data)
    protocol = protocol or ("full" if "full" in cfg.protocols else "sampled")
    if protocol not in ("full", "sampled"):
        raise ValueError(f"unknown protocol {protocol!r}; choose 'full' or 'sampled'.")
    model, d, seed = model or DEFAULT_LLM, cfg.dataset, cfg.seed
    lora = lora or LoraConfig(seed=seed)
    ds = load_dataset(None) if d.is_demo else load_dataset(d.path, format=d.format, seed=d.tie_seed, **d.options)
    sp = make_split(ds.interactions, cfg.split.name, **cfg.split.options)
    index = ItemIndex.for_catalog(ds.catalog, ds.name, root=cfg.index_root)
    spec = next((p for p in cfg.pipelines if p.kind == "retriever"), PipelineConfig("time-aware retriever", "retriever"))
    retriever = fit_score_model(spec, sp, ds.catalog, index, seed, cfg.repeats)  # the one the rerank pipelines use
    tokenizer = load_tokenizer(model)
    prompts_dir = prompts_dir or cfg.reranker.get("prompts_dir")  # the templates the config's reranker will use
    builder = PromptBuilder(prompts_dir=prompts_dir, tokenizer=tokenizer, max_prompt_tokens=max_prompt_tokens,
                            timezone=ds.interactions.timezone)
    train_targets = training_targets(sp.train, examples, seed=seed)
    valid_targets = [sp.validation[i] for i in sample_positions(len(sp.validation), valid_examples, seed)]
    if protocol == "full":
        kw = dict(candidates=candidates, evidence=evidence, order=order, progress=progress)
        train = build_retrieved_examples(train_targets, sp.full, retriever, ds.catalog, builder, seed=seed, **kw)
        valid = build_retrieved_examples(valid_targets, sp.full, retriever, ds.catalog, builder, seed=seed + 1, **kw)
        negatives = "retriever top-N"
    else:
        candidates = cfg.sampled_negatives + 1
        kw = dict(hard_negatives=0, random_negatives=cfg.sampled_negatives, evidence=evidence,
                  order=order, progress=progress)
        train = build_examples(train_targets, sp.train, retriever, ds.catalog, builder, seed=seed, **kw)
        valid = build_examples(valid_targets, sp.full, retriever, ds.catalog, builder, seed=seed + 1, **kw)
        negatives = "random, never touched by the user"
    data_info = {"dataset": ds.name, "config": str(config), "split": sp.describe(), "protocol": protocol,
                 "candidates": candidates, "negatives": negatives, "evidence": evidence, "order": order,
                 "sampled_targets": examples, "seed": seed, "max_prompt_tokens": max_prompt_tokens}
    return train_and_write(model, builder, train, valid, out, lora, task="label_scoring", candidates=candidates,
                            data_info=data_info, progress=progress)
