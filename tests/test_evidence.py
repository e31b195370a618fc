"""Evidence for the LLM's prompt: facts computed before now, rendered in a few words, within the budget."""

import pandas as pd
import pytest

from promptrec.context import Context
from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.data.records import Item
from promptrec.prompt.builder import PromptBuilder
from promptrec.retriever.retriever import TimeAwareRetriever

T0 = pd.Timestamp("2024-03-04 08:00", tz="UTC")  # a Monday
NOW = T0 + pd.Timedelta(days=14)  # Monday 08:00, two weeks on


@pytest.fixture(scope="module")
def world():
    """Places with coordinates; u1 goes to the gym at 8 every weekday and to the bar on Friday evenings;
    u2 and u3 go from the gym to the cafe; a late event (after NOW) must never count."""
    places = {"gym": (40.750, -73.990), "cafe": (40.752, -73.990), "bar": (40.800, -73.950), "park": (40.700, -73.900)}
    catalog = Catalog.from_items(Item(k, k.title(), categories=(k,), attributes={"latitude": a, "longitude": b})
                                 for k, (a, b) in places.items())
    rows = []
    for day in range(14):
        t = T0 + pd.Timedelta(days=day)
        if t.dayofweek < 5:
            rows.append(("u1", "gym", t))
        if t.dayofweek == 4:
            rows.append(("u1", "bar", t + pd.Timedelta(hours=12)))
        for u in ("u2", "u3"):
            rows += [(u, "gym", t + pd.Timedelta(hours=1)), (u, "cafe", t + pd.Timedelta(hours=2))]
    rows.append(("u2", "park", NOW + pd.Timedelta(hours=1)))  # the future
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    inter = Interactions(frame)
    retriever = TimeAwareRetriever(signals=["trending"]).fit(inter, catalog)
    return retriever, catalog, inter


def test_facts_are_the_users_and_everyones_before_now(world):
    retriever, _, _ = world
    gym, bar, cafe, park = retriever.explain("u1", NOW, ["gym", "bar", "cafe", "park"])
    assert (gym.visits, gym.visits_this_time, gym.usual_time) == (10, 10, "weekday mornings")
    assert gym.last_visit == NOW - pd.Timedelta(days=3)  # the Friday before
    assert (bar.visits, bar.visits_this_time, bar.usual_time) == (2, 0, "weekday evenings")
    assert cafe.visits == 0 and cafe.events == 28 and cafe.events_last_week == 14
    assert park.events == 0  # its only event is after now
    # popularity: the share of the items used before now with fewer events (gym 38, cafe 28, bar 2)
    assert (gym.popularity, cafe.popularity, bar.popularity, park.popularity) == (
        pytest.approx(2 / 3), pytest.approx(1 / 3), 0.0, None)
    assert cafe.busiest_part == "morning" and bar.busiest_day is None  # 2 events: too few to say
    # on the second Friday at 08:30 u1's last event is the gym: u2 and u3 went from it to the cafe 22 times
    friday = T0 + pd.Timedelta(days=11, minutes=30)
    gym_fri, cafe_fri = retriever.explain("u1", friday, ["gym", "cafe"])
    assert (gym_fri.follows_last, cafe_fri.follows_last) == (0, 22)
    # distance from the user's last place (the bar on Friday evening: last event), or from the request
    assert bar.distance_km == pytest.approx(0.0) and gym.distance_km > 5
    gym_here, = retriever.explain("u1", Context(NOW, location=(40.750, -73.990)), ["gym"])
    assert gym_here.distance_km == pytest.approx(0.0, abs=1e-6)


def test_evidence_reads_nothing_at_or_after_now(world):
    retriever, _, _ = world
    before = retriever.explain("u2", NOW, ["park", "gym", "cafe"])
    later = retriever.explain("u2", NOW + pd.Timedelta(hours=2), ["park", "gym", "cafe"])
    assert before[0].visits == 0 and later[0].visits == 1 and later[0].events == 1
    assert [e.events for e in before[1:]] == [e.events for e in later[1:]]


def test_prompt_says_the_evidence_in_words(world, tokenizer):
    retriever, catalog, inter = world
    friday = T0 + pd.Timedelta(days=11, minutes=30)  # u1 left the gym 30 minutes ago
    facts = retriever.explain("u1", friday, ["gym", "cafe", "park"])
    b = PromptBuilder(tokenizer=tokenizer)
    p = b.build("label_scoring", inter.history("u1", before=friday), [catalog[i] for i in ("gym", "cafe", "park")],
                friday, catalog, evidence=facts)
    assert "A. Gym (yours 10, 30 minutes ago, 10 at this hour; here; " in p.text  # usually weekday mornings: now
    assert "B. Cafe (0.2 km; 22 went here after your last; 22 visits)\n" in p.text
    assert "C. Park (9 km)<|im_end|>" in p.text
    without = b.build("label_scoring", inter.history("u1", before=friday), [catalog["gym"]], friday, catalog)
    assert "A. Gym (visited 10 times, last 30 minutes ago)" in without.text
    with pytest.raises(ValueError, match="evidence entries"):
        b.build("label_scoring", [], [catalog["gym"]], friday, catalog, evidence=facts)


def test_popularity_prompts_say_popularity_in_words(world, tokenizer):
    """eval/prompts/popularity says how popular a candidate is in words instead of counts."""
    from pathlib import Path

    retriever, catalog, inter = world
    friday = T0 + pd.Timedelta(days=11, minutes=30)
    facts = retriever.explain("u2", friday, ["cafe", "bar"])
    b = PromptBuilder(prompts_dir=Path(__file__).parents[1] / "eval" / "prompts" / "popularity", tokenizer=tokenizer)
    p = b.build("label_scoring", inter.history("u2", before=friday), [catalog["cafe"], catalog["bar"]], friday,
                catalog, evidence=facts)
    assert "B. Bar (6 km; rarely chosen)" in p.text and "visits" not in p.text


def test_twenty_candidates_with_evidence_fit_800_tokens_on_the_demo(tokenizer):
    from promptrec.data.loaders import load_dataset

    ds = load_dataset(None)
    inter = ds.interactions
    retriever = TimeAwareRetriever(signals=["trending", "transition"]).fit(inter, ds.catalog)
    b = PromptBuilder(tokenizer=tokenizer)
    for user in list(inter.users)[:5]:
        now = inter.history(user)["timestamp"].iloc[-1]
        cands = retriever.retrieve(user, now, k=20)
        facts = retriever.explain(user, now, [c.item_id for c in cands])
        p = b.build("label_scoring", inter.history(user, before=now), [ds.catalog[c.item_id] for c in cands], now,
                    ds.catalog, evidence=facts)
        assert p.token_count <= 800 and p.history_shown >= 1


def test_pointwise_prompt_says_its_candidates_evidence(world, tokenizer):
    retriever, catalog, inter = world
    friday = T0 + pd.Timedelta(days=11, minutes=30)
    gym, = retriever.explain("u1", friday, ["gym"])
    b = PromptBuilder(tokenizer=tokenizer)
    history = inter.history("u1", before=friday)
    p = b.build("pointwise", history, [], friday, catalog, candidate=catalog["gym"], candidate_evidence=gym)
    assert "(yours 10, 30 minutes ago, 10 at this hour; here" in p.text
    plain = b.build("pointwise", history, [], friday, catalog, candidate=catalog["gym"])
    assert "yours 10" not in plain.text and "Will the user interact with this item next?" in plain.text


def test_candidates_that_would_not_fit_keep_only_their_strongest_evidence(world, tokenizer):
    retriever, catalog, inter = world
    friday = T0 + pd.Timedelta(days=11, minutes=30)
    ids = ["gym", "cafe", "park"]
    facts = retriever.explain("u1", friday, ids)
    full = PromptBuilder(tokenizer=tokenizer).build("label_scoring", [], [catalog[i] for i in ids], friday, catalog,
                                                    evidence=facts)
    tight = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=full.token_count - 3)
    p = tight.build("label_scoring", [], [catalog[i] for i in ids], friday, catalog, evidence=facts)
    assert p.token_count <= full.token_count - 3
    assert "A. Gym (yours 10, 30 minutes ago, 10 at this hour; here)" in p.text  # no crowd figures
    assert "went here after your last" not in p.text and "B. Cafe (0.2 km)" in p.text
