"""The prompts' words for what users do come from the data, never from a domain they were not told."""

import pandas as pd
import pytest

from promptrec import load_dataset
from promptrec.data.domain import DOMAINS, Domain
from promptrec.eval.config import ConfigError, parse_config
from promptrec.prompt.builder import PromptBuilder
from tests.checkin_data import make_checkins


def _prompts(ds) -> str:
    """The label-scoring, listwise and pointwise prompts for the first user of ``ds``, joined."""
    events = ds.interactions.frame
    user = events[events.user_id == events.user_id.iloc[0]]
    now, history = user.timestamp.iloc[-1], user.iloc[:-1]
    items = [ds.catalog[i] for i in ds.catalog.ids[:3]]
    builder = PromptBuilder(timezone=ds.interactions.timezone)
    return "\n".join([builder.build("label_scoring", history, items, now, ds.catalog).text,
                      builder.build("listwise", history, items, now, ds.catalog).text,
                      builder.build("pointwise", history, [], now, ds.catalog, candidate=items[0]).text])


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A tabular shop log that says nothing about its domain."""
    folder = tmp_path_factory.mktemp("shop")
    times = pd.date_range("2024-03-01", periods=12, freq="7h", tz="UTC")
    pd.DataFrame({"user_id": ["a", "b"] * 6, "item_id": [f"i{n % 5}" for n in range(12)],
                  "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(folder / "events.csv", index=False)
    pd.DataFrame({"item_id": [f"i{n}" for n in range(5)], "title": [f"Kettle model {n}" for n in range(5)]}).to_csv(
        folder / "items.csv", index=False)
    return folder


def test_movie_data_keeps_the_exact_wording_of_the_committed_llm_results(demo):
    text = _prompts(demo.dataset)
    assert "From a user's viewing history and the current time, you pick the item the user will watch next." in text
    assert "What the user watched, oldest first:" in text and "Will the user watch this item next?" in text


def test_data_without_a_domain_names_none(shop):
    text = _prompts(load_dataset(shop))
    assert "will interact with next" in text and "What the user interacted with, oldest first:" in text
    assert "watch" not in text and "viewing" not in text


def test_a_domain_is_chosen_by_preset_by_its_words_or_on_the_command_line(shop):
    assert "will buy next" in _prompts(load_dataset(shop, domain="products"))
    own = load_dataset(shop, domain={"did": "rented", "will": "rent", "history": "rental history"})
    assert "What the user rented, oldest first:" in _prompts(own) and "From a user's rental history" in _prompts(own)
    assert Domain.of("bought/buy/purchase history") == DOMAINS["products"]
    assert Domain.of(DOMAINS["games"].spelled()) == DOMAINS["games"]


def test_check_ins_are_visits(tmp_path):
    make_checkins(n_users=3, days=4).to_csv(tmp_path / "checkins.csv", index=False)
    ds = load_dataset(tmp_path / "checkins.csv", format="checkins")
    assert ds.catalog.domain == DOMAINS["places"] and "will visit next" in _prompts(ds)


def test_bad_domains_say_what_is_wrong(shop):
    with pytest.raises(ValueError, match="unknown domain 'cinema'.*movies"):
        load_dataset(shop, domain="cinema")
    with pytest.raises(ValueError, match=r"unknown fields \['verb'\]"):
        Domain.of({"verb": "buy"})
    with pytest.raises(ConfigError, match="dataset.domain"):
        parse_config({"dataset": {"path": "demo", "domain": "cinema"}})


def test_a_config_without_a_domain_keeps_its_fingerprint():
    """Caches made before domains existed stay valid: an unset domain is not hashed; a set one is."""
    from promptrec.eval import config as config_module

    pipelines = [{"name": "popularity", "kind": "popularity"}]
    plain = parse_config({"dataset": {"path": "demo"}, "pipelines": pipelines})
    told = parse_config({"dataset": {"path": "demo", "domain": "movies"}, "pipelines": pipelines})
    before = plain.to_dict()
    for key in ("source", "pipelines", "name"):
        before.pop(key)
    before["dataset"].pop("domain")  # the config as it was hashed before domains existed
    before.pop("candidates_file")  # nor candidate files (an unset one is not hashed either)
    before["dataset"].pop("context", None)  # nor undeclared context columns
    assert plain.shared_fingerprint() == config_module._hash(before)
    assert told.shared_fingerprint() != plain.shared_fingerprint()


def test_a_saved_retriever_keeps_its_domain(served_demo):
    from promptrec.retriever.retriever import TimeAwareRetriever

    assert TimeAwareRetriever.load(served_demo[0]).catalog.domain == DOMAINS["movies"]
