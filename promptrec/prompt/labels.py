"""Candidate labels (A, B, ... or 1, 2, ...) and the check that each is one token for the model.

Label scoring reads the next-token probabilities of the labels, so every label must be a
single token, in the form it takes where the model writes it (``prefix``: what precedes
the label, e.g. "" at the start of the assistant turn or " " after "Answer:").
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

SCHEMES = ("letters", "numbers")


class LabelError(ValueError):
    """A label scheme that cannot serve the model or the number of candidates."""


@dataclass(frozen=True)
class LabelScheme:
    kind: str = "letters"

    def __post_init__(self) -> None:
        if self.kind not in SCHEMES:
            raise LabelError(f"unknown label scheme {self.kind!r}; choose one of {SCHEMES}.")

    @property
    def capacity(self) -> int:
        return 26 if self.kind == "letters" else 999

    def labels(self, n: int) -> list[str]:
        if n > self.capacity:
            raise LabelError(f"{n} candidates but the '{self.kind}' scheme has only {self.capacity} labels; "
                             "pass fewer candidates or use label scheme 'numbers'.")
        if self.kind == "letters":
            return list(string.ascii_uppercase[:n])
        return [str(i) for i in range(1, n + 1)]


def label_token_ids(tokenizer: Any, labels: list[str], prefix: str = "") -> dict[str, int]:
    """The single token id of each label as written after ``prefix``; raises naming any label that is not one token."""
    base = tokenizer.encode(prefix, add_special_tokens=False) if prefix else []
    out: dict[str, int] = {}
    bad: list[str] = []
    for label in labels:
        ids = tokenizer.encode(prefix + label, add_special_tokens=False)
        if len(ids) == len(base) + 1 and ids[: len(base)] == base:
            out[label] = ids[-1]  # the prefix is its own token(s), the label one more
        elif len(ids) == 1:
            out[label] = ids[0]  # the prefix merges into the label's token (" A" is one token in BPE and SentencePiece)
        else:
            bad.append(f"'{label}' -> {tokenizer.convert_ids_to_tokens(ids)}")
    if bad:
        raise LabelError(f"labels that are not a single token for this tokenizer (after {prefix!r}): "
                         f"{', '.join(bad)}; use label scheme 'letters' or fewer candidates.")
    if len(set(out.values())) != len(out):
        raise LabelError("two labels map to the same token; use another label scheme.")
    return out
