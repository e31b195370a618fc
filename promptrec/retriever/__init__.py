"""The time-aware retriever: signals scored in a context (time, device, place), blended and tuned on held-out time.

    from promptrec.retriever import fit_retriever
    retriever = fit_retriever(dataset)          # the one fit path, with the library's defaults
"""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "TimeAwareRetriever": "promptrec.retriever.retriever", "DEFAULT_SIGNALS": "promptrec.retriever.choice",
    "fit_retriever": "promptrec.retriever.fitting", "fit_on_split": "promptrec.retriever.fitting",
    "RetrieverSettings": "promptrec.retriever.fitting",
    "Candidate": "promptrec.data.candidate",
    "Signal": "promptrec.retriever.signals", "Query": "promptrec.retriever.signals",
    "SIGNALS": "promptrec.retriever.signals",
    "PoolConfig": "promptrec.retriever.pool", "RankerConfig": "promptrec.retriever.learned",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
