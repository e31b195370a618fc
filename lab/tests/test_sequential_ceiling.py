"""lab/sequential_ceiling.py: the paired lead of a blend with the sequential features over one without, per
target and averaged over seeds, with an interval that excludes 0 only where the lead is real."""

import numpy as np

import sequential_ceiling as ceiling  # lab/, on sys.path by lab/conftest.py


def test_a_real_lead_is_beyond_the_interval_and_a_tie_is_not():
    rng = np.random.default_rng(0)
    without = rng.integers(0, 30, (400, 3))  # targets x seeds, 0-based ranks
    better = np.maximum(without - 5, 0)  # every truth 5 places higher
    got = ceiling.paired(better, without)
    assert got["Acc@10"]["lead"] > 0 and got["Acc@10"]["ci95"][0] > 0
    assert got["NDCG@10"]["with"] > got["NDCG@10"]["without"]
    same = ceiling.paired(without, without)
    assert all(m["lead"] == 0 and m["ci95"] == [0.0, 0.0] for m in same.values())
    # seeds are averaged per target first: a lead in one seed of three counts a third
    one_seed = without.copy()
    one_seed[:, 0] = better[:, 0]
    first_seed = ceiling.paired(better[:, :1], without[:, :1])["Acc@1"]["lead"]
    assert first_seed > 0 and np.isclose(ceiling.paired(one_seed, without)["Acc@1"]["lead"], first_seed / 3)


def test_sasrec_settings_go_into_every_sequential_signal_and_optional_signals_are_forced_in():
    from promptrec.eval.config import PipelineConfig

    p = PipelineConfig("r", "retriever", {"signals": ["auto", "sasrec", "sasrec_time"], "optional": ["sasrec"],
                                          "params": {"sasrec": {"max_len": 50, "seeds": 3}, "habit": {"x": 1}}})
    got = ceiling.with_sasrec_settings(p, {"max_len": 100})
    assert "optional" not in got.options and "optional" in p.options
    assert got.options["params"] == {"sasrec": {"max_len": 100, "seeds": 3}, "sasrec_time": {"max_len": 100},
                                     "habit": {"x": 1}}
    assert p.options["params"]["sasrec"]["max_len"] == 50  # the config's pipeline is left as it was
    assert ceiling.with_sasrec_settings(p, {}).options["params"] == p.options["params"]
