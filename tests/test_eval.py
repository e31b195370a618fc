"""Offline evaluation: metrics against hand-computed cases, configs, protocols, sampling determinism, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from promptrec.eval.config import ConfigError, load_config, parse_config
from promptrec.metrics import (bootstrap_ci, coverage, hit_rate, intra_list_diversity, mrr, ndcg, novelty,
                                    true_ranks)


# -- metrics ------------------------------------------------------------------------------------
def test_rank_metrics_by_hand():
    ranks = np.array([0, 1, 4, 30])  # 0-based ranks of the true item
    assert hit_rate(ranks, 1) == 0.25 and hit_rate(ranks, 5) == 0.75 and hit_rate(ranks, 50) == 1.0
    assert ndcg(ranks, 5) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 0) / 4)
    assert ndcg(ranks, 1) == 0.25
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 31) / 4)
    assert mrr(ranks, 5) == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)
    assert hit_rate(np.array([]), 5) == 0.0


def test_true_ranks_count_ties_against_the_true_item():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0], [0.2, -np.inf, 0.3, 0.1]])
    assert true_ranks(scores, np.array([1, 0, 2])).tolist() == [2, 3, 0]


def test_beyond_accuracy_by_hand():
    lists = [["a", "b"], ["b", "c"]]
    assert coverage(lists, 10) == 0.3
    pop = {"a": 0.5, "b": 0.25, "c": 0.125}
    assert novelty(lists, pop) == pytest.approx((1 + 2 + 2 + 3) / 4)
    assert novelty([["z"]], pop) == pytest.approx(3.0)  # never seen: as rare as the rarest seen item
    vec = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0]), "c": np.array([0.0, 1.0])}
    # a-b orthogonal (distance 1), b-c identical direction (distance 0)
    assert intra_list_diversity(lists, vec) == pytest.approx(0.5)
    assert intra_list_diversity([["a"]], vec) == 0.0


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    ranks = np.random.default_rng(1).integers(0, 40, 500)
    lo, hi = bootstrap_ci(ranks, lambda r: ndcg(r, 10), n=300, seed=3)
    assert (lo, hi) == bootstrap_ci(ranks, lambda r: ndcg(r, 10), n=300, seed=3)
    assert lo < ndcg(ranks, 10) < hi and hi - lo < 0.1


# -- configs ---------------------------------------------------------------------------------------
def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'colour': unknown key"):
        parse_config({"colour": 1, "pipelines": [{"kind": "random"}]})
    with pytest.raises(ConfigError, match=r"pipelines\[0\].kind.*unknown kind 'sasrek'"):
        parse_config({"pipelines": [{"kind": "sasrek"}]})
    with pytest.raises(ConfigError, match="needs 'retriever:'"):
        parse_config({"pipelines": [{"kind": "rerank"}]})
    with pytest.raises(ConfigError, match="duplicate names"):
        parse_config({"pipelines": [{"kind": "random"}, {"kind": "random"}]})
    with pytest.raises(ConfigError, match="protocols"):
        parse_config({"protocols": ["full", "nope"], "pipelines": [{"kind": "random"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: [kind: random\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_config_from_toml_and_yaml_agree(tmp_path):
    (tmp_path / "c.toml").write_text('dataset = "demo"\nks = [10, 5]\n[[pipelines]]\nkind = "retriever"\n'
                                     'params = {content = {half_life_days = 1.0e7}}\n'
                                     '[[pipelines]]\nname = "llm"\nkind = "rerank"\n')
    (tmp_path / "c.yaml").write_text("dataset: demo\nks: [10, 5]\npipelines:\n"
                                     "  - {kind: retriever, params: {content: {half_life_days: 1.0e7}}}\n"
                                     "  - {name: llm, kind: rerank}\n")
    a, b = load_config(tmp_path / "c.toml"), load_config(tmp_path / "c.yaml")
    assert a.fingerprint() == b.fingerprint()
    assert a.ks == [5, 10] and b.pipelines[1].options["retriever"] == "retriever"
    assert b.pipelines[0].options["params"]["content"]["half_life_days"] == 1e7  # YAML's "1.0e7" string fixed


def test_cached_results_are_kept_per_pipeline():
    from promptrec.eval.config import parse_config

    base = {"dataset": "demo", "pipelines": [{"name": "r", "kind": "retriever"}, {"name": "llm", "kind": "rerank"},
                                             {"name": "pop", "kind": "popularity"}]}
    a = parse_config(base)
    more = parse_config({**base, "pipelines": base["pipelines"] + [{"name": "tuned", "kind": "rerank",
                                                                    "adapter": "x"}]})
    assert a.shared_fingerprint() == more.shared_fingerprint() and a.fingerprint() != more.fingerprint()
    assert [a.pipeline_fingerprint(p) for p in a.pipelines] == [more.pipeline_fingerprint(p) for p in more.pipelines[:3]]
    edited = parse_config({**base, "pipelines": [{"name": "r", "kind": "retriever", "signals": ["trending"]},
                                                 *base["pipelines"][1:]]})
    fp = {p.name: (a.pipeline_fingerprint(p), edited.pipeline_fingerprint(q)) for p, q in zip(a.pipelines, edited.pipelines)}
    assert fp["r"][0] != fp["r"][1] and fp["llm"][0] != fp["llm"][1]  # a reranker's results follow its retriever
    assert fp["pop"][0] == fp["pop"][1]
    assert parse_config({**base, "seed": 1}).shared_fingerprint() != a.shared_fingerprint()


def test_report_names_sequential_models_cut_by_their_time_budget():
    from promptrec.eval.report import _sequential_md

    stopped = {"SASRec / sasrec": {"epochs_run": 78, "best_epoch": 63, "stopped_by": "patience", "seconds": 218.7},
               "SASRec, 3 seeds / sasrec": {"epochs_run": "78 / 67 / 58", "best_epoch": "63 / 61 / 43",
                                            "stopped_by": "patience / time budget / patience", "seconds": 600.1}}
    text = "\n".join(_sequential_md({"sequential": stopped}))
    assert "| SASRec, 3 seeds / sasrec | 78 / 67 / 58 (63 / 61 / 43) | patience / time budget / patience |" in text
    assert "Cut by the time budget before early stopping: SASRec, 3 seeds / sasrec.**" in text
    assert "max_minutes" in text and "SASRec / sasrec," not in text
    finished = "\n".join(_sequential_md({"sequential": {"SASRec / sasrec": stopped["SASRec / sasrec"]}}))
    assert "| SASRec / sasrec | 78 (63) | patience |" in finished and "Cut by the time budget" not in finished


def test_fresh_pipeline_discards_its_records_and_its_rerankers(tmp_path):
    """`promptrec eval --fresh-pipeline NAME`: after a code change the cache (keyed by settings) would hand back
    old records; the named pipeline and the rerank pipelines over it are recomputed, nothing else."""
    from promptrec.eval.config import parse_config
    from promptrec.eval.runner import EvalRun

    cfg = parse_config({"dataset": "demo", "pipelines": [
        {"name": "r", "kind": "retriever"}, {"name": "r 2", "kind": "retriever"},
        {"name": "llm", "kind": "rerank", "retriever": "r"}, {"name": "pop", "kind": "popularity"}]})
    run = EvalRun(cfg, tmp_path)
    for p in cfg.pipelines:
        run.cache.append((p.name, "full", "test", cfg.pipeline_fingerprint(p)), [{"i": 0}])
    assert EvalRun(cfg, tmp_path).refreshed == []
    again = EvalRun(cfg, tmp_path, fresh_pipelines=["r"])
    assert again.refreshed == ["r", "llm"]
    left = {p.name: bool(again.cache.load(p.name, "full", "test", cfg.pipeline_fingerprint(p))) for p in cfg.pipelines}
    assert left == {"r": False, "r 2": True, "llm": False, "pop": True}
    with pytest.raises(ConfigError, match="no such pipeline"):
        EvalRun(cfg, tmp_path, fresh_pipelines=["retriever"])


def test_a_true_item_beyond_the_reranked_candidates_keeps_the_retrievers_rank():
    """Full ranking: the LLM reorders the retriever's top N and the tail stays in its order, so a fused ranking
    at weight 1 is the retriever's exactly, MRR included; without the retriever's ranks it is a miss."""
    from promptrec.eval.pipelines import MISS, fused_records

    recs = [{"i": 0, "cands": ["a", "b"], "retr": [2.0, 1.0], "llm": [0.0, 1.0]},
            {"i": 1, "cands": ["a", "b"], "retr": [2.0, None], "llm": [1.0, 0.0]}]
    truths = {0: "b", 1: "z"}
    llm = fused_records(recs, truths, 0.0, 2, {0: 1, 1: 30})
    assert [r["rank"] for r in llm] == [0, 30] and llm[0]["top"] == ["b", "a"]
    assert [r["rank"] for r in fused_records(recs, truths, 1.0, 2, {0: 1, 1: 30})] == [1, 30]
    assert fused_records(recs, truths, 1.0, 2)[1]["rank"] == MISS


def test_adapter_reports_say_how_its_candidates_were_drawn():
    from promptrec.eval.report import _negatives

    assert _negatives({"candidates": 10, "hard_negatives": 5, "random_negatives": 4}) == (
        "10 candidates: 5 retriever hard negatives + 4 random")
    assert _negatives({"candidates": 20, "order": "retriever", "evidence": True}) == (
        "the retriever's top 20, in its order, with evidence")
    assert _negatives({"candidates": 20, "evidence": False}) == "the retriever's top 20, shuffled"
    assert _negatives({"candidates": 20, "protocol": "sampled", "order": "retriever", "evidence": True}) == (
        "the true item + 19 random ones, in the retriever's order, with evidence")


def test_sampled_rerank_requests_follow_the_retrievers_order_when_asked(demo_split):
    """``order: retriever`` shows a sampled target's candidates sorted by the retriever's score (as the full
    protocol's top N are); the default shows them as drawn. A config with another order is refused."""
    from promptrec.eval.pipelines import rerank_requests
    from promptrec.eval.targets import build_targets
    from promptrec.retriever.retriever import TimeAwareRetriever

    ds, split = demo_split
    retriever = TimeAwareRetriever(signals=["transition", "trending"]).fit(split.train, ds.catalog, log=split.full)
    targets = build_targets(split, ds.catalog, negatives=9, seed=0)[:8]

    class Collect:  # the reranker's request() is the boundary: keep what it is given
        def request(self, history, candidates, now, user_id, evidence=None):
            return candidates

    drawn = rerank_requests(Collect(), retriever, split, targets, "sampled", 20, evidence=False)
    ranked = rerank_requests(Collect(), retriever, split, targets, "sampled", 20, evidence=False, order="retriever")
    for t, a, b in zip(targets, drawn, ranked):
        assert [c.item_id for c in a] == t.sampled
        assert sorted(c.item_id for c in b) == sorted(t.sampled) and [c.rank for c in b] == list(range(1, 11))
        finite = [c.score for c in b if np.isfinite(c.score)]
        assert finite == sorted(finite, reverse=True) and all(np.isfinite(c.score) for c in b[:len(finite)])
    assert any([c.item_id for c in a] != [c.item_id for c in b] for a, b in zip(drawn, ranked))
    base = {"dataset": "demo", "pipelines": [{"name": "r", "kind": "retriever"}]}
    with pytest.raises(ConfigError, match="order is 'drawn'"):
        parse_config({**base, "pipelines": base["pipelines"] + [{"name": "l", "kind": "rerank", "order": "best"}]})


def test_tuned_and_fused_llm_pipelines_get_paired_leads_on_the_llm_sample():
    """A tuned pipeline is compared with the zero-shot one and the retriever on the targets they all ran on
    (the LLM sample), with paired intervals; a zero-shot pipeline without fusion is not a reference."""
    from types import SimpleNamespace

    from promptrec.eval.report import _paired_on_llm_sample

    cfg = parse_config({"dataset": "demo", "bootstrap_samples": 200, "pipelines": [
        {"name": "r", "kind": "retriever"}, {"name": "zs", "kind": "rerank"},
        {"name": "tuned", "kind": "rerank", "adapter": "some/adapter", "fusion": "tune"}]})
    rng = np.random.default_rng(0)
    sample = list(range(0, 400, 2))  # the LLM ran on every other target
    retriever = rng.integers(0, 20, 400)
    zero_shot = rng.integers(0, 20, len(sample))
    tuned = np.minimum(retriever[sample], zero_shot)  # never worse than either, often better than the zero-shot
    records = {("r", "sampled"): [{"i": i, "rank": int(r)} for i, r in enumerate(retriever)],
               ("zs", "sampled"): [{"i": i, "rank": int(r)} for i, r in zip(sample, zero_shot)],
               ("tuned", "sampled"): [{"i": i, "rank": int(r)} for i, r in zip(sample, tuned)],
               ("tuned + fusion", "sampled"): [{"i": i, "rank": int(retriever[i])} for i in sample]}
    run = SimpleNamespace(cfg=cfg, records=records, ranking_protocols=["sampled"])
    out = _paired_on_llm_sample(run, ["r", "zs", "tuned", "tuned + fusion"], sample)["sampled"]
    assert set(out) == {"tuned", "tuned + fusion"}
    lead = out["tuned"]["zs"]["NDCG@10"]
    assert lead["beyond"] and lead["lead"] > 0 and lead["ci95"][0] > 0
    assert out["tuned + fusion"]["r"]["NDCG@10"]["lead"] == 0 and not out["tuned + fusion"]["r"]["NDCG@10"]["beyond"]


def test_a_loss_beyond_its_interval_is_marked_like_a_gain():
    """'beyond' means the paired interval excludes 0 on either side: a significant loss is bold too."""
    from promptrec.eval.markdown import _paired_md
    from promptrec.eval.results import paired_differences
    rng = np.random.default_rng(0)
    better = rng.integers(0, 5, 300)
    worse = better + rng.integers(1, 4, 300)  # always ranked lower
    out = paired_differences({"worse": worse, "better": better, "tie": worse.copy()}, "worse", [10], 200, 0)
    loss = out["better"]["NDCG@10"]
    assert loss["lead"] < 0 and loss["ci95"][1] < 0 and loss["beyond"]
    assert out["tie"]["NDCG@10"]["lead"] == 0 and not out["tie"]["NDCG@10"]["beyond"]
    row = next(line for line in _paired_md({"paired": {"worse": out}}) if line.startswith("| better |"))
    assert f"**{loss['lead']:+.4f}" in row


def test_shipped_configs_parse():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "eval" / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.pipelines, path


# -- protocols on the demo data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_split(demo):
    from promptrec.data.splits import make_split

    return demo.dataset, make_split(demo.dataset.interactions, "temporal")


def test_sampled_candidates_are_seeded_unseen_and_hold_the_truth(demo_split):
    from promptrec.eval.targets import build_targets, sample_targets

    ds, split = demo_split
    a = build_targets(split, ds.catalog, negatives=19, seed=0)
    b = build_targets(split, ds.catalog, negatives=19, seed=0)
    c = build_targets(split, ds.catalog, negatives=19, seed=1)
    assert [t.sampled for t in a] == [t.sampled for t in b]
    assert sum(x.sampled != y.sampled for x, y in zip(a, c)) > 0.9 * len(a)
    positions = []
    for t in a[:300]:
        seen = set(split.history(t.held)["item_id"])
        assert len(t.sampled) == 20 == len(set(t.sampled)) and t.item_id in t.sampled
        assert not seen & (set(t.sampled) - {t.item_id})
        positions.append(t.sampled.index(t.item_id))
    assert len(set(positions)) > 10  # the true item is not always in the same place
    s1, s2 = sample_targets(a, 50, seed=0), sample_targets(a, 50, seed=0)
    assert [t.index for t in s1] == [t.index for t in s2] == sorted(t.index for t in s1)
    assert set(a[0].slices) == {"hours since previous event", "hour of day", "history length"}


def test_cached_score_records_are_reused_only_if_the_refitted_model_reproduces_them(tmp_path):
    """The cache is keyed by settings, which do not see code changes: a score pipeline's records are reused only
    if its refitted model gives the same records on the first cached targets; else they (and the rerank
    pipelines' over it) are recomputed."""
    from promptrec.eval.config import parse_config
    from promptrec.eval.runner import EvalRun

    cfg = parse_config({"dataset": "demo", "protocols": ["full"], "index_root": str(tmp_path / "idx"), "pipelines": [
        {"name": "pop", "kind": "retriever", "signals": ["trending"], "tune": False},
        {"name": "co", "kind": "cooccurrence"}, {"name": "llm", "kind": "rerank", "retriever": "pop"}]})
    pop, co, llm = cfg.pipelines

    def scored():
        run = EvalRun(cfg, tmp_path / "out", progress=False).load()
        run._run_score(pop)
        run._run_score(co)
        return run

    first = scored()
    assert first.score_cache == {"reused": [], "stale": []}
    again = scored()
    assert again.score_cache == {"reused": ["pop", "co"], "stale": []}
    assert again.records == first.records
    path = again.cache.path("pop", "full", "test", again._fingerprint(pop))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "rank": r["rank"] + 1}) + "\n" for r in records))  # as an older model
    again.cache.append(("llm", "full", "test", again._fingerprint(llm)), [{"i": 0}])
    third = scored()
    assert third.score_cache == {"reused": ["co"], "stale": ["pop"]}
    assert third.records == first.records and not list(third.cache.folder.glob("llm__*"))


DEMO_CONFIG = """
name: test-demo
dataset: demo
split: temporal
bootstrap_samples: 200
index_root: {root}
pipelines:
  - {{name: random, kind: random}}
  - {{name: popularity, kind: popularity}}
  - {{name: co-occurrence, kind: cooccurrence}}
  - {{name: SASRec, kind: sasrec, settings: {{epochs: 15, lr: 0.005, max_len: 20, dim: 32, cache: false}}}}
  - {{name: time-aware, kind: retriever}}
  - name: time-blind
    kind: retriever
    signals: [content, transition, trending]
    params: {{content: {{half_life_days: 1.0e+7}}, trending: {{half_life_days: 1.0e+7, window_days: 1.0e+7}}}}
"""


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    from promptrec.eval.runner import run_eval

    root = tmp_path_factory.mktemp("eval")
    (root / "demo.yaml").write_text(DEMO_CONFIG.format(root=root / "indexes"))
    cfg = load_config(root / "demo.yaml")
    return run_eval(cfg, root / "out", progress=False), root


def test_demo_eval_writes_tables_plots_and_beats_time_blind(demo_results):
    res, root = demo_results
    out = root / "out"
    for name in ("results.json", "results.md", "config.resolved.yaml", "ndcg10_full.png", "ndcg10_sampled.png",
                 "time_slices.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text())["fingerprint"] == res["fingerprint"]
    full, sampled = res["protocols"]["full"]["all"], res["protocols"]["sampled"]["all"]
    assert full["time-aware"]["NDCG@10"] > full["time-blind"]["NDCG@10_ci95"][1]  # beyond the interval
    assert sampled["time-aware"]["NDCG@10"] > sampled["time-blind"]["NDCG@10"]
    # random order among 20 candidates: E[NDCG@10] = sum_{r<10} 1/log2(r+2) / 20 = 0.227
    assert 0.20 < sampled["random"]["NDCG@10"] < 0.26
    assert full["random"]["coverage@10"] > full["popularity"]["coverage@10"]
    assert not res["not_run"] and full["SASRec"]["NDCG@10"] > full["random"]["NDCG@10"]  # trained in the run
    assert set(res["protocols"]["retrieval"]["all"]["time-aware"]) == {"recall@20", "recall@50", "recall@100"}
    md = (out / "results.md").read_text()
    assert "| time-aware |" in md and "hours since previous event" in md and "| SASRec |" in md
    # paired leads on the same targets, on both ranking protocols
    for key, table in (("paired", full), ("paired_sampled", sampled)):
        lead = res[key]["time-aware"]["random"]["NDCG@10"]
        assert lead["lead"] == pytest.approx(table["time-aware"]["NDCG@10"] - table["random"]["NDCG@10"])
        assert lead["beyond"] and lead["ci95"][0] > 0
    assert "minus each other pipeline (sampled candidates, all test targets)" in md


def test_a_different_config_does_not_reuse_cached_results(demo_results):
    from promptrec.eval.runner import EvalRun

    _, root = demo_results
    cfg = load_config(root / "demo.yaml")
    cfg.seed = 5
    with pytest.raises(ConfigError, match="different config"):
        EvalRun(cfg, root / "out")


RERANK_CONFIG = """
dataset: demo
split: temporal
protocols: [sampled]
llm_users: 6
bootstrap_samples: 50
index_root: {root}
reranker: {{backend: transformers}}
pipelines:
  - {{name: retriever, kind: retriever, signals: [transition, trending]}}
  - {{name: llm, kind: rerank, strategy: label_scoring}}
"""


@pytest.mark.slow  # minutes of LLM scoring on CPU: `make test-slow`
def test_interrupted_llm_run_resumes_with_only_the_missing_targets(tmp_path, default_model_dir):
    from promptrec.eval.runner import run_eval

    (tmp_path / "c.yaml").write_text(RERANK_CONFIG.format(root=tmp_path / "indexes"))
    cfg = load_config(tmp_path / "c.yaml")
    first = run_eval(cfg, tmp_path / "out", progress=False)
    [cache] = (tmp_path / "out" / "cache").glob("llm__sampled__test__*.jsonl")  # named by the pipeline's settings
    lines = cache.read_text().splitlines()
    assert len(lines) == 6
    # simulate a kill: two complete records and half of the third remain
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    second = run_eval(load_config(tmp_path / "c.yaml"), tmp_path / "out", progress=False)
    records = [json.loads(x) for x in cache.read_text().splitlines() if x.startswith("{") and x.endswith("}")]
    assert sorted(r["i"] for r in records) == sorted(json.loads(x)["i"] for x in lines)  # 2 kept + 4 redone
    a, b = first["protocols"]["sampled"]["llm_sample"], second["protocols"]["sampled"]["llm_sample"]
    assert a["llm"]["NDCG@10"] == pytest.approx(b["llm"]["NDCG@10"])
    assert a["retriever"]["NDCG@10"] == b["retriever"]["NDCG@10"]
    # the records as lab/llm_fusion_ceiling.py reads them: from the cache, in the LLM sample's order, nothing redone
    from promptrec.eval.runner import EvalRun

    run = EvalRun(load_config(tmp_path / "c.yaml"), tmp_path / "out", progress=False).load()
    run.run()
    before = cache.read_text()
    got = run.llm_records("llm", "sampled", "test")
    assert [r["i"] for r in got] == [t.index for t in run.llm_sample] and cache.read_text() == before
    assert {r["i"]: r["llm"] for r in got} == {r["i"]: r["llm"] for r in records}
    with pytest.raises(ValueError, match="no rerank pipeline 'retriever'"):
        run.llm_records("retriever")


def test_fusion_keeps_the_retriever_unless_the_llm_gain_is_beyond_noise():
    from promptrec.reranker.fusion import choose_fusion

    rng = np.random.default_rng(0)
    retr = rng.integers(0, 20, 300)
    noisy = {1.0: retr, 0.5: np.where(rng.random(300) < 0.5, retr - 1, retr + 1).clip(0), 0.0: rng.integers(0, 20, 300)}
    assert choose_fusion(noisy) == 1.0  # a coin-flip "gain" is not taken
    better = {1.0: retr, 0.5: np.maximum(retr - 4, 0), 0.0: rng.integers(0, 20, 300)}
    assert choose_fusion(better) == 0.5
    with pytest.raises(ValueError, match="must include 1.0"):
        choose_fusion({0.0: retr})


def test_gain_beyond_noise_is_a_one_sided_paired_test_with_bonferroni():
    from promptrec.metrics import gain_beyond_noise

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 400)
    assert not gain_beyond_noise(noise - noise.mean())  # mean exactly 0
    assert gain_beyond_noise(noise - noise.mean() + 0.2)  # z about 4
    assert not gain_beyond_noise(noise - noise.mean() - 0.2)  # one-sided: a loss is never a gain
    borderline = noise - noise.mean() + 0.11  # z about 2.2: beyond 5%, not beyond 5% / 20
    assert gain_beyond_noise(borderline) and not gain_beyond_noise(borderline, tests=20)
    assert not gain_beyond_noise(np.array([1.0]))  # one query decides nothing


def test_a_split_in_days_follows_the_data_and_the_cache_knows_which_data(tmp_path):
    """A config whose split is in days measures whatever period its file holds; the results folder remembers
    what the split made of the data, so a file replaced in place does not mix with the cached records; dates
    outside the data say where the data is."""
    import pandas as pd

    from promptrec.data.demo import generate_demo
    from promptrec.eval.runner import EvalRun

    ds = generate_demo().dataset
    folder = tmp_path / "data"
    folder.mkdir()
    items = ds.catalog.frame.reset_index()
    items.assign(categories=items["categories"].map("|".join)).to_csv(folder / "items.csv", index=False)
    events = ds.interactions.frame
    events.to_csv(folder / "events.csv", index=False)
    raw = {"dataset": {"path": str(folder), "options": {"timezone": "America/New_York"}}, "protocols": ["full"],
           "index_root": str(tmp_path / "idx"), "split": {"name": "temporal", "test_days": 14, "valid_days": 7},
           "pipelines": [{"name": "pop", "kind": "popularity"}]}
    cfg = parse_config(raw)
    run = EvalRun(cfg, tmp_path / "out", progress=False).load()
    last = events["timestamp"].max().tz_convert("America/New_York")
    assert pd.Timestamp(run.split.report["test_end"]) == last.normalize() + pd.DateOffset(days=1)
    assert EvalRun(cfg, tmp_path / "out", progress=False).load().ds.digest() == run.ds.digest()  # same data: reused
    # one event's item changed in place: the same sizes and cut times, other data all the same
    edited = events.copy()
    middle = len(edited) // 2
    edited.loc[middle, "item_id"] = next(i for i in items["item_id"] if i != edited.loc[middle, "item_id"])
    edited.to_csv(folder / "events.csv", index=False)
    with pytest.raises(ConfigError, match="digest"):
        EvalRun(cfg, tmp_path / "out", progress=False).load()
    # the same config on an earlier stretch of the log (the file replaced in place): its own last 14 days
    events[events["timestamp"] < events["timestamp"].max() - pd.Timedelta(days=30)].to_csv(folder / "events.csv",
                                                                                            index=False)
    with pytest.raises(ConfigError, match="other data"):
        EvalRun(cfg, tmp_path / "out", progress=False).load()
    earlier = EvalRun(cfg, tmp_path / "out2", progress=False).load()
    assert pd.Timestamp(earlier.split.report["test_end"]) < pd.Timestamp(run.split.report["test_start"])
    dated = parse_config({**raw, "split": {"name": "temporal", "valid_start": "2030-01-01T00:00:00Z",
                                           "test_start": "2030-01-08T00:00:00Z"}})
    with pytest.raises(ValueError, match="the data runs from 2024"):
        EvalRun(dated, tmp_path / "out3", progress=False).load()
