"""Any OpenAI-compatible server, e.g. one started with ``vllm serve`` (``promptrec serve-llm`` prints the command).

Label scoring uses the completions endpoint with ``logprobs``: vLLM servers also honour
``allowed_token_ids`` (sent in the request body) and, when started with
``--logprobs-mode processed_logprobs``, return log-probabilities over exactly the labels.
With other servers, labels missing from the top log-probabilities get the lowest seen value
minus one, and the choices are renormalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.reranker.backends.base import Backend, Generation, renormalise


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, model: str, *, base_url: str = "http://127.0.0.1:8000/v1", api_key: str = "EMPTY",
                 tokenizer: str | None = None, timeout: float = 120.0, max_logprobs: int = 20):
        from openai import OpenAI
        from transformers import AutoTokenizer

        from promptrec.models import resolve_model

        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout)
        self.model = model
        self.served_model = model
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer or model))
        self.max_logprobs = max_logprobs

    def choice_logprobs(self, prompts: list[str], token_ids: list[int]) -> tuple[np.ndarray, list[int]]:
        pieces = [self.tokenizer.convert_ids_to_tokens(t) for t in token_ids]
        texts = [self.tokenizer.decode([t]) for t in token_ids]
        scores = np.full((len(prompts), len(token_ids)), -np.inf)
        lengths = []
        resp = self.client.completions.create(
            model=self.served_model, prompt=prompts, max_tokens=1, temperature=0.0,
            logprobs=min(self.max_logprobs, len(token_ids)), extra_body={"allowed_token_ids": token_ids})
        for choice in sorted(resp.choices, key=lambda c: c.index):
            top: dict[str, float] = (choice.logprobs.top_logprobs or [{}])[0] or {}
            for j, (piece, text) in enumerate(zip(pieces, texts)):
                if text in top:
                    scores[choice.index, j] = top[text]
                elif piece in top:
                    scores[choice.index, j] = top[piece]
            row = scores[choice.index]
            if np.isinf(row).any() and np.isfinite(row).any():
                row[np.isinf(row)] = row[np.isfinite(row)].min() - 1.0
        usage = resp.usage
        per_prompt = (usage.prompt_tokens // max(1, len(prompts))) if usage else 0
        lengths = [per_prompt] * len(prompts)
        return renormalise(scores), lengths

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        resp = self.client.completions.create(model=self.served_model, prompt=prompts, max_tokens=max_tokens,
                                              temperature=0.0)
        per_prompt = (resp.usage.prompt_tokens // max(1, len(prompts))) if resp.usage else 0
        return [Generation(c.text, per_prompt, len(self.tokenizer.encode(c.text, add_special_tokens=False)))
                for c in sorted(resp.choices, key=lambda c: c.index)]

    def set_adapter(self, adapter: str | None) -> None:
        """An adapter the server serves under its folder's name (``vllm serve ... --enable-lora
        --lora-modules NAME=PATH``, which ``promptrec serve-llm --adapter PATH`` starts)."""
        from pathlib import Path

        self.served_model = self.model if adapter is None else Path(adapter).name

    def stats(self) -> dict[str, Any]:
        return {"base_url": str(self.client.base_url)}
