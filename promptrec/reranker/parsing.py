"""Reading a ranking out of free model text, robustly.

Whatever the model writes, the result is a permutation of exactly the candidates: labels are
read in order of appearance, duplicates and unknown labels are dropped, and candidates the
model did not name are appended in their original (retriever) order. ``fell_back`` says
whether anything had to be appended.
"""

from __future__ import annotations

import re

# after "I" or "A", a lowercase word other than a link word means the letter is the English word
_WORD_AFTER = re.compile(r" (?!(?:is|was|and|or|then|comes|first|second|last)\b)[a-z]")


def parse_ranking(text: str, labels: list[str]) -> tuple[list[int], bool]:
    """Candidate positions in the model's order (then the missing ones), and whether it fell back."""
    known = {lab: i for i, lab in enumerate(labels)}
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
                         + r")(?![A-Za-z0-9])") if labels else None
    order: list[int] = []
    seen: set[int] = set()
    for match in pattern.finditer(text or "") if pattern else ():
        if match.group(1) in ("I", "A") and _WORD_AFTER.match(text, match.end()):
            continue  # "I think", "A film": the English word, not the label
        pos = known[match.group(1)]
        if pos not in seen:
            seen.add(pos)
            order.append(pos)
    missing = [i for i in range(len(labels)) if i not in seen]
    return order + missing, bool(missing)
