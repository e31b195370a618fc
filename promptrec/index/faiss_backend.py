"""FAISS index construction: exact (flat), HNSW and IVF-PQ, on GPU when one is available.

Vectors are L2-normalised, so inner product is cosine similarity. Every index is wrapped
in an ID map, so searches return promptrec's stable integer ids, not row numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("promptrec.index")
INDEX_TYPES = ("auto", "flat", "hnsw", "ivfpq")
FLAT_MAX = 20_000  # 'auto' uses exact search up to this many items
HNSW_MAX = 2_000_000  # ... HNSW up to this many, IVF-PQ beyond


def faiss_module():
    try:
        import faiss
    except ImportError:
        raise RuntimeError("FAISS is not installed: pip install 'promptrec[cpu]' (faiss-cpu) "
                           "or 'promptrec[gpu]' (faiss-gpu).") from None
    return faiss


@dataclass
class IndexSpec:
    """Which FAISS index to build, with its parameters (recorded in the manifest)."""

    index_type: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)

    def resolved(self, n_items: int, dimension: int) -> "IndexSpec":
        kind = self.index_type
        if kind not in INDEX_TYPES:
            raise ValueError(f"unknown index type {kind!r}; choose one of {INDEX_TYPES}.")
        if kind == "auto":
            kind = "flat" if n_items <= FLAT_MAX else "hnsw" if n_items <= HNSW_MAX else "ivfpq"
        defaults: dict[str, Any] = {}
        if kind == "hnsw":
            defaults = {"M": 32, "ef_construction": 80, "ef_search": 64}
        elif kind == "ivfpq":
            nlist = int(max(16, min(65536, 4 * np.sqrt(max(n_items, 1)))))
            m = next(m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dimension % m == 0)
            # refine: fetch refine * k candidates by PQ codes, then re-rank them exactly with the stored vectors
            defaults = {"nlist": nlist, "m": m, "nbits": 8, "nprobe": 16, "refine": 8}
        return IndexSpec(kind, {**defaults, **self.params})


def gpu_count() -> int:
    faiss = faiss_module()
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


_announced = False


def announce_device() -> bool:
    """Say once where FAISS runs; returns True when a GPU will be used."""
    global _announced
    gpus = gpu_count()
    if not _announced:
        log.info("faiss: %s", f"using {gpus} GPU(s)" if gpus else "no GPU found (faiss-cpu or no device), using the CPU")
        _announced = True
    return gpus > 0


def new_index(spec: IndexSpec, dimension: int, train_vectors: np.ndarray | None = None):
    """An empty, trained, ID-mapped index for ``spec`` (already resolved)."""
    faiss = faiss_module()
    p = spec.params
    if spec.index_type == "flat":
        base = faiss.IndexFlatIP(dimension)
    elif spec.index_type == "hnsw":
        base = faiss.IndexHNSWFlat(dimension, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = int(p["ef_construction"])
        base.hnsw.efSearch = int(p["ef_search"])
    elif spec.index_type == "ivfpq":
        quantizer = faiss.IndexFlatIP(dimension)
        base = faiss.IndexIVFPQ(quantizer, dimension, int(p["nlist"]), int(p["m"]), int(p["nbits"]),
                                faiss.METRIC_INNER_PRODUCT)
        base.nprobe = int(p["nprobe"])
        if train_vectors is None or len(train_vectors) < int(p["nlist"]):
            raise ValueError(f"IVF-PQ needs at least nlist={p['nlist']} vectors to train; use 'flat' or 'hnsw' "
                             "for small catalogues.")
        base.train(np.ascontiguousarray(train_vectors, dtype=np.float32))
    else:
        raise ValueError(f"cannot build index type {spec.index_type!r}")
    return faiss.IndexIDMap2(base)


def supports_remove(spec: IndexSpec) -> bool:
    return spec.index_type in ("flat", "ivfpq")  # HNSW graphs cannot drop nodes: removed ids are masked


def to_search_device(index, spec: IndexSpec):
    """A GPU copy of the index for searching where a GPU exists and FAISS supports the type."""
    if spec.index_type == "hnsw" or not announce_device():
        return index
    faiss = faiss_module()
    return faiss.index_cpu_to_all_gpus(index)


def set_search_params(index, spec: IndexSpec) -> None:
    """Apply query-time parameters (efSearch, nprobe) from the spec to a loaded index."""
    faiss = faiss_module()
    base = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if spec.index_type == "hnsw":
        base.hnsw.efSearch = int(spec.params["ef_search"])
    elif spec.index_type == "ivfpq":
        base.nprobe = int(spec.params["nprobe"])
