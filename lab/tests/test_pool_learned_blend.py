"""lab/pool_learned_blend.py on a small synthetic city: both modes tuned and scored, paired differences, report."""

import pool_learned_blend as plb  # lab/, on sys.path by lab/conftest.py


def test_a_small_city_is_tuned_and_scored_both_ways_and_reported(tmp_path):
    small = {"history": 20, "transition": 10, "similar": 3, "similar_of": 3, "nearby": 20, "popular": 10, "hour": 5}
    result = plb.run(n_items=400, n_users=300, n_targets=300, cache=tmp_path / "cache", pool=small)
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"exhaustive", "pooled"}
    for r in rows.values():
        assert r["trees"] > 0 and 0.3 < r["HR@100"] <= 1.0 and r["HR@10"] <= r["HR@100"]
    # pools of at most 74 of 400 places hold what the top 10 needs
    assert abs(rows["pooled"]["HR@10"] - rows["exhaustive"]["HR@10"]) < 0.05 and rows["pooled"]["HR@100"] > 0.9
    assert set(result["pooled_minus_exhaustive"]) == {"HR@10", "HR@100", "NDCG@10", "MRR"}
    plb.write(result | {"command": "python lab/pool_learned_blend.py", "date": "today", "machine": "here"}, tmp_path)
    md = (tmp_path / "pool_learned_blend.md").read_text()
    assert "| pooled |" in md and "- MRR:" in md
