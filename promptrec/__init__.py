"""promptrec: time-aware recommendation with large language models.

The front door::

    from promptrec import generate_demo, fit_retriever, rerank
    ds = generate_demo().dataset
    retriever = fit_retriever(ds)
    candidates = retriever.retrieve("u0001", "2024-03-05T19:00:00Z", k=20)

The data flows data -> index -> retriever -> prompt -> reranker -> eval / serve; each stage is a
subpackage that re-exports its public names. Heavy parts (FAISS, sentence-transformers, vLLM) are
imported only when used.
"""

from __future__ import annotations

from promptrec._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # data
    "Item": "promptrec.data.records",
    "Event": "promptrec.data.records",
    "Catalog": "promptrec.data.catalog",
    "Interactions": "promptrec.data.interactions",
    "Dataset": "promptrec.data.dataset",
    "DataError": "promptrec.data.problems",
    "load_dataset": "promptrec.data.loaders",
    "load_events": "promptrec.data.loaders",
    "load_items": "promptrec.data.loaders",
    "generate_demo": "promptrec.data.demo",
    "HeldOut": "promptrec.data.splits",
    "Split": "promptrec.data.splits",
    "make_split": "promptrec.data.splits",
    "leave_last_out": "promptrec.data.splits",
    "temporal_split": "promptrec.data.splits",
    "session_split": "promptrec.data.splits",
    "Context": "promptrec.context",
    # index
    "ItemIndex": "promptrec.index.item_index",
    # retriever
    "TimeAwareRetriever": "promptrec.retriever.retriever",
    "Candidate": "promptrec.data.candidate",
    "RetrieverSettings": "promptrec.retriever.fitting",
    "fit_retriever": "promptrec.retriever.fitting",
    # prompt
    "PromptBuilder": "promptrec.prompt.builder",
    # reranker
    "Reranker": "promptrec.reranker.reranker",
    "rerank": "promptrec.reranker.reranker",
    "RerankRequest": "promptrec.reranker.types",
    "RankedList": "promptrec.reranker.types",
    # eval
    "evaluate": "promptrec.eval.api",
    "load_config": "promptrec.eval.config",
    "EvalConfig": "promptrec.eval.config",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS) + ["__version__"]
