"""LLM reranking: one prompt/parse path, several backends (vLLM engine, OpenAI-compatible server, transformers)."""
