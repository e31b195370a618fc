"""ItemIndex: build, persist, load, update and search an embedding index of the catalogue.

``indexes/<name>/`` holds ``index.faiss``, ``items.parquet`` (item id, FAISS id, text
hash), ``vectors.npy`` (the embeddings, so updates and rebuilds never re-embed unchanged
items) and ``manifest.json`` (model, dimension, metric, index type and parameters, item
count, item-template hash, times, versions, file checksums). Saving writes a temporary
folder and renames it into place, so a failed build leaves the previous index intact.

Large builds embed in chunks (``chunk_size`` items): each chunk's vectors go to
``indexes/<name>/.partial/chunk-NNNNN.npy`` as soon as they are computed, beside a
``manifest.json`` that names the model, backend and the hash of the texts to embed. A build
that was stopped (killed, out of time) resumes from the chunks already written when it is run
again on the same items; the folder goes away with the first successful save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from promptrec import __version__
from promptrec.data.catalog import Catalog
from promptrec.index.chunks import CHUNK_SIZE, PARTIAL, embed_in_chunks
from promptrec.index.embedder import DEFAULT_MODEL, Embedder
from promptrec.index.faiss_backend import (IndexSpec, faiss_module, new_index, set_search_params, supports_remove,
                                           to_search_device)
from promptrec.index.item_text import DEFAULT_ITEM_TEMPLATE, ItemTextRenderer, text_hash

FORMAT_VERSION = 1
FILES = ("index.faiss", "items.parquet", "vectors.npy")
COMPACT_AT = 0.25  # rebuild an HNSW graph when this share of its nodes is masked
log = logging.getLogger("promptrec.index")


class ItemIndexError(RuntimeError):
    """An index that cannot be used as asked: missing, corrupt, or built with another model."""


@dataclass(frozen=True)
class SearchHit:
    item_id: str
    score: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ItemIndex:
    """Embeddings of catalogue items in a FAISS index, addressed by item id."""

    def __init__(self, path: Path, manifest: dict[str, Any], table: pd.DataFrame, vectors: np.ndarray, index,
                 embedder: Embedder | None = None):
        self.path = path
        self.manifest = manifest
        self.spec = IndexSpec(manifest["index_type"], manifest["index_params"])
        self._table = table.reset_index(drop=True)  # item_id, fid, text_hash, title; row i <-> vectors[i]
        self._vectors = vectors
        self._index = index
        self._masked: set[int] = set(manifest.get("masked_ids", []))
        self._embedder = embedder
        self._renderer: ItemTextRenderer | None = None
        self._reindex()

    # -- construction ------------------------------------------------------------
    @classmethod
    def build(cls, catalog: Catalog, name: str = "default", *, root: str | Path = "indexes",
              embedder: Embedder | None = None, index_type: str = "auto", params: dict[str, Any] | None = None,
              template: str = DEFAULT_ITEM_TEMPLATE, prompts_dir: str | Path | None = None,
              save: bool = True, chunk_size: int = CHUNK_SIZE,
              on_chunk: Callable[[int, int], None] | None = None) -> "ItemIndex":
        """Embed every item's text and index it; vectors of an existing index with the same model are reused.

        Items are embedded ``chunk_size`` at a time; with ``save`` each chunk is written under the index folder
        at once, so a build stopped part way resumes where it stopped. ``on_chunk(done, total)`` is called
        after each chunk (items embedded so far in this build, items to embed)."""
        embedder = embedder or Embedder()
        renderer = ItemTextRenderer(template, prompts_dir)
        texts = renderer.render_catalog(catalog)
        ids = list(texts)
        hashes = [text_hash(texts[i]) for i in ids]
        vectors = _reuse_or_embed(Path(root) / name, embedder, ids, hashes, [texts[i] for i in ids],
                                  chunk_size=chunk_size, on_chunk=on_chunk, persist=save)
        spec = IndexSpec(index_type, params or {}).resolved(len(ids), embedder.dimension)
        index = new_index(spec, embedder.dimension, vectors)
        fids = np.arange(len(ids), dtype=np.int64)
        index.add_with_ids(vectors, fids)
        manifest = {
            "format_version": FORMAT_VERSION, "name": name, "embedding_model": embedder.name,
            "embedding_backend": getattr(embedder, "backend", None),
            "dimension": embedder.dimension, "metric": "inner_product", "normalized": True,
            "index_type": spec.index_type, "index_params": spec.params, "item_count": len(ids),
            "item_template": renderer.template, "item_template_hash": renderer.template_hash,
            "built_at": _now(), "updated_at": _now(), "promptrec_version": __version__,
            "faiss_version": faiss_module().__version__, "masked_ids": [], "next_id": len(ids),
        }
        table = pd.DataFrame({"item_id": ids, "fid": fids, "text_hash": hashes,
                              "title": catalog.frame.loc[ids, "title"].to_numpy()})
        out = cls(Path(root) / name, manifest, table, vectors, index, embedder)
        out._renderer = renderer
        if save:
            out.save()
        return out

    @classmethod
    def load(cls, name_or_path: str | Path, *, root: str | Path = "indexes", embedder: Embedder | None = None) -> "ItemIndex":
        """Load and verify an index; a different embedder, a missing or a corrupt file is an error."""
        path = Path(name_or_path)
        if not (path / "manifest.json").exists():
            path = Path(root) / str(name_or_path)
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise ItemIndexError(f"no index at {path} (manifest.json missing); build it with `promptrec index build`.")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise ItemIndexError(f"{manifest_path} is corrupt ({exc}); rebuild the index.") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ItemIndexError(f"{path} has index format {manifest.get('format_version')}, this promptrec reads "
                              f"{FORMAT_VERSION}; rebuild the index.")
        for fname in FILES:
            f = path / fname
            if not f.exists():
                raise ItemIndexError(f"{f} is missing; rebuild the index with `promptrec index build`.")
            if _sha256(f) != manifest["checksums"][fname]:
                raise ItemIndexError(f"{f} is corrupt (checksum differs from the manifest); rebuild the index.")
        if embedder is not None and (embedder.name != manifest["embedding_model"] or
                                     embedder.dimension != manifest["dimension"]):
            raise ItemIndexError(
                f"index {path} was built with '{manifest['embedding_model']}' ({manifest['dimension']}-d), not "
                f"'{embedder.name}' ({embedder.dimension}-d); load it with that model or rebuild it.")
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path / "index.faiss"))
        except RuntimeError as exc:
            raise ItemIndexError(f"{path / 'index.faiss'} cannot be read by FAISS ({exc}); rebuild the index.") from None
        table = pd.read_parquet(path / "items.parquet")
        vectors = np.load(path / "vectors.npy")
        if vectors.shape != (len(table), manifest["dimension"]) or len(table) != manifest["item_count"]:
            raise ItemIndexError(f"{path}: vectors {vectors.shape}, {len(table)} ids and the manifest's "
                              f"{manifest['item_count']} items disagree; rebuild the index.")
        out = cls(path, manifest, table, vectors, index, embedder)
        set_search_params(out._index, out.spec)
        return out

    @classmethod
    def for_catalog(cls, catalog: Catalog, name: str, *, root: str | Path = "indexes") -> "ItemIndex":
        """``indexes/<name>`` brought up to date with ``catalog`` (new or changed items embedded, nothing else);
        built from scratch when it does not exist. Items the catalogue no longer has are kept."""
        if not (Path(root) / name / "manifest.json").exists():
            return cls.build(catalog, name, root=root)
        index = cls.load(name, root=root)
        changes = index.add(catalog, save=False)
        if changes["added"] or changes["updated"]:
            index.save()
        return index

    def save(self, path: str | Path | None = None) -> Path:
        """Write the index atomically (temporary folder, then rename)."""
        target = Path(path) if path else self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            faiss_module().write_index(self._index, str(tmp / "index.faiss"))
            self._table.to_parquet(tmp / "items.parquet", index=False)
            np.save(tmp / "vectors.npy", self._vectors)
            self.manifest.update(item_count=len(self._table), masked_ids=sorted(self._masked),
                                 checksums={f: _sha256(tmp / f) for f in FILES})
            (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
            old = target.with_name(f".{target.name}.old")
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = target
        return target

    # -- updates -------------------------------------------------------------------
    def add(self, catalog: Catalog | Iterable, *, save: bool = True) -> dict[str, int]:
        """Add new items and re-embed changed ones (by text hash); unchanged items are skipped."""
        catalog = catalog if isinstance(catalog, Catalog) else Catalog.from_items(catalog)
        texts = self.renderer.render_catalog(catalog)
        hashes = {i: text_hash(t) for i, t in texts.items()}
        known = dict(zip(self._table["item_id"], self._table["text_hash"]))
        new = [i for i in texts if i not in known]
        changed = [i for i in texts if i in known and known[i] != hashes[i]]
        if changed:
            self._drop(changed)
        todo = new + changed
        if todo:
            vectors = self.embedder.encode([texts[i] for i in todo])
            fids = np.arange(self.manifest["next_id"], self.manifest["next_id"] + len(todo), dtype=np.int64)
            self.manifest["next_id"] += len(todo)
            self._index.add_with_ids(vectors, fids)
            added = pd.DataFrame({"item_id": todo, "fid": fids, "text_hash": [hashes[i] for i in todo],
                                  "title": catalog.frame.loc[todo, "title"].to_numpy()})
            self._table = pd.concat([self._table, added], ignore_index=True)
            self._vectors = np.concatenate([self._vectors, vectors])
        self._changed(save)
        return {"added": len(new), "updated": len(changed), "unchanged": len(texts) - len(todo)}

    def remove(self, item_ids: Sequence[str], *, save: bool = True) -> int:
        missing = [i for i in item_ids if i not in self._row_of]
        if missing:
            raise KeyError(f"items {missing[:5]} are not in index '{self.name}'")
        self._drop(list(item_ids))
        self._changed(save)
        return len(item_ids)

    def _drop(self, item_ids: list[str]) -> None:
        rows = np.array([self._row_of[i] for i in item_ids])
        fids = self._table["fid"].to_numpy()[rows]
        if supports_remove(self.spec):
            self._index.remove_ids(np.asarray(fids, dtype=np.int64))
        else:
            self._masked.update(int(f) for f in fids)
        keep = np.ones(len(self._table), bool)
        keep[rows] = False
        self._table = self._table.loc[keep].reset_index(drop=True)
        self._vectors = self._vectors[keep]
        self._reindex()

    def _changed(self, save: bool) -> None:
        if self._masked and len(self._masked) > COMPACT_AT * self._index.ntotal:
            self._compact()
        self.manifest["updated_at"] = _now()
        self.manifest["item_count"] = len(self._table)
        self._reindex()
        if save:
            self.save()

    def _compact(self) -> None:
        """Rebuild the FAISS index from the stored vectors (drops masked HNSW nodes)."""
        index = new_index(self.spec, self.dimension, self._vectors)
        index.add_with_ids(self._vectors, self._table["fid"].to_numpy(dtype=np.int64))
        self._index, self._masked = index, set()

    def _reindex(self) -> None:
        self._row_of = {item_id: r for r, item_id in enumerate(self._table["item_id"])}
        fids = self._table["fid"].to_numpy()
        self._fid_index = pd.Index(fids)
        self._item_ids = self._table["item_id"].to_numpy()
        self._search_index = to_search_device(self._index, self.spec)

    # -- access --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    @property
    def item_ids(self) -> np.ndarray:
        return self._item_ids

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.manifest["embedding_model"])
        return self._embedder

    @property
    def renderer(self) -> ItemTextRenderer:
        if self._renderer is None:
            self._renderer = ItemTextRenderer(self.manifest["item_template"])
        return self._renderer

    def title(self, item_id: str) -> str:
        return str(self._table["title"].iat[self._row_of[item_id]])

    def vectors(self, item_ids: Sequence[str] | None = None) -> np.ndarray:
        """Stored embeddings of the given items (all items, in ``item_ids`` order, by default). When they are all
        the items in the index's own order, a read-only view of the stored array, not a copy."""
        if item_ids is None:
            return self._vectors
        try:
            rows = np.fromiter((self._row_of[i] for i in item_ids), dtype=np.int64, count=len(item_ids))
            if len(rows) == len(self._vectors) and (rows == np.arange(len(rows))).all():
                shared = self._vectors.view()  # every item in the index's order: the stored array, read-only
                shared.flags.writeable = False
                return shared
            return self._vectors[rows]
        except KeyError as exc:
            raise KeyError(f"item {exc.args[0]!r} is not in index '{self.name}'") from None

    # -- search --------------------------------------------------------------------
    def search(self, query: str | Sequence[str] | np.ndarray, k: int = 10) -> list[SearchHit] | list[list[SearchHit]]:
        """Top-k items for a text or a vector (a list of hits), or for many (a list of lists)."""
        single = isinstance(query, str) or (isinstance(query, np.ndarray) and query.ndim == 1)
        if isinstance(query, str):
            vectors = self.embedder.encode([query])
        elif isinstance(query, np.ndarray):
            vectors = query.reshape(1, -1) if query.ndim == 1 else query
        else:
            vectors = self.embedder.encode(list(query))
        ids, scores = self.search_vectors(vectors, k)
        hits = [[SearchHit(i, float(s)) for i, s in zip(r_ids, r_sc) if i is not None] for r_ids, r_sc in zip(ids, scores)]
        return hits[0] if single else hits

    def search_vectors(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch search: (n, k) arrays of item ids (None where fewer exist) and scores."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"query vectors must have shape (n, {self.dimension}); got {vectors.shape}.")
        refine = int(self.spec.params.get("refine", 0))
        fetch = min(k * max(refine, 1) + len(self._masked), max(self._index.ntotal, 1))
        scores, fids = self._search_index.search(vectors, fetch)
        rows = self._fid_index.get_indexer(fids.ravel()).reshape(fids.shape)  # -1: empty slot or masked
        if self._masked:
            rows[np.isin(fids, list(self._masked))] = -1
        if refine:  # exact inner products for the approximate candidates, best first
            exact = np.einsum("qd,qkd->qk", vectors, self._vectors[np.maximum(rows, 0)])
            scores = np.where(rows >= 0, exact, -np.inf).astype(np.float32)
            order = np.argsort(-scores, axis=1, kind="stable")
            rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
        out_ids = np.full((len(vectors), k), None, dtype=object)
        out_scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        for q in range(len(vectors)):
            valid = rows[q] >= 0
            r, s = rows[q][valid][:k], scores[q][valid][:k]
            out_ids[q, :len(r)] = self._item_ids[r]
            out_scores[q, :len(r)] = s
        return out_ids, out_scores

    def similar(self, item_id: str, k: int = 10) -> list[SearchHit]:
        """The k items most similar to ``item_id`` (itself excluded)."""
        hits = self.search(self.vectors([item_id])[0], k + 1)
        return [h for h in hits if h.item_id != item_id][:k]

    def info(self) -> dict[str, Any]:
        keys = ("name", "embedding_model", "embedding_backend", "dimension", "metric", "index_type", "index_params", "item_count",
                "item_template", "item_template_hash", "built_at", "updated_at", "promptrec_version", "faiss_version")
        return {"path": str(self.path), **{k: self.manifest.get(k) for k in keys}, "masked_ids": len(self._masked)}


def _reuse_or_embed(path: Path, embedder: Embedder, ids: list[str], hashes: list[str], texts: list[str], *,
                    chunk_size: int = CHUNK_SIZE, on_chunk: Callable[[int, int], None] | None = None,
                    persist: bool = True) -> np.ndarray:
    """Embeddings for ``texts``, taking unchanged ones from an existing index built with the same model and the
    rest in chunks (saved under ``path/.partial`` when ``persist``, and taken from there when resuming)."""
    vectors = np.zeros((len(ids), embedder.dimension), dtype=np.float32)
    todo = list(range(len(ids)))
    try:
        old = ItemIndex.load(path, embedder=embedder)
        old_hash = dict(zip(old._table["item_id"], old._table["text_hash"]))
        reuse = [r for r, (i, h) in enumerate(zip(ids, hashes)) if old_hash.get(i) == h]
        if reuse:
            vectors[reuse] = old.vectors([ids[r] for r in reuse])
            todo = sorted(set(todo) - set(reuse))
    except ItemIndexError:
        pass
    if not todo:
        return vectors
    vectors[todo] = embed_in_chunks(embedder, [texts[r] for r in todo], [hashes[r] for r in todo], path / PARTIAL,
                                    chunk_size=chunk_size, on_chunk=on_chunk, persist=persist)
    return vectors
