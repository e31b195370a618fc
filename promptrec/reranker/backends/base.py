"""The contract every backend keeps: next-token log-probabilities over given tokens, and generation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    output_tokens: int


class Backend(ABC):
    """A served LLM. ``choice_logprobs`` must be normalised over the given tokens only, so that every
    backend returns comparable numbers for the same prompt."""

    name: str = "backend"
    tokenizer: Any = None
    model_path: str | None = None  # the local weights folder, where the backend loads one

    @abstractmethod
    def choice_logprobs(self, prompts: list[str], token_ids: list[int]) -> tuple[np.ndarray, list[int]]:
        """(prompts x tokens) log-probabilities of each token as the next one, renormalised over ``token_ids``;
        and each prompt's token count."""

    @abstractmethod
    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        """Greedy continuations."""

    def stats(self) -> dict[str, Any]:
        """Backend counters (e.g. prefix-cache hits), where the backend has them."""
        return {}

    def set_adapter(self, adapter: str | None) -> None:
        """Serve the next calls through a LoRA adapter folder (None: the base model)."""
        if adapter is not None:
            raise NotImplementedError(f"the {self.name} backend does not serve LoRA adapters.")

    def close(self) -> None:
        pass


def renormalise(logprobs: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis (ignoring -inf), so choices sum to one."""
    m = np.max(logprobs, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    z = np.log(np.sum(np.exp(logprobs - m), axis=-1, keepdims=True)) + m
    return logprobs - z
