"""lab/blend_seed_spread.py: ranker settings from the command line, and differences paired by data set and seed."""

import pytest

import blend_seed_spread as spread  # lab/, on sys.path by lab/conftest.py


def _row(period, arm, seed, ndcg):
    return {"period": period, "arm": arm, "seed": seed, "trees": 10, "Acc@1": 0.1, "Acc@10": 0.5, "NDCG@10": ndcg,
            "MRR": 0.2}


def test_arms_parse_to_ranker_settings_and_pipeline_options():
    assert spread.parse_arm("stop_window=21,learning_rate=0.1") == {"stop_window": 21, "learning_rate": 0.1}
    arm = spread.parse_arm("signals=[auto, audience],stop_window=21")
    assert arm == {"signals": ["auto", "audience"], "stop_window": 21}
    assert spread.parse_arm("") == {}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        spread.parse_arm("stop_window")
    options = spread.arm_options({"ranker": {"earlier_windows": 0}, "signals": "auto", "tune": True}, arm, seed=3)
    assert options == {"ranker": {"earlier_windows": 0, "stop_window": 21, "seed": 3},
                       "signals": ["auto", "audience"], "tune": True}


def test_differences_are_paired_by_period_and_seed():
    rows = [_row("a", "as configured", 0, 0.40), _row("a", "as configured", 1, 0.30),
            _row("b", "as configured", 0, 0.50),
            _row("a", "w", 0, 0.41), _row("a", "w", 1, 0.33), _row("b", "w", 0, 0.49)]
    [ndcg] = [p for p in spread.paired(rows) if p["metric"] == "NDCG@10"]
    assert ndcg["runs"] == 3 and ndcg["mean"] == pytest.approx((0.01 + 0.03 - 0.01) / 3, abs=1e-4)
    assert (ndcg["ahead"], ndcg["behind"]) == (2, 1)
    table = {(s["period"], s["arm"]): s for s in spread.summary(rows)}
    assert table[("a", "as configured")]["NDCG@10"]["mean"] == pytest.approx(0.35)
    assert table[("a", "w")]["NDCG@10"]["min"] == 0.33 and table[("b", "w")]["runs"] == 1
