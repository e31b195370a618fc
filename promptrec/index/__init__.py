"""Item text -> sentence-transformers embeddings -> FAISS, persisted under indexes/."""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "ItemIndex": "promptrec.index.item_index", "ItemIndexError": "promptrec.index.item_index",
    "SearchHit": "promptrec.index.item_index", "Embedder": "promptrec.index.embedder",
    "ItemTextRenderer": "promptrec.index.item_text",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
