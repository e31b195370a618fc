"""LoRA fine-tuning: examples from the training split only, a tiny real training run, serving the
adapter through peft (transformers) and vLLM's LoRA support, and the base-model check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from promptrec.data.splits import leave_last_out
from promptrec.finetune import AdapterError, LoraConfig, check_adapter, finetune
from promptrec.finetune.examples import TrainingExample, build_examples, training_targets
from promptrec.reranker.reranker import Reranker
from promptrec.retriever.retriever import TimeAwareRetriever

TINY = dict(examples=8, valid_examples=4, hard_negatives=3, random_negatives=4, max_prompt_tokens=400)


@pytest.fixture(scope="module")
def split(demo):
    return leave_last_out(demo.dataset.interactions)


def test_examples_come_from_training_events_and_answer_with_the_true_label(demo, split, tokenizer):
    from promptrec.prompt.builder import PromptBuilder

    ds = demo.dataset
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.train)
    builder = PromptBuilder(tokenizer=tokenizer, timezone=ds.interactions.timezone)
    targets = training_targets(split.train, 12, seed=3)
    assert targets == training_targets(split.train, 12, seed=3)
    first_held_out = {t.user_id: t.now for t in split.validation + split.test}
    examples = build_examples(targets, split.train, retriever, ds.catalog, builder, hard_negatives=5,
                              random_negatives=4, seed=3, progress=False)
    for t, ex in zip(targets, examples):
        assert t.now < first_held_out.get(t.user_id, t.now + np.timedelta64(1, "s"))  # training split only
        assert len(ex.candidate_ids) == 10 == len(set(ex.candidate_ids)) and t.item_id in ex.candidate_ids
        assert ex.answer == ex.true_label == ex.labels[ex.candidate_ids.index(t.item_id)]
        touched = set(split.train.history(t.user_id)["item_id"])  # before and after t
        assert not touched & (set(ex.candidate_ids) - {t.item_id})
    assert len({ex.true_label for ex in examples}) > 3  # shuffled: the answer is not always the same label
    listwise = build_examples(targets[:2], split.train, retriever, ds.catalog, builder, task="listwise",
                              hard_negatives=5, random_negatives=4, seed=3, progress=False)
    assert listwise[0].answer.split(", ")[0] == listwise[0].true_label and len(listwise[0].answer.split(", ")) == 10


def test_examples_carry_the_evidence_inference_shows(demo, split, tokenizer):
    """Random-negative examples (the sampled protocol's shape) say how many events each candidate had before
    the target's time (everybody's counts are taken at the start of its hour), as the eval's rerank prompts do;
    without evidence the candidates are the same."""
    from promptrec.prompt.builder import PromptBuilder

    ds = demo.dataset
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.train)
    builder = PromptBuilder(tokenizer=tokenizer, timezone=ds.interactions.timezone)
    targets = training_targets(split.train, 6, seed=5)
    kw = dict(hard_negatives=0, random_negatives=9, seed=5, progress=False)
    shown = build_examples(targets, split.train, retriever, ds.catalog, builder, evidence=True, **kw)
    bare = build_examples(targets, split.train, retriever, ds.catalog, builder, evidence=False, **kw)
    f = split.train.frame
    said = 0
    for t, ex, plain in zip(targets, shown, bare):
        assert ex.candidate_ids == plain.candidate_ids and ex.answer == plain.answer
        lines = {ln.split(". ", 1)[0]: ln for ln in ex.prompt.splitlines() if ". " in ln}
        for item, label in zip(ex.candidate_ids, ex.labels):
            before = (f["item_id"] == item) & (f["timestamp"] < t.now.floor("h"))
            everyone = int(before.sum())
            mine = int(((f["item_id"] == item) & (f["timestamp"] < t.now) & (f["user_id"] == t.user_id)).sum())
            if everyone > max(mine, 1):
                assert f"{everyone} visits" in lines[label]
                said += 1
        assert " visits" not in plain.prompt
    assert said > 10


def test_sampled_examples_in_the_retrievers_order_are_sorted_by_its_score(demo, split, tokenizer):
    """The sampled protocol's shape (true item + random negatives) with ``order="retriever"``: the same candidates
    as shuffled, shown best-scored first, so the adapter learns what a pipeline with ``order: retriever`` shows."""
    from promptrec.data.splits import HeldOut
    from promptrec.prompt.builder import PromptBuilder

    ds = demo.dataset
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.train)
    builder = PromptBuilder(tokenizer=tokenizer, timezone=ds.interactions.timezone)
    targets = training_targets(split.train, 10, seed=6)
    kw = dict(hard_negatives=0, random_negatives=9, evidence=False, seed=6, progress=False)
    shuffled = build_examples(targets, split.train, retriever, ds.catalog, builder, **kw)
    ordered = build_examples(targets, split.train, retriever, ds.catalog, builder, order="retriever", **kw)
    moved = 0
    for t, a, b in zip(targets, shuffled, ordered):
        assert sorted(a.candidate_ids) == sorted(b.candidate_ids) and b.answer == b.labels[b.candidate_ids.index(t.item_id)]
        one = retriever.score_targets([HeldOut(t.user_id, t.item_id, t.now)], columns=[b.candidate_ids])[0]
        scores = one[ds.catalog.codes(b.candidate_ids)]
        finite = scores[np.isfinite(scores)]
        assert (np.diff(finite) <= 1e-9).all() and np.isfinite(scores[:len(finite)]).all()  # best first, -inf last
        assert np.array_equal(b.retriever_scores, scores)  # what the eval's fusion blends the model's scores with
        assert sorted(a.retriever_scores) == sorted(b.retriever_scores)
        moved += a.candidate_ids != b.candidate_ids
    assert moved > 5
    with pytest.raises(ValueError, match="unknown order"):
        build_examples(targets, split.train, retriever, ds.catalog, builder, order="best", **kw)


def test_retrieved_examples_show_the_retrievers_order_as_inference_does(demo, split, tokenizer):
    from promptrec.finetune.examples import build_retrieved_examples
    from promptrec.prompt.builder import PromptBuilder

    ds = demo.dataset
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.train)
    builder = PromptBuilder(tokenizer=tokenizer, timezone=ds.interactions.timezone)
    targets = training_targets(split.train, 16, seed=4)
    top = retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=8)
    found = [t for t, c in zip(targets, top) if t.item_id in [x.item_id for x in c]]
    assert 0 < len(found) < len(targets)  # the demo has both: hits and misses
    kw = dict(candidates=8, seed=4, progress=False)
    inference = build_retrieved_examples(targets, split.train, retriever, ds.catalog, builder, **kw)
    assert [(e.user_id, e.now) for e in inference] == [(t.user_id, t.now) for t in found]  # misses left out
    for e, t in zip(inference, found):
        ranked = retriever.retrieve(t.user_id, now=t.now, k=8)
        assert e.candidate_ids == [c.item_id for c in ranked] and e.answer.endswith(e.labels[e.candidate_ids.index(t.item_id)])
        assert e.retriever_scores == pytest.approx([c.score for c in ranked])
    shuffled = build_retrieved_examples(targets, split.train, retriever, ds.catalog, builder, order="shuffled", **kw)
    assert len(shuffled) == len(targets) and all(t.item_id in e.candidate_ids for e, t in zip(shuffled, targets))
    by_event = {(e.user_id, e.now): e.candidate_ids for e in inference}
    moved = [e for e in shuffled if (e.user_id, e.now) in by_event and e.candidate_ids != by_event[(e.user_id, e.now)]]
    assert moved and all(sorted(e.candidate_ids) == sorted(by_event[(e.user_id, e.now)]) for e in moved)
    for e, t in zip(shuffled, targets):  # a missed true item is put in scored below every candidate retrieved
        true_score = e.retriever_scores[e.candidate_ids.index(t.item_id)]
        assert (e.user_id, e.now) in by_event or true_score < min(np.delete(e.retriever_scores,
                                                                            e.candidate_ids.index(t.item_id)))
    with pytest.raises(ValueError, match="unknown order"):
        build_retrieved_examples(targets, split.train, retriever, ds.catalog, builder, order="random", **kw)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, default_model_dir):
    out = tmp_path_factory.mktemp("adapter") / "demo-lora"
    # all linear modules of the top 8 layers only, as the real-data runs train them: vLLM must serve that too
    cfg = LoraConfig(rank=4, alpha=32, learning_rate=5e-3, batch_size=4, epochs=1, eval_every=1, patience=5, layers=8,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    manifest = finetune(None, out=out, format="demo", lora=cfg, seed=0, progress=False, **TINY)
    return out, manifest


def test_tiny_training_run_writes_an_adapter_with_its_manifest(adapter):
    out, m = adapter
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    saved = json.loads((out / "promptrec_adapter.json").read_text())
    assert saved["base_model"]["name"] == "SmolLM2-135M-Instruct" and saved["labels"] == "letters"
    assert saved["training"]["rank"] == 4 and saved["data"]["train_examples"] == 8 and saved["training"]["layers"] == 8
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        layers = {int(k.split(".layers.")[1].split(".")[0]) for k in f.keys()}
    assert layers == set(range(22, 30))  # SmolLM2-135M has 30 layers: the top 8 only
    assert set(saved["templates"]) >= {"label_scoring.j2", "history.j2"}
    assert m["run"]["steps"] == 2 and len(m["validation"]["history"]) == 3  # before training + each step
    assert m["validation"]["best"]["NDCG@10"] >= m["validation"]["before_training"]["NDCG@10"]


def test_adapter_on_another_base_model_is_refused(adapter, tmp_path):
    out, _ = adapter
    other = tmp_path / "other"
    shutil.copytree(out, other)
    data = json.loads((other / "promptrec_adapter.json").read_text())
    data["base_model"] = {"name": "Llama-3-8B", "config_sha256": "0123456789abcdef"}
    (other / "promptrec_adapter.json").write_text(json.dumps(data))
    with pytest.raises(AdapterError, match="trained on base model 'Llama-3-8B'"):
        check_adapter(other, "SmolLM2-135M-Instruct")
    with pytest.raises(AdapterError, match="not a promptrec adapter"):
        check_adapter(tmp_path, "SmolLM2-135M-Instruct")


def requests(reranker, demo, split, n=4):
    ds = demo.dataset
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.full)
    targets = split.test[:n]
    cands = retriever.retrieve_many([(t.user_id, t.now) for t in targets], k=8)
    return [reranker.request(split.history(t), c, t.now, t.user_id) for t, c in zip(targets, cands)]


def logprobs(ranked):
    return [r.calls[0].label_logprobs for r in ranked]


@pytest.fixture(scope="module")
def hf_pair(adapter, demo, split):
    ds = demo.dataset
    tuned = Reranker(backend="transformers", catalog=ds.catalog, timezone=ds.interactions.timezone, adapter=adapter[0])
    assert tuned.builder.max_prompt_tokens == 400  # the adapter's training prompts
    base = Reranker(backend=tuned.backend, catalog=ds.catalog, timezone=ds.interactions.timezone,
                    max_prompt_tokens=400)  # same weights and prompts, no adapter
    reqs = requests(tuned, demo, split)
    return reqs, tuned.rerank_many(reqs), base.rerank_many(reqs)


def test_transformers_serves_the_adapter_through_peft(hf_pair):
    _, tuned, base = hf_pair
    diffs = [max(abs(a[k] - b[k]) for k in a) for a, b in zip(logprobs(tuned), logprobs(base))]
    assert max(diffs) > 0.05  # the adapter changes the label distribution...
    assert all(r.meta["adapter"] for r in tuned)


@pytest.mark.vllm
def test_vllm_serves_the_adapter_like_peft(adapter, demo, split, hf_pair):
    ds = demo.dataset
    reqs, hf_tuned, hf_base = hf_pair
    tuned = Reranker(backend="vllm", catalog=ds.catalog, timezone=ds.interactions.timezone, adapter=adapter[0],
                     adapter_mode="lora", backend_options={"gpu_memory_utilization": 0.25, "max_model_len": 1536})
    assert tuned.backend.lora_request is not None  # served through vLLM's LoRA support (the GPU path)
    try:
        base = Reranker(backend=tuned.backend, catalog=ds.catalog, timezone=ds.interactions.timezone,
                        max_prompt_tokens=400)
        v_tuned, v_base = tuned.rerank_many(reqs), base.rerank_many(reqs)
    finally:
        tuned.close()
    for vt, ht, vb, hb in zip(logprobs(v_tuned), logprobs(hf_tuned), logprobs(v_base), logprobs(hf_base)):
        assert max(abs(vt[k] - ht[k]) for k in vt) < 0.5  # vLLM LoRA == peft, up to bf16 noise
        assert max(abs(vb[k] - hb[k]) for k in vb) < 0.5
    assert [r.raw_output for r in v_tuned] == [r.raw_output for r in hf_tuned]


def test_merged_adapter_scores_like_peft_and_is_cached(adapter, demo, split, hf_pair, tmp_path):
    from promptrec.reranker.merge import adapter_serving, merge_adapter, merged_from, serves_merged

    ds = demo.dataset
    reqs = hf_pair[0]
    # float32 on both sides: where the CPU has native bf16 the backends default to it, and bf16 rounding
    # alone moves label log-probabilities by ~0.1 (seen on an AVX512-BF16 machine), hiding what is tested
    exact = {"dtype": "float32"}
    merged = Reranker(backend="transformers", catalog=ds.catalog, timezone=ds.interactions.timezone,
                      adapter=adapter[0], adapter_mode="merged", backend_options=exact)
    assert merged.adapter_served == "merged" and serves_merged(merged.backend.model_path, adapter[0])
    assert merged.backend._active is None  # plain weights: no peft adapter on top
    m_tuned = merged.rerank_many(reqs)
    hf_tuned = Reranker(backend="transformers", catalog=ds.catalog, timezone=ds.interactions.timezone,
                        adapter=adapter[0], adapter_mode="lora", backend_options=exact).rerank_many(reqs)
    for m, h in zip(logprobs(m_tuned), logprobs(hf_tuned)):
        assert max(abs(m[k] - h[k]) for k in m) < 2e-3  # W + BA merged == W and BA applied apart
    assert [r.meta["adapter_served"] for r in m_tuned] == ["merged"] * len(reqs)
    # the merge is cached by the adapter's weights: same folder, not rewritten
    path = Path(merged.backend.model_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert merge_adapter(adapter[0]) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert merged_from(path)["base_model"]["name"] == "SmolLM2-135M-Instruct"
    # a backend on merged weights serves that adapter without LoRA, and no other adapter as merged
    assert adapter_serving(adapter[0], "auto", merged.backend) == "merged"
    other = tmp_path / "other"
    shutil.copytree(adapter[0], other)
    (other / "adapter_config.json").write_text((other / "adapter_config.json").read_text() + " ")
    assert not serves_merged(path, other)
    with pytest.raises(ValueError, match="not .*merged"):
        adapter_serving(other, "merged", merged.backend)
    assert adapter_serving(other, "auto", "vllm") == "merged"  # no CUDA here: vLLM's LoRA kernels are slow on CPU
    assert adapter_serving(other, "auto", "transformers") == "lora"


def test_continued_training_starts_from_the_adapter(adapter, tmp_path):
    out, m = adapter
    cfg = LoraConfig(learning_rate=1e-9, batch_size=4, epochs=1, eval_every=1, patience=5, init_adapter=str(out))
    again = finetune(None, out=tmp_path / "more", format="demo", lora=cfg, seed=0, progress=False, **TINY)
    t = again["training"]
    assert (t["rank"], t["alpha"], t["layers"]) == (4, 32, 8)  # the adapter's shape, not LoraConfig's defaults
    assert sorted(t["target_modules"]) == sorted(m["training"]["target_modules"])
    # same validation examples, a learning rate of ~0: before training == where the first run ended
    assert again["validation"]["before_training"]["NDCG@10"] == pytest.approx(m["validation"]["best"]["NDCG@10"],
                                                                             abs=1e-6)


def test_edited_templates_are_reported(adapter, tmp_path):
    from promptrec.reranker.adapter import template_drift
    from promptrec.templates import TemplateLibrary

    manifest = check_adapter(adapter[0], "SmolLM2-135M-Instruct")
    assert template_drift(manifest, TemplateLibrary()) == []
    (tmp_path / "history.j2").write_text("{{ history | length }} events\n")
    assert template_drift(manifest, TemplateLibrary(tmp_path)) == ["history.j2"]


def test_departures_can_weigh_more_in_the_loss(default_model_dir):
    """``depart_weight``: examples whose answer is not the first label shown count that much more; a row with
    weight 0 drops out of the batch's loss exactly, and equal weights give the plain mean."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promptrec.finetune.examples import TrainingExample
    from promptrec.finetune.train import _collate, answer_loss, encode, example_weights
    from promptrec.models import resolve_model

    path = str(resolve_model("SmolLM2-135M-Instruct"))
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    labels = ["A", "B", "C"]
    kept, departs = (TrainingExample(f"Pick one of {', '.join(labels)}: ", f"{a}", labels, a, "u", None, [])
                     for a in ("A", "C"))
    assert example_weights([kept, departs], 4.0).tolist() == [1.0, 4.0]
    data = encode(tok, [kept, departs], None)
    with torch.no_grad():
        both = _collate(data, tok.eos_token_id)
        alone = [answer_loss(model, *_collate([d], tok.eos_token_id)) for d in data]
        assert float(answer_loss(model, *both, torch.tensor([0.0, 1.0]))) == pytest.approx(float(alone[1]), rel=1e-3)
        assert float(answer_loss(model, *both, torch.tensor([1.0, 1.0]))) == pytest.approx(float(answer_loss(model, *both)))
        heavy = float(answer_loss(model, *both, torch.tensor([1.0, 4.0])))
    assert heavy == pytest.approx((float(alone[0]) + 4 * float(alone[1])) / 5, rel=1e-3)


def test_fused_validation_scores_the_model_with_the_retrievers_scores():
    """'fused NDCG@10' is what the tuned fusion would make of the model's scores and the retriever's: a model that
    only knows the answers the retriever misses is worth something fused, nothing alone. The fusion blends
    z-scores, so the retriever's own scores, not just its order, decide the weight at which the model wins (as in
    the eval); examples without them are judged against the order shown."""
    from promptrec.finetune.train import _first_pass_scores, _fused_ndcg

    shown = -np.arange(3, dtype=float)
    order_right = [(np.array([0.0, 1.0, 2.0]), shown, 0)] * 3  # the model reverses the order, which was right
    assert _fused_ndcg(order_right) == (1.0, 1.0)
    model_right = [(np.array([0.0, 0.0, 5.0]), shown, 2)] * 3
    assert _fused_ndcg(model_right) == (1.0, 0.4)  # the largest weight at which its opinion still wins (z-scores)
    second = np.array([0.0, 1.0, 0.0])  # the model prefers the second candidate, which is right
    assert _fused_ndcg([(second, shown, 1)]) == (1.0, 0.6)
    near_tie = np.array([10.0, 9.9, 0.0])  # the retriever barely prefers the first: the model wins at more weights
    assert _fused_ndcg([(second, near_tie, 1)]) == (1.0, 0.9)
    assert _fused_ndcg([]) == (pytest.approx(float("nan"), nan_ok=True), 1.0)
    example = TrainingExample("p", "B", ["A", "B", "C"], "B", "u", None, ["a", "b", "c"])
    assert _first_pass_scores(example).tolist() == shown.tolist()
    example.retriever_scores = near_tie.tolist()
    assert _first_pass_scores(example).tolist() == near_tie.tolist()


def test_an_unknown_select_metric_fails_when_the_config_is_made_not_after_the_examples():
    assert LoraConfig(select="fused NDCG@10").select == "fused NDCG@10"
    with pytest.raises(ValueError, match="select must be one of"):
        LoraConfig(select="HR@1")
