"""LLM reranking: one prompt/parse path, several backends (vLLM engine, OpenAI-compatible server, transformers)."""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "Reranker": "promptrec.reranker.reranker", "rerank": "promptrec.reranker.reranker",
    "RerankRequest": "promptrec.reranker.types", "RankedList": "promptrec.reranker.types",
    "RankedItem": "promptrec.reranker.types", "LLMCall": "promptrec.reranker.types",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
