"""PromptBuilder: a user's timestamped history and the candidates -> the exact text an LLM sees.

Each task template (``label_scoring.j2``, ``listwise.j2``, ``pointwise.j2``) has a
``system`` block, a ``user`` block and an optional ``assistant_prefix`` block. With a chat
model the blocks become messages passed through the tokenizer's chat template; for base
models they are joined as plain text. The history comes before the candidates, so prompts
for one user share a prefix (which vLLM's prefix cache reuses across shuffles).

The history is cut to fit ``max_prompt_tokens`` counted with the model's own tokenizer,
keeping the most recent events; older events are summarised (counts per category).
Candidates are never cut: if they alone exceed the budget, that is an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from promptrec.context import Context
from promptrec.data.catalog import Catalog
from promptrec.data.domain import Domain
from promptrec.data.interactions import to_utc
from promptrec.data.records import Event, Item
from promptrec.prompt.labels import LabelScheme
from promptrec.templates import TemplateError, TemplateLibrary
from promptrec.prompt.time_filters import FILTERS

TASKS = {"label_scoring": "label_scoring.j2", "listwise": "listwise.j2", "pointwise": "pointwise.j2"}


class PromptBudgetError(ValueError):
    """The candidates alone do not fit the prompt's token budget."""


@dataclass
class Prompt:
    """What one LLM call sees, and how it was made."""

    text: str
    messages: list[dict[str, str]]
    labels: list[str]
    candidate_ids: list[str]
    template: str
    token_count: int | None = None
    history_shown: int = 0
    history_summarized: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label_prefix(self) -> str:
        """What precedes the label the model writes: nothing after a newline, else a space."""
        return "" if not self.text or self.text[-1].isspace() else " "


class PromptBuilder:
    """Renders prompts for the reranking tasks from the templates in ``prompts_dir`` (defaults behind it)."""

    def __init__(self, *, prompts_dir: str | Path | None = None, tokenizer: Any = None, max_prompt_tokens: int = 800,
                 max_history: int = 20, labels: str | LabelScheme = "letters", timezone: str = "UTC",
                 chat: bool | None = None, item_template: str = "item_prompt.j2", hemisphere: str = "north",
                 context_columns: Sequence[str] = ()):
        self.library = TemplateLibrary(prompts_dir, filters=FILTERS)
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        self.max_history = max_history
        self.labels = labels if isinstance(labels, LabelScheme) else LabelScheme(labels)
        self.timezone = timezone
        self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        self.item_template = item_template
        self.hemisphere = hemisphere
        # declared context columns (promptrec.data.context_columns) the prompt states when the request has them
        self.context_columns = tuple(context_columns)

    # -- public --------------------------------------------------------------------
    def build(self, task: str, history: pd.DataFrame | Sequence[Event], candidates: Sequence[Item], now: Any,
              catalog: Catalog, *, candidate: Item | None = None, template: str | None = None,
              evidence: Sequence[Any] | None = None, candidate_evidence: Any = None,
              times_known: bool | None = None) -> Prompt:
        """The prompt for ``task`` at time ``now`` (a time or a :class:`Context`); history events at or after
        ``now`` are refused. Templates see ``now`` (local time), ``context`` (device, location, extras) and, per
        candidate, ``visits`` and ``last_visit`` (how often and when the user used it before) and ``evidence``
        (the retriever's facts, :class:`~promptrec.retriever.evidence.CandidateEvidence`, aligned with
        ``candidates``; none where not given). The pointwise ``candidate`` has the same fields, its evidence from
        ``candidate_evidence``. ``times_known`` False (default: the history frame's ``attrs``, set by
        :class:`~promptrec.data.interactions.Interactions`): the history's times are only an order, and templates
        say each entry's place ("2nd most recent") instead of when."""
        name = template or TASKS.get(task)
        if name is None:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)} or pass template=.")
        context = Context.of(now)
        now_local = context.now.tz_convert(self.timezone)
        events = self._events(history, now_local)
        labels = self.labels.labels(len(candidates))
        visits = Counter(e["item_id"] for e in events)
        last_visit = {e["item_id"]: e["time"] for e in events}
        facts = list(evidence) if evidence is not None else [None] * len(candidates)
        if len(facts) != len(candidates):
            raise ValueError(f"{len(facts)} evidence entries for {len(candidates)} candidates; give one per candidate.")
        cands = [{"label": lab, "item": it, "text": self.item_text(it), "visits": visits.get(it.item_id, 0),
                  "last_visit": last_visit.get(it.item_id), "evidence": ev}
                 for lab, it, ev in zip(labels, candidates, facts)]
        base = {"now": now_local, "context": context, "context_lines": self.context_lines(context), "candidates": cands, "labels": labels, "hemisphere": self.hemisphere,
                "brief": False, "domain": getattr(catalog, "domain", None) or Domain(),
                "times_known": _times_known(history) if times_known is None else bool(times_known),
                "candidate": None if candidate is None else {
                    "item": candidate, "text": self.item_text(candidate), "visits": visits.get(candidate.item_id, 0),
                    "last_visit": last_visit.get(candidate.item_id), "evidence": candidate_evidence}}
        entries = [self._entry(e, prev, catalog) | {"steps_back": len(events) - n}
                   for n, (e, prev) in enumerate(zip(events, [None] + events[:-1]))]
        keep = min(len(entries), self.max_history)
        prompt = self._render(name, base, entries, keep, catalog)
        if self._over(prompt):
            empty = self._render(name, base, entries, 0, catalog)
            if self._over(empty) and (any(f is not None for f in facts) or candidate_evidence is not None):
                base["brief"] = True  # the candidates do not fit: templates say only the strongest evidence
                empty = self._render(name, base, entries, 0, catalog)
            if self._over(empty):
                raise PromptBudgetError(
                    f"the candidates alone need {empty.token_count} tokens with template '{name}', over the "
                    f"budget of {self.max_prompt_tokens}; raise max_prompt_tokens or pass fewer candidates.")
            lo, hi = 0, keep  # largest number of recent events that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._over(self._render(name, base, entries, mid, catalog)):
                    hi = mid - 1
                else:
                    lo = mid
            prompt = self._render(name, base, entries, lo, catalog)
        return prompt

    def context_lines(self, context: Context) -> list[tuple[str, str]]:
        """(label, value) of each declared context column the request has, e.g. ("Weather", "rain")."""
        values = {k: v for k, v in context.extras.items() if v is not None and str(v) not in ("", "nan")}
        return [(c.replace("_", " ").capitalize(), str(values[c])) for c in self.context_columns if c in values]

    def item_text(self, item: Item) -> str:
        return " ".join(self.library.render(self.item_template, item=item).split())

    def count_tokens(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # -- internals -----------------------------------------------------------------
    def _events(self, history: pd.DataFrame | Sequence[Event], now_local: pd.Timestamp) -> list[dict[str, Any]]:
        if isinstance(history, pd.DataFrame):
            rows = history.to_dict("records")
        else:
            rows = [{"item_id": e.item_id, "timestamp": e.timestamp, "event_type": e.event_type, **e.context}
                    for e in history]
        events = []
        for r in rows:
            ts = to_utc(r["timestamp"]).tz_convert(self.timezone)
            if ts >= now_local:
                raise ValueError(f"history event at {ts} is not before now ({now_local}); pass only events "
                                 "strictly before the time of the prediction.")
            events.append({**r, "time": ts})
        return sorted(events, key=lambda e: e["time"])

    def _entry(self, event: dict[str, Any], prev: dict[str, Any] | None, catalog: Catalog) -> dict[str, Any]:
        item = catalog[event["item_id"]]
        context = {k: v for k, v in event.items() if k not in ("item_id", "timestamp", "time", "user_id", "weight")}
        return {"item": item, "text": self.item_text(item), "time": event["time"],
                "previous": None if prev is None else prev["time"], "event_type": event.get("event_type", ""),
                "context": context}

    def _render(self, name: str, base: dict[str, Any], entries: list[dict[str, Any]], keep: int,
                catalog: Catalog) -> Prompt:
        shown, older = entries[len(entries) - keep:], entries[: len(entries) - keep]
        ctx = {**base, "history": shown, "older": _summary(older)}
        blocks = {b: self.library.render_block(name, b, ctx) for b in ("system", "user", "assistant_prefix")}
        if blocks["user"] is None:
            raise TemplateError(f"template '{name}' needs a {{% block user %}}.")
        messages = [{"role": "system", "content": blocks["system"]}] if blocks.get("system") else []
        messages.append({"role": "user", "content": blocks["user"]})
        prefix = blocks["assistant_prefix"] or ""
        if self.chat:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefix
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\n" + (prefix or "Answer:")
        return Prompt(text=text, messages=messages, labels=base["labels"],
                      candidate_ids=[c["item"].item_id for c in base["candidates"]], template=name,
                      token_count=self.count_tokens(text), history_shown=len(shown),
                      history_summarized=len(older))

    def _over(self, prompt: Prompt) -> bool:
        return prompt.token_count is not None and prompt.token_count > self.max_prompt_tokens


def _times_known(history: pd.DataFrame | Sequence[Event]) -> bool:
    """Whether a history's times are clock times (a log with only an order marks its frame's ``attrs``)."""
    return bool(history.attrs.get("times_known", True)) if isinstance(history, pd.DataFrame) else True


def _summary(older: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Counts per category of the events too old to show one by one."""
    if not older:
        return None
    cats = Counter(c for e in older for c in (e["item"].categories or ("other",)))
    return {"count": len(older), "first": older[0]["time"], "last": older[-1]["time"],
            "categories": cats.most_common(5)}
