"""Embedding a large build in chunks, each saved as soon as it is computed, so a stopped build resumes.

``<index folder>/.partial/`` holds ``chunk-NNNNN.npy`` and a ``manifest.json`` naming the model, backend,
chunking and the hash of the texts to embed; chunks of another build (other items, model or chunking) are
discarded, never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from promptrec.index.embedder import Embedder

CHUNK_SIZE = 20_000  # items embedded between two saved chunks of a build (resumable)
PARTIAL = ".partial"
log = logging.getLogger("promptrec.index")


def embed_in_chunks(embedder: Embedder, texts: list[str], hashes: list[str], folder: Path, *,
                    chunk_size: int = CHUNK_SIZE, on_chunk: Callable[[int, int], None] | None = None,
                    persist: bool = True) -> np.ndarray:
    """Vectors of ``texts`` (``hashes``: their text hashes), ``chunk_size`` at a time; with ``persist`` and more
    than one chunk, each chunk is saved under ``folder`` and taken from there when a build resumes.
    ``on_chunk(done, total)`` is called after each chunk embedded now."""
    chunk_size = max(1, int(chunk_size))
    chunks = [list(range(i, min(i + chunk_size, len(texts)))) for i in range(0, len(texts), chunk_size)]
    partial = PartialBuild(folder, embedder, hashes, chunk_size) if persist and len(chunks) > 1 else None
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    done = 0
    for n, rows in enumerate(chunks):
        saved = partial.load(n, len(rows)) if partial else None
        if saved is None:
            saved = embedder.encode([texts[r] for r in rows], progress=len(rows) > 256)
            if partial:
                partial.save(n, saved)
            done += len(rows)
            if on_chunk is not None:
                on_chunk(done, len(texts))
        vectors[rows] = saved
    return vectors


class PartialBuild:
    """The chunks of a build in progress: ``chunk-NNNNN.npy`` and a manifest of what they embed."""

    def __init__(self, folder: Path, embedder: Embedder, hashes: list[str], chunk_size: int):
        self.folder = folder
        digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
        self.key = {"embedding_model": embedder.name, "embedding_backend": getattr(embedder, "backend", None),
                    "dimension": embedder.dimension, "chunk_size": chunk_size, "items": len(hashes),
                    "texts_sha256": digest}
        manifest = folder / "manifest.json"
        try:
            same = json.loads(manifest.read_text()) == self.key
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:  # another build's chunks (other items, model or chunking): start afresh
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            manifest.write_text(json.dumps(self.key, indent=2))
        else:
            log.info("resuming the build from %d saved chunk(s) in %s", len(list(folder.glob("chunk-*.npy"))), folder)

    def _file(self, n: int) -> Path:
        return self.folder / f"chunk-{n:05d}.npy"

    def load(self, n: int, rows: int) -> np.ndarray | None:
        try:
            v = np.load(self._file(n))
        except (OSError, ValueError):
            return None
        return v if v.shape == (rows, self.key["dimension"]) and v.dtype == np.float32 else None

    def save(self, n: int, vectors: np.ndarray) -> None:
        tmp = self.folder / f".chunk-{n:05d}.{os.getpid()}.npy"
        np.save(tmp, vectors)
        os.replace(tmp, self._file(n))
