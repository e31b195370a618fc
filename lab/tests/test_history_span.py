"""lab/history_span.py compares on the targets every cut of the log scores."""

import pytest

import history_span as span  # lab/, on sys.path by lab/conftest.py


def test_compare_uses_the_common_targets_and_the_full_logs_paired_lead():
    full = {("u", "a", i): 0 for i in range(40)} | {("v", "b", 99): 50}  # v has no history in the short log
    short = {("u", "a", i): (0 if i < 20 else 30) for i in range(40)}  # half of the common targets missed
    got = span.compare({"all": {"p": full}, "1 week": {"p": short}}, "all", seed=0, n_boot=200)
    assert got["common_targets"] == 40
    assert got["rows"]["all"]["p"]["HR@10"] == 1.0 and got["rows"]["1 week"]["p"]["HR@10"] == 0.5
    lead = got["paired_lead_of_full_log"]["p"]["1 week"]["HR@10"]
    assert lead["lead"] == pytest.approx(0.5) and lead["beyond"]
