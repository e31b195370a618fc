"""Training examples for the ranking task, built from training events only.

For a target event at time ``t``: the user's history strictly before ``t`` (from the
training log), candidates = the true item + the retriever's top hard negatives + random
items (seeded), shuffled, rendered with the same templates as inference (with the retriever's
evidence about each candidate, as the eval's rerank pipelines show it, unless turned off).
Negatives are items the user never interacts with in the training log, before or after ``t``. The answer
is the true item's label (label scoring) or an ordered list of labels, true item first,
then the hard negatives in retriever order, then the random ones (listwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.data.splits import HeldOut
from promptrec.prompt.builder import PromptBuilder
from promptrec.data.candidate import order_by_score


@dataclass
class TrainingExample:
    """One prompt and the answer the model should give."""

    prompt: str
    answer: str
    labels: list[str]
    true_label: str
    user_id: str
    now: pd.Timestamp
    candidate_ids: list[str]
    # the retriever's score of each candidate shown, in shown order (-inf: it cannot recommend the item), as the
    # eval's tuned fusion sees them; None where not known (then fusion is judged against the order shown)
    retriever_scores: list[float] | None = None


def training_targets(log: Interactions, n: int, *, seed: int = 0, min_history: int = 3) -> list[HeldOut]:
    """``n`` events of ``log`` (seeded, uniformly over events) whose user has ``min_history`` earlier events."""
    f = log.frame
    users = f["user_id"].to_numpy()
    position = f.groupby("user_id", sort=False, observed=True).cumcount().to_numpy()  # the log is sorted by user, then time
    eligible = np.flatnonzero(position >= min_history)
    if not len(eligible):
        raise ValueError(f"no training event has {min_history} earlier events of its user; lower min_history.")
    pick = np.sort(np.random.default_rng([seed, 11]).choice(eligible, min(n, len(eligible)), replace=False))
    return [HeldOut(str(users[i]), str(f["item_id"].iloc[i]), f["timestamp"].iloc[i]) for i in pick]


def build_examples(targets: Sequence[HeldOut], log: Interactions, retriever: Any, catalog: Catalog,
                   builder: PromptBuilder, *, task: str = "label_scoring", hard_negatives: int = 10,
                   random_negatives: int = 9, evidence: bool = True, order: str = "shuffled", seed: int = 0,
                   progress: bool = True) -> list[TrainingExample]:
    """Render one example per target; ``retriever`` must be fitted with ``log`` as its event log. With
    ``evidence`` the prompt carries the retriever's facts about each candidate (all from before ``t``).
    ``order="retriever"`` shows the candidates sorted by the retriever's score at ``t`` (as a sampled-protocol
    rerank pipeline with ``order: retriever`` does, LlamaRec style) instead of shuffled."""
    if task not in ("label_scoring", "listwise"):
        raise ValueError(f"fine-tuning supports label_scoring and listwise, not {task!r}.")
    if order not in ("shuffled", "retriever"):
        raise ValueError(f"unknown order {order!r}; choose 'shuffled' or 'retriever'.")
    ids = np.asarray(catalog.ids, dtype=object)
    pool_k = 4 * hard_negatives + 50  # room for the items the user touches later
    retrieved = (retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=pool_k) if hard_negatives
                 else [[] for _ in targets])  # random negatives only (the sampled protocol's shape): none to retrieve
    drawn = []  # (candidates in the answer's order, the order shown)
    for j, (t, cands) in enumerate(zip(targets, retrieved)):
        rng = np.random.default_rng([seed, 13, j])
        # negatives are items the user never touches in the log, before or after t: an item they
        # watch a week later is not a wrong answer, and teaching that it is inverts the ranking
        touched = set(log.history(t.user_id)["item_id"]) | {t.item_id}
        hard = [c.item_id for c in cands if c.item_id not in touched][:hard_negatives]
        taken = touched | set(hard)
        pool = ids[~np.isin(ids, list(taken))]
        rand = list(rng.choice(pool, min(random_negatives, len(pool)), replace=False)) if len(pool) else []
        ordered = [t.item_id] + hard + [str(x) for x in rand]  # the answer's order for listwise
        drawn.append((ordered, [ordered[i] for i in rng.permutation(len(ordered))]))
    scores = retriever_scores(retriever, targets, [s for _, s in drawn])
    if order == "retriever":  # best scored first (stable: ties and items it cannot recommend keep their order)
        ranked = [order_by_score(np.array(row)) for row in scores]
        drawn = [(ordered, [shown[i] for i in r]) for (ordered, shown), r in zip(drawn, ranked)]
        scores = [[row[i] for i in r] for row, r in zip(scores, ranked)]
    out = []
    for t, (ordered, shown), score in tqdm(list(zip(targets, drawn, scores)), desc="building examples",
                                          disable=not progress):
        history = log.history(t.user_id, before=t.now)
        facts = retriever.explain(t.user_id, t.now, shown) if evidence else None
        prompt = builder.build(task, history, [catalog[i] for i in shown], t.now, catalog, evidence=facts)
        label_of = dict(zip(shown, prompt.labels))
        answer = label_of[t.item_id] if task == "label_scoring" else ", ".join(label_of[i] for i in ordered)
        out.append(TrainingExample(prompt.text, prompt.label_prefix + answer, prompt.labels, label_of[t.item_id],
                                   t.user_id, t.now, shown, score))
    return out


def retriever_scores(retriever: Any, targets: Sequence[HeldOut], candidates: Sequence[Sequence[str]], *,
                     chunk: int = 256) -> list[list[float]]:
    """The retriever's score of each target's candidates (in the given order) at the target's time, as the
    eval scores sampled candidates (-inf: an item it cannot recommend)."""
    out: list[list[float]] = []
    for start in range(0, len(targets), chunk):
        part, cols = list(targets[start:start + chunk]), [list(c) for c in candidates[start:start + chunk]]
        rows = retriever.score_targets(part, columns=cols)
        out.extend([float(v) for v in row[retriever.catalog.codes(items)]] for row, items in zip(rows, cols))
    return out


def build_retrieved_examples(targets: Sequence[HeldOut], log: Interactions, retriever: Any, catalog: Catalog,
                             builder: PromptBuilder, *, candidates: int = 20, evidence: bool = True, seed: int = 0,
                             order: str = "retriever", progress: bool = True) -> list[TrainingExample]:
    """Examples shaped like inference: the retriever's top ``candidates`` at the target's time with the retriever's
    evidence in the prompt. ``order="retriever"`` shows them in the retriever's order, as a reranker's first pass
    does, and keeps only targets the retriever found (at inference a missed item is not among the candidates;
    putting it in a fixed slot would teach that slot); ``"shuffled"`` puts the true item in place of the last
    candidate when missed and shuffles. Where repeats are allowed the user's own earlier items are candidates."""
    if order not in ("retriever", "shuffled"):
        raise ValueError(f"unknown order {order!r}; choose 'retriever' or 'shuffled'.")
    out = []
    retrieved = retriever.retrieve_many([(t.user_id, t.context or t.now) for t in targets], k=candidates)
    for j, (t, cands) in enumerate(tqdm(list(zip(targets, retrieved)), desc="building examples", disable=not progress)):
        ids = [c.item_id for c in cands][:candidates]
        score_of = {c.item_id: float(c.score) for c in cands}
        if order == "retriever":
            if t.item_id not in ids:
                continue
            shown = ids
        else:
            if t.item_id not in ids:  # the true item's score where the retriever missed it: below its candidates'
                ids = ids[:candidates - 1] + [t.item_id]
                score_of[t.item_id] = min(score_of.values(), default=0.0) - 1.0
            shown = [ids[i] for i in np.random.default_rng([seed, 19, j]).permutation(len(ids))]
        when = t.context or t.now
        facts = retriever.explain(t.user_id, when, shown) if evidence else None
        prompt = builder.build("label_scoring", log.history(t.user_id, before=t.now), [catalog[i] for i in shown],
                               when, catalog, evidence=facts)
        label = prompt.labels[shown.index(t.item_id)]
        out.append(TrainingExample(prompt.text, prompt.label_prefix + label, prompt.labels, label, t.user_id, t.now,
                                   shown, [score_of[i] for i in shown]))
    return out
