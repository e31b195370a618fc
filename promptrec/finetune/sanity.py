"""A sanity task that a correct fine-tuning pipeline must learn: the answer is written in the evidence.

Each example is a user at some hour with ``candidates`` places (shuffled). Exactly one candidate
is a place the user visits *at this hour* ("yours 7, last 2 days ago, 5 at this hour"); up to four
distractors have more visits in total but never at this hour, the rest were never visited.
The prompts go through the real builder and templates (``evidence.j2``), the labels through the
real training loop, so a pipeline that cannot reach HR@1 close to 1 here has a defect (masking,
label tokens, learning rate, schedule) rather than too little data.

    result = run_sanity(out="runs/sanity", candidates=20, examples=400)   # result["best"]["HR@1"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.records import Item
from promptrec.finetune.examples import TrainingExample
from promptrec.prompt.builder import PromptBuilder
from promptrec.retriever.evidence import CandidateEvidence

KINDS = ("Gym", "Coffee Shop", "Bar", "Office", "Park", "Subway", "Deli", "Bakery", "Library", "Pizza Place",
         "Museum", "Hotel", "Diner", "Bookstore", "Train Station", "Salon", "Theater", "Market", "School", "Pharmacy")


def sanity_catalog(n_items: int = 200, seed: int = 0) -> Catalog:
    rng = np.random.default_rng([seed, 1])
    kinds = rng.choice(KINDS, n_items)
    return Catalog.from_items(Item(f"p{i}", str(k), categories=(str(k),)) for i, k in enumerate(kinds))


def _facts(item_id: str, visits: int, at_hour: int, now: pd.Timestamp, rng: np.random.Generator) -> CandidateEvidence:
    last = now - pd.Timedelta(hours=int(rng.integers(2, 24 * 12))) if visits else None
    return CandidateEvidence(item_id, visits, last, at_hour, None, 0, float(rng.uniform(0.2, 8.0)),
                             visits + int(rng.integers(2, 60)), 0, None, None, None, 0)


def sanity_examples(builder: PromptBuilder, catalog: Catalog, n: int, *, candidates: int = 20, seed: int = 0
                    ) -> list[TrainingExample]:
    """``n`` examples whose true label is the candidate with the most visits at this hour."""
    rng = np.random.default_rng([seed, 2])
    ids = np.asarray(catalog.ids, dtype=object)
    start = pd.Timestamp("2024-03-04", tz="UTC")
    out = []
    for j in range(n):
        now = start + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 28)))
        shown = [str(x) for x in rng.choice(ids, candidates, replace=False)]
        true = int(rng.integers(candidates))
        at_hour = int(rng.integers(2, 10))
        facts = []
        visited = set(rng.choice([i for i in range(candidates) if i != true], min(candidates - 1, 4), replace=False))
        for i, item in enumerate(shown):
            if i == true:
                facts.append(_facts(item, at_hour + int(rng.integers(0, 4)), at_hour, now, rng))
            elif i in visited:  # visited more often, but never at this hour
                facts.append(_facts(item, int(rng.integers(at_hour, at_hour + 8)), 0, now, rng))
            else:
                facts.append(_facts(item, 0, 0, now, rng))
        prompt = builder.build("label_scoring", [], [catalog[i] for i in shown], now, catalog, evidence=facts)
        label = prompt.labels[true]
        out.append(TrainingExample(prompt.text, prompt.label_prefix + label, prompt.labels, label, f"u{j}", now, shown))
    return out


def run_sanity(out: str | Path, *, model: str | None = None, candidates: int = 20, examples: int = 400,
               valid_examples: int = 100, lora: Any = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train a LoRA adapter on the sanity task; returns the training record (``best`` holds HR@1)."""
    from promptrec.finetune.train import LoraConfig, train_lora
    from promptrec.models import DEFAULT_LLM, load_tokenizer, resolve_model
    from promptrec.prompt.labels import label_token_ids

    model = model or DEFAULT_LLM
    tokenizer = load_tokenizer(model)
    builder = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=4096)
    catalog = sanity_catalog(seed=seed)
    train = sanity_examples(builder, catalog, examples, candidates=candidates, seed=seed)
    valid = sanity_examples(builder, catalog, valid_examples, candidates=candidates, seed=seed + 1000)
    label_ids = label_token_ids(tokenizer, builder.labels.labels(candidates), "" if builder.chat else " ")
    return train_lora(resolve_model(model), train, valid, out, lora or LoraConfig(seed=seed), label_ids=label_ids,
                      progress=progress)
