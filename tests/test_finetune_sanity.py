"""The fine-tuning sanity check in CI: on examples whose answer is written in the evidence, a few
steps of the real training loop (masking, label tokens, answer-only loss, schedule) must get the
answers right. A defect in any of them keeps HR@1 at chance (1/3 here)."""

from __future__ import annotations

import pytest

from promptrec.finetune.sanity import sanity_catalog, sanity_examples
from promptrec.finetune.train import LoraConfig, train_lora
from promptrec.prompt.builder import PromptBuilder
from promptrec.prompt.labels import label_token_ids

SHORT = """{% block user %}It is {{ now | part_of_day }}. Which place next? Answer with a label.
{% include "candidates.j2" %}
{% endblock %}
"""


@pytest.fixture(scope="module")
def short_builder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("prompts")
    (folder / "label_scoring.j2").write_text(SHORT)  # short prompts: seconds per step on 2 cores
    return PromptBuilder(prompts_dir=folder, tokenizer=tokenizer)


def test_sanity_examples_put_the_answer_in_the_evidence(short_builder):
    examples = sanity_examples(short_builder, sanity_catalog(), 30, candidates=3, seed=1)
    for ex in examples:
        true_line = next(line for line in ex.prompt.splitlines() if line.startswith(ex.true_label + ". "))
        assert "at this hour" in true_line and ex.prompt.count("at this hour") == 1
    assert len({ex.true_label for ex in examples}) == 3


def test_tiny_sanity_training_learns_the_written_answer(short_builder, default_model_dir, tmp_path):
    from promptrec.models import resolve_model

    catalog = sanity_catalog()
    train = sanity_examples(short_builder, catalog, 8, candidates=3, seed=0)
    labels = label_token_ids(short_builder.tokenizer, ["A", "B", "C"], "")
    cfg = LoraConfig(learning_rate=3e-3, layers=8, epochs=10, batch_size=4, eval_every=5, patience=100,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    record = train_lora(resolve_model("SmolLM2-135M-Instruct"), train, train, tmp_path / "a", cfg, label_ids=labels,
                        progress=False)
    before, best = record["history"][0], record["best"]
    assert before["HR@1"] < 0.7 and best["HR@1"] >= 0.9, record["history"]
    assert record["history"][-1]["loss"] < 0.5 * record["history"][1]["loss"]
