"""The ``candidates`` protocol: every pipeline ranks a given list of candidates per user, as papers on LLM
ranking publish them (e.g. the true item and 19 random ones per user).

The file (``candidates_file:`` in the config) has one line per user, the user id then the candidate item ids,
tab- or comma-separated, the items separated by spaces (a header line ``user_id ...`` is skipped)::

    u1<TAB>i7 i3 i9 i2
    u2<TAB>i4 i1 i8 i5

Each line is for the user's test target (the held-out item of the split, e.g. the last event with
leave-last-out), which must be among its candidates. A test target without a line, a line without its test
item and an unknown item are errors naming the file and line; lines of users without a test target are counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptrec.data.catalog import Catalog
from promptrec.data.loaders.sequences import read_sequences
from promptrec.eval.targets import EvalTarget

MAX_SHOWN = 5


@dataclass(frozen=True)
class CandidateFile:
    """The candidate lists of a file: user id -> item ids in the file's order, and each user's line."""

    file: str
    lists: dict[str, list[str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    digest: str = ""

    @classmethod
    def read(cls, path: str | Path) -> "CandidateFile":
        seqs = read_sequences(path, what="the user's candidate item ids")
        for user, items in seqs.items.items():
            if len(set(items)) != len(items):
                raise ValueError(f"{path}, line {seqs.lines[user]}: user {user!r} lists a candidate twice; give "
                                 "each candidate once.")
        return cls(str(path), seqs.items, seqs.lines, hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16])


def with_candidates(targets: list[EvalTarget], given: CandidateFile, catalog: Catalog
                    ) -> tuple[list[EvalTarget], dict[str, Any]]:
    """``targets`` with their user's candidates (``EvalTarget.given``) and a report of the file's use; raises a
    ValueError listing every test target without a line, line without its test item, and unknown item."""
    missing = [t.user_id for t in targets if t.user_id not in given.lists]
    without = [t for t in targets if t.user_id in given.lists and t.item_id not in given.lists[t.user_id]]
    known = set(catalog.ids)
    unknown = sorted({i for t in targets for i in given.lists.get(t.user_id, ()) if i not in known})
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(targets)} test targets' users have no line (e.g. "
                        f"{missing[:MAX_SHOWN]}): add a line per test user")
    if without:
        shown = ", ".join(f"line {given.lines[t.user_id]} (user {t.user_id!r}, test item {t.item_id!r})"
                          for t in without[:MAX_SHOWN])
        problems.append(f"{len(without)} lines lack their user's test item: {shown}; the test item is the split's "
                        "held-out item (with leave-last-out the user's last event): check that the file belongs to "
                        "this data and split")
    if unknown:
        problems.append(f"{len(unknown)} candidates are not in the catalogue (e.g. {unknown[:MAX_SHOWN]}): use the "
                        "item ids of the dataset")
    if problems:
        raise ValueError(f"{given.file}: " + "; ".join(problems) + ".")
    users = {t.user_id for t in targets}
    sizes = [len(given.lists[t.user_id]) for t in targets]
    report = {"file": given.file, "lines": len(given.lists), "digest": given.digest,
              "lines_without_test_target": sum(u not in users for u in given.lists),
              "candidates_per_target": {"min": min(sizes, default=0), "max": max(sizes, default=0)}}
    return [dataclasses.replace(t, given=list(given.lists[t.user_id])) for t in targets], report
