"""promptrec: time-aware recommendation with large language models.

The data flows item -> index -> retriever -> prompt -> reranker -> eval; each stage is a
subpackage. Heavy parts (FAISS, sentence-transformers, vLLM) are imported only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
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
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'promptrec' has no attribute {name!r}")


__all__ = sorted(_EXPORTS) + ["__version__"]
