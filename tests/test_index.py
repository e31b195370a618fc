"""ItemIndex on real sentence-transformers embeddings and real FAISS indexes."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from promptrec.data.catalog import Catalog
from promptrec.data.records import Item
from promptrec.index import faiss_backend
from promptrec.index.embedder import Embedder
from promptrec.index.item_index import ItemIndex, ItemIndexError


class CountingEmbedder(Embedder):
    """The real default embedder, counting the texts it embeds."""

    def __init__(self):
        super().__init__()
        self.embedded = 0

    def encode(self, texts, **kw):
        self.embedded += len(texts)
        return super().encode(texts, **kw)


@pytest.fixture(scope="module")
def embedder():
    return CountingEmbedder()


@pytest.fixture
def catalog(demo):
    return demo.dataset.catalog


@pytest.fixture
def built(tmp_path, catalog, embedder):
    return ItemIndex.build(catalog, "demo", root=tmp_path, embedder=embedder)


def test_build_search_and_manifest(built, catalog, tmp_path):
    assert len(built) == len(catalog)
    m = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert m["embedding_model"] == "all-MiniLM-L6-v2" and m["dimension"] == 384
    assert m["index_type"] == "flat" and m["item_count"] == len(catalog) and m["metric"] == "inner_product"
    assert len(m["item_template_hash"]) == 16 and m["promptrec_version"] and m["built_at"]
    hits = built.search("step-by-step pasta recipe for dinner", k=5)
    assert [catalog[h.item_id].categories[0] for h in hits].count("Cooking") >= 4
    assert all(isinstance(h.item_id, str) for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_batch_search_matches_single_queries(built):
    queries = ["jazz piano live", "cartoon for toddlers", "stock market news"]
    many = built.search(queries, k=5)
    assert [[h.item_id for h in hs] for hs in many] == [[h.item_id for h in built.search(q, k=5)] for q in queries]
    ids, scores = built.search_vectors(built.vectors(["NEW0001", "MUS5001"]), 3)
    assert ids.shape == (2, 3) and ids[0, 0] == "NEW0001" and scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_similar_excludes_itself_and_stays_in_category(built, catalog):
    item = next(i for i in catalog if i.categories == ("Kids",))
    hits = built.similar(item.item_id, k=10)
    assert item.item_id not in [h.item_id for h in hits] and len(hits) == 10
    assert [catalog[h.item_id].categories[0] for h in hits].count("Kids") >= 8


def test_save_load_roundtrip(built, tmp_path, embedder):
    loaded = ItemIndex.load("demo", root=tmp_path, embedder=embedder)
    assert loaded.info()["item_count"] == len(built)
    q = built.vectors(["TEC2001"]) if "TEC2001" in built else built.vectors()[:1]
    assert np.array_equal(loaded.search_vectors(q, 10)[0], built.search_vectors(q, 10)[0])


def test_unchanged_items_are_not_embedded_again(tmp_path, catalog, embedder):
    ItemIndex.build(catalog, "x", root=tmp_path, embedder=embedder)
    before = embedder.embedded
    ItemIndex.build(catalog, "x", root=tmp_path, embedder=embedder)
    assert embedder.embedded == before
    frame = catalog.frame.copy()
    frame.iloc[0, frame.columns.get_loc("title")] = "A completely new title"
    ItemIndex.build(Catalog(frame), "x", root=tmp_path, embedder=embedder)
    assert embedder.embedded == before + 1


def test_model_mismatch_is_an_error(built, tmp_path, embedder):
    path = tmp_path / "demo" / "manifest.json"
    m = json.loads(path.read_text())
    m["embedding_model"], m["dimension"] = "intfloat/e5-large-v2", 1024
    path.write_text(json.dumps(m))
    with pytest.raises(ItemIndexError, match="built with 'intfloat/e5-large-v2' \\(1024-d\\)"):
        ItemIndex.load("demo", root=tmp_path, embedder=embedder)


@pytest.mark.parametrize("fname", ["index.faiss", "items.parquet", "vectors.npy"])
def test_corrupt_or_missing_file_is_an_error(built, tmp_path, fname):
    f = tmp_path / "demo" / fname
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ItemIndexError, match="corrupt"):
        ItemIndex.load("demo", root=tmp_path)
    f.unlink()
    with pytest.raises(ItemIndexError, match="missing"):
        ItemIndex.load("demo", root=tmp_path)


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(ItemIndexError, match="promptrec index build"):
        ItemIndex.load("nothing", root=tmp_path)


def test_failed_build_leaves_previous_index_intact(built, tmp_path, catalog, embedder):
    with pytest.raises(ValueError, match="IVF-PQ needs at least"):
        ItemIndex.build(catalog, "demo", root=tmp_path, embedder=embedder, index_type="ivfpq",
                        params={"nlist": 10_000})
    again = ItemIndex.load("demo", root=tmp_path)
    assert len(again) == len(catalog)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _new_item(item_id, title, description, cat):
    return Item(item_id, title, description, (cat,), {}, pd.Timestamp("2024-05-01", tz="UTC"))


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_add_update_remove_keep_ids_consistent(tmp_path, catalog, embedder, index_type):
    index = ItemIndex.build(catalog, "u", root=tmp_path, embedder=embedder, index_type=index_type)
    n = len(index)
    stats = index.add([_new_item("NEWX", "Volcano Lava Cake", "A chocolate dessert recipe with molten centre.",
                                 "Cooking")])
    assert stats == {"added": 1, "updated": 0, "unchanged": 0}
    assert index.search("molten chocolate dessert", k=1)[0].item_id == "NEWX"
    # update: same id, new text -> re-embedded and found by the new text
    stats = index.add([_new_item("NEWX", "Glacier Hike", "A travel documentary across Icelandic ice fields.",
                                 "Travel")])
    assert stats == {"added": 0, "updated": 1, "unchanged": 0}
    assert index.search("hiking on glaciers in Iceland", k=1)[0].item_id == "NEWX"
    assert index.search("molten chocolate dessert", k=3)[0].item_id != "NEWX"
    # remove: never returned again, even for its own vector
    vec = index.vectors(["NEWX"])
    index.remove(["NEWX"])
    assert "NEWX" not in index and len(index) == n
    assert "NEWX" not in [h.item_id for h in index.search(vec[0], k=20)]
    with pytest.raises(KeyError):
        index.remove(["NEWX"])
    # persisted consistently
    loaded = ItemIndex.load("u", root=tmp_path)
    assert len(loaded) == n and loaded.manifest["item_count"] == n
    assert "NEWX" not in [h.item_id for h in loaded.search(vec[0], k=20)]


def test_hnsw_compacts_after_many_removals(tmp_path, catalog, embedder):
    index = ItemIndex.build(catalog, "h", root=tmp_path, embedder=embedder, index_type="hnsw")
    gone = list(index.item_ids[: len(index) // 3])
    index.remove(gone)
    assert index.info()["masked_ids"] == 0 and index._index.ntotal == len(index)
    hits = index.search(index.vectors()[:5], k=10)
    assert not {h.item_id for hs in hits for h in hs} & set(gone)


def test_ivfpq_index(tmp_path, catalog, embedder):
    index = ItemIndex.build(catalog, "q", root=tmp_path, embedder=embedder, index_type="ivfpq",
                            params={"nlist": 8, "m": 16, "nbits": 6, "nprobe": 8})
    assert index.manifest["index_type"] == "ivfpq"
    exact = ItemIndex.build(catalog, "e", root=tmp_path, embedder=embedder, index_type="flat")
    q = exact.vectors()[:50]
    a, _ = index.search_vectors(q, 10)
    b, _ = exact.search_vectors(q, 10)
    recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)])
    assert recall > 0.9  # PQ candidates re-ranked exactly (refine)
    assert index.manifest["index_params"]["refine"] == 8
    assert ItemIndex.load("q", root=tmp_path).search_vectors(q, 10)[0].tolist() == a.tolist()


def test_auto_index_type_by_size():
    spec = faiss_backend.IndexSpec("auto")
    assert spec.resolved(1_000, 384).index_type == "flat"
    assert spec.resolved(500_000, 384).index_type == "hnsw"
    big = spec.resolved(5_000_000, 384)
    assert big.index_type == "ivfpq" and 384 % big.params["m"] == 0
    with pytest.raises(ValueError, match="unknown index type"):
        faiss_backend.IndexSpec("annoy").resolved(10, 8)


def test_cpu_fallback_is_announced_once(caplog, monkeypatch):
    monkeypatch.setattr(faiss_backend, "_announced", False)
    with caplog.at_level(logging.INFO, logger="promptrec.index"):
        uses_gpu = faiss_backend.announce_device()
        faiss_backend.announce_device()
    msgs = [r.getMessage() for r in caplog.records if r.name == "promptrec.index"]
    if uses_gpu:
        assert msgs == [f"faiss: using {faiss_backend.gpu_count()} GPU(s)"]
    else:
        assert len(msgs) == 1 and "no GPU found" in msgs[0] and "CPU" in msgs[0]


@pytest.mark.ml100k
def test_movielens_similar_and_text_query(ml100k_path, tmp_path, embedder):
    from promptrec.data.loaders import load_dataset

    ds = load_dataset(ml100k_path, format="movielens-100k")
    index = ItemIndex.build(ds.catalog, "ml", root=tmp_path, embedder=embedder)
    toy = [ds.catalog[h.item_id].categories for h in index.similar("1", k=10)]
    assert sum(("Animation" in c) or ("Children's" in c) for c in toy) >= 7
    space = [ds.catalog[h.item_id].categories for h in index.search("space adventure with robots", k=10)]
    assert all("Sci-Fi" in c for c in space[:3]) and sum("Sci-Fi" in c for c in space) >= 5
