"""The LLM eval reports how often the top pick is the candidate shown first, against chance."""

import math

from promptrec.eval.runner import position_bias


def test_a_reranker_that_always_picks_the_first_shown_is_reported_as_such():
    first = [{"llm": [0.9, 0.1, 0.0, 0.0]}, {"llm": [0.5, 0.4]}]
    assert position_bias(first) == {"top_pick_shown_first": 1.0, "shown_first_by_chance": (1 / 4 + 1 / 2) / 2}
    spread = [{"llm": [0.1, 0.9, 0.0, 0.0]}, {"llm": [0.5, 0.4]}, {"llm": [0.0, 0.0, 1.0, 0.0]}]
    assert position_bias(spread)["top_pick_shown_first"] == 1 / 3


def test_no_scored_records_gives_no_rate():
    assert all(math.isnan(v) for v in position_bias([{"llm": []}]).values())
