"""Backends behind one small contract (:class:`Backend`); heavy ones are imported only when chosen."""

from __future__ import annotations

from typing import Any

from promptrec.reranker.backends.base import Backend, Generation

BACKENDS = ("vllm", "openai", "transformers")


def make_backend(name: str, model: str, **options: Any) -> Backend:
    if name == "vllm":
        from promptrec.reranker.backends.vllm_engine import VLLMBackend

        return VLLMBackend(model, **options)
    if name == "openai":
        from promptrec.reranker.backends.openai_server import OpenAIBackend

        return OpenAIBackend(model, **options)
    if name == "transformers":
        from promptrec.reranker.backends.hf_transformers import TransformersBackend

        return TransformersBackend(model, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}.")


__all__ = ["BACKENDS", "Backend", "Generation", "make_backend"]
