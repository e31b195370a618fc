"""Embedding backends (torch, ONNX Runtime, bf16) give the same neighbours; a build stopped part way resumes.

Real model (all-MiniLM-L6-v2 from its PyPI package), real ONNX export and FAISS; nothing mocked."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from promptrec.index.embedder import Embedder, onnx_available
from promptrec.index.item_index import PARTIAL, ItemIndex
from promptrec.index.item_text import ItemTextRenderer

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime / onnx not installed")


def neighbours(v: np.ndarray, k: int = 10) -> np.ndarray:
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def recall(ref: np.ndarray, v: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(neighbours(ref, k), neighbours(v, k))]))


@pytest.fixture(scope="module")
def texts(demo):
    return list(ItemTextRenderer().render_catalog(demo.dataset.catalog).values())


@pytest.fixture(scope="module")
def torch_vectors(texts):
    return Embedder(backend="torch").encode(texts)


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory):
    """An ONNX export made in an empty promptrec home with the model hub switched off: (home, its embedder)."""
    if not onnx_available():
        pytest.skip("onnxruntime / onnx not installed")
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("PROMPTREC_HOME", "HF_HUB_OFFLINE")}
    os.environ.update(PROMPTREC_HOME=str(home), HF_HUB_OFFLINE="1")
    try:
        yield home, Embedder(backend="onnx")
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def onnx_embedder(onnx_home):
    return onnx_home[1]


@needs_onnx
def test_onnx_vectors_equal_torch(onnx_embedder, texts, torch_vectors):
    v = onnx_embedder.encode(texts)
    assert v.dtype == np.float32 and v.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert (v * torch_vectors).sum(1).min() > 0.99999
    assert recall(torch_vectors, v) >= 0.99
    one = onnx_embedder.encode([texts[3]])  # a batch of one: no padding, same vector
    assert float(one[0] @ torch_vectors[3]) > 0.99999


def test_auto_is_float32_torch_the_vectors_of_the_committed_results():
    assert Embedder().backend == "torch"


@needs_onnx
def test_onnx_export_is_local_and_cached(onnx_home, monkeypatch, texts, torch_vectors):
    home, emb = onnx_home
    monkeypatch.setenv("PROMPTREC_HOME", str(home))
    assert emb.backend == "onnx"
    files = list((home / "models" / "onnx").glob("*/model.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = Embedder(backend="onnx", threads=1)  # the cached export, not a new one
    assert files[0].stat().st_mtime_ns == stamp
    assert (again.encode(texts[:50]) * torch_vectors[:50]).sum(1).min() > 0.99999


def test_torch_backend_and_unknown_backend(texts, torch_vectors):
    emb = Embedder(backend="torch", threads=1)
    assert emb.backend == "torch"
    assert np.allclose(emb.encode(texts[:20]), torch_vectors[:20], atol=1e-5)
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(backend="tpu")
    out = CliRunner().invoke(__import__("promptrec.cli.main", fromlist=["app"]).app,
                             ["index", "build", "--backend", "tpu"])
    assert out.exit_code == 1 and "unknown embedding backend" in out.output


def test_bf16_backend_keeps_neighbours(texts, torch_vectors):
    v = Embedder(backend="bf16").encode(texts)
    assert (v * torch_vectors).sum(1).min() > 0.9999
    assert recall(torch_vectors, v) >= 0.97  # 330 demo items; 0.993 / 0.994 on the benchmark's larger sets


class Stop(Exception):
    pass


def test_stopped_build_resumes_and_equals_a_one_shot_build(demo, tmp_path):
    catalog = demo.dataset.catalog
    emb = Embedder()  # the default backend
    n = len(catalog)
    chunk = 100  # 330 demo items: 4 chunks

    def stop_after_first(done, total):
        raise Stop(f"stopped at {done}/{total}")

    with pytest.raises(Stop, match=f"stopped at {chunk}/{n}"):
        ItemIndex.build(catalog, "demo", root=tmp_path, embedder=emb, chunk_size=chunk, on_chunk=stop_after_first)
    partial = tmp_path / "demo" / PARTIAL
    assert sorted(p.name for p in partial.glob("chunk-*.npy")) == ["chunk-00000.npy"]
    assert json.loads((partial / "manifest.json").read_text())["items"] == n

    progress = []
    resumed = ItemIndex.build(catalog, "demo", root=tmp_path, embedder=emb, chunk_size=chunk,
                              on_chunk=lambda done, total: progress.append((done, total)))
    assert progress == [(chunk, n), (2 * chunk, n), (n - chunk, n)]  # the first chunk was not embedded again
    assert not partial.exists()  # the saved index replaced the folder, chunks and all

    # an uninterrupted build of the same chunks: the same vectors (bf16 rounds differently when a batch is padded
    # to another length, so a build in other batches is compared by cosine)
    one_shot = ItemIndex.build(catalog, "demo", root=tmp_path / "one", embedder=emb, chunk_size=chunk)
    assert list(resumed.item_ids) == list(one_shot.item_ids)
    assert np.allclose(resumed.vectors(), one_shot.vectors(), atol=1e-6)
    whole = ItemIndex.build(catalog, "demo", root=tmp_path / "whole", embedder=emb, save=False)
    assert (resumed.vectors() * whole.vectors()).sum(1).min() > 0.9999
    loaded = ItemIndex.load("demo", root=tmp_path)
    for item in list(one_shot.item_ids)[:20]:
        assert [h.item_id for h in loaded.similar(item, 5)] == [h.item_id for h in one_shot.similar(item, 5)]


def test_chunks_of_other_items_are_not_reused(demo, tmp_path):
    catalog = demo.dataset.catalog
    emb = Embedder(backend="onnx" if onnx_available() else "torch")
    partial = tmp_path / "demo" / PARTIAL
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text(json.dumps({"items": len(catalog), "texts_sha256": "other"}))
    np.save(partial / "chunk-00000.npy", np.zeros((200, 384), np.float32))
    progress = []
    index = ItemIndex.build(catalog, "demo", root=tmp_path, embedder=emb, chunk_size=200,
                            on_chunk=lambda done, total: progress.append(done))
    assert progress == [200, len(catalog)]
    assert np.allclose(np.linalg.norm(index.vectors(), axis=1), 1, atol=1e-5)
