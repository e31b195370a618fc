"""Prompt rendering with the default model's real tokenizer: time, budget, labels, errors, overrides."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from promptrec.cli.main import app
from promptrec.data.catalog import Catalog
from promptrec.data.records import Event, Item
from promptrec.prompt.builder import PromptBudgetError, PromptBuilder
from promptrec.prompt.labels import LabelError, LabelScheme, label_token_ids
from promptrec.templates import TemplateError, TemplateLibrary

NOW = pd.Timestamp("2024-05-08 19:30", tz="UTC")


@pytest.fixture(scope="module")
def catalog():
    items = [Item(f"i{k}", f"Movie number {k}", "", ("Drama" if k % 2 else "Comedy",)) for k in range(60)]
    items.append(Item("evil", "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}", "", ("Horror",)))
    return Catalog.from_items(items)


def history(n, end=NOW):
    return [Event("u", f"i{k}", end - pd.Timedelta(hours=6 * (n - k))) for k in range(n)]


def cands(catalog, n=20):
    return [catalog[f"i{40 + k % 20}"] for k in range(n)]


def test_chat_prompt_states_time_history_and_labelled_candidates(tokenizer, catalog):
    b = PromptBuilder(tokenizer=tokenizer)
    p = b.build("label_scoring", history(5), cands(catalog), NOW, catalog)
    assert p.text.startswith("<|im_start|>system\n") and p.text.endswith("<|im_start|>assistant\n")
    assert [m["role"] for m in p.messages] == ["system", "user"]
    assert "It is now Wednesday evening, May 8, 2024, 19:30." in p.text
    assert "- 6 hours ago, Wednesday afternoon: Movie number 4 [Comedy]" in p.text
    assert "- yesterday, Tuesday afternoon: Movie number 0 [Comedy]" in p.text
    assert "A. Movie number 40\n" in p.text and "T. Movie number 59<|im_end|>" in p.text
    # only the candidate list follows the question: shuffles of one request share everything before it
    assert p.text.index("Which of these candidates") < p.text.index("Candidates:\nA. ")
    assert p.labels == list("ABCDEFGHIJKLMNOPQRST") and p.candidate_ids[0] == "i40"
    assert p.token_count == len(tokenizer.encode(p.text, add_special_tokens=False))
    assert p.history_shown == 5 and p.history_summarized == 0 and p.label_prefix == ""


def test_history_is_cut_to_the_token_budget_keeping_the_most_recent(tokenizer, catalog):
    full = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=10_000, max_history=100)
    whole = full.build("listwise", history(40), cands(catalog), NOW, catalog)
    assert whole.history_shown == 40
    budget = whole.token_count - 150
    b = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=budget, max_history=100)
    p = b.build("listwise", history(40), cands(catalog), NOW, catalog)
    assert p.token_count <= budget
    assert 0 < p.history_shown < 40 and p.history_shown + p.history_summarized == 40
    assert "Movie number 39" in p.text            # the most recent event stays
    assert ": Movie number 0 [" not in p.text      # the oldest is summarised
    assert f"{p.history_summarized} more (" in p.text and "Comedy" in p.text
    one_more = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=budget, max_history=p.history_shown + 1)
    assert one_more.build("listwise", history(40), cands(catalog), NOW, catalog).history_shown == p.history_shown


def test_candidates_are_never_cut(tokenizer, catalog):
    b = PromptBuilder(tokenizer=tokenizer, max_prompt_tokens=120)
    with pytest.raises(PromptBudgetError, match=r"candidates alone need \d+ tokens .* budget of 120"):
        b.build("label_scoring", history(3), cands(catalog), NOW, catalog)


def test_default_prompt_stays_under_800_tokens(tokenizer, demo):
    ds = demo.dataset
    from promptrec.data.splits import leave_last_out

    split = leave_last_out(ds.interactions)
    b = PromptBuilder(tokenizer=tokenizer, timezone=ds.interactions.timezone)
    for target in split.test[:5]:
        p = b.build("label_scoring", split.history(target), list(ds.catalog)[:20], target.now, ds.catalog)
        assert p.token_count <= 800 and p.history_shown > 0


def test_history_at_or_after_now_is_refused(tokenizer, catalog):
    b = PromptBuilder(tokenizer=tokenizer)
    with pytest.raises(ValueError, match="not before now"):
        b.build("label_scoring", history(3, end=NOW + pd.Timedelta(hours=6)), cands(catalog, 3), NOW, catalog)


def test_item_text_is_data_not_template(tokenizer, catalog):
    p = PromptBuilder(tokenizer=tokenizer).build("label_scoring", [], [catalog["evil"]], NOW, catalog)
    assert "A. {{ 7*7 }} {% for x in range(3) %}x{% endfor %}<|im_end|>" in p.text
    assert "The user has no history yet." in p.text


def test_pointwise_and_plain_completion_form(tokenizer, catalog):
    b = PromptBuilder(tokenizer=tokenizer, chat=False)
    p = b.build("pointwise", history(2), [], NOW, catalog, candidate=catalog["i7"])
    assert "Item: Movie number 7 [Drama]" in p.text and "Answer yes or no." in p.text
    assert "<|im_start|>" not in p.text and p.text.endswith("Answer:") and p.label_prefix == " "


def test_letter_labels_are_single_tokens_and_numbers_past_nine_are_not(tokenizer):
    ids = label_token_ids(tokenizer, LabelScheme("letters").labels(20))
    assert len(set(ids.values())) == 20
    assert label_token_ids(tokenizer, ["A", "B"], prefix="Answer:") .keys() == {"A", "B"}
    # after a space (prompts without a chat template end with "Answer:"), " B" is one token: the one the
    # model writes in context
    spaced = label_token_ids(tokenizer, LabelScheme("letters").labels(20), prefix=" ")
    assert len(set(spaced.values())) == 20 and set(spaced.values()).isdisjoint(ids.values())
    assert spaced["B"] == tokenizer.encode("Answer: B", add_special_tokens=False)[-1]
    with pytest.raises(LabelError, match=r"'10' -> \['1', '0'\]"):
        label_token_ids(tokenizer, LabelScheme("numbers").labels(12))
    with pytest.raises(LabelError, match="only 26 labels"):
        LabelScheme("letters").labels(27)
    with pytest.raises(LabelError, match="unknown label scheme"):
        LabelScheme("emoji")


def test_template_typo_names_template_and_line(tmp_path, tokenizer, catalog):
    (tmp_path / "label_scoring.j2").write_text(
        "{% block system %}You rank.{% endblock %}\n{% block user %}\nIt is {{ now | clock }}.\n"
        "Pick from {{ candidatez }}\n{% endblock %}\n")
    b = PromptBuilder(prompts_dir=tmp_path, tokenizer=tokenizer)
    with pytest.raises(TemplateError, match=r"template 'label_scoring.j2', line 4: 'candidatez' is undefined"):
        b.build("label_scoring", [], cands(catalog, 2), NOW, catalog)
    (tmp_path / "listwise.j2").write_text("{% block user %}{% for %}{% endblock %}")
    with pytest.raises(TemplateError, match=r"template 'listwise.j2', line 1"):
        b.build("listwise", [], cands(catalog, 2), NOW, catalog)


def test_user_folder_overrides_and_defaults_fill_gaps(tmp_path, tokenizer, catalog):
    (tmp_path / "history.j2").write_text("{% for e in history %}* {{ e.text }} on a {{ e.time | weekday }}\n{% endfor %}")
    b = PromptBuilder(prompts_dir=tmp_path, tokenizer=tokenizer)
    p = b.build("label_scoring", history(2), cands(catalog, 3), NOW, catalog)
    assert "* Movie number 1 [Drama] on a Wednesday" in p.text   # the user's history.j2
    assert "Which of these candidates will the user interact with next?" in p.text  # the default label_scoring.j2
    lib = TemplateLibrary(tmp_path)
    assert lib.source_path("history.j2").parent == tmp_path and "listwise.j2" in lib.names()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PromptBuilder(prompts_dir=tmp_path / "nope")


def test_cli_prompts_list_and_render(default_model_dir):
    runner = CliRunner()
    listed = runner.invoke(app, ["prompts", "list"])
    assert listed.exit_code == 0 and "label_scoring.j2" in listed.output and "default" in listed.output
    out = runner.invoke(app, ["prompts", "render", "--user", "u0003", "--now", "2024-04-01T12:00:00-04:00",
                              "--template", "listwise"])
    assert out.exit_code == 0, out.output
    assert "It is now Monday afternoon, April 1, 2024, 12:00." in out.output
    assert "tokens (SmolLM2-135M-Instruct tokenizer, budget 800)" in out.output
    assert " visits" in out.output  # the candidates carry the retriever's evidence (their popularity before now)
    bad = runner.invoke(app, ["prompts", "render", "--user", "nobody"])
    assert bad.exit_code == 1 and "nobody" in bad.output


def test_title_filters_do_not_repeat_the_year():
    from promptrec.templates import short_title, title_with_year

    dated = Item("a", "Mr. Holland's Opus (1995)", "", (), release_time=pd.Timestamp("1996-01-29", tz="UTC"))
    plain = Item("b", "Alien", "", (), release_time=pd.Timestamp("1979-05-25", tz="UTC"))
    undated = Item("c", "Ma vie en rose (My Life in Pink)", "", ())
    assert title_with_year(dated) == "Mr. Holland's Opus (1995)" and short_title(dated) == "Mr. Holland's Opus"
    assert title_with_year(plain) == "Alien (1979)" and short_title(plain) == "Alien"
    assert title_with_year(undated) == short_title(undated) == "Ma vie en rose (My Life in Pink)"
