"""Evaluation targets: held-out events with their sampled candidates and time slices.

Every target's history is the user's events strictly before its ``now`` (the split's rule).
The sampled protocol (LLMRank style) gives each target the true item plus ``negatives``
items the user had not interacted with before ``now``, drawn uniformly with a generator
seeded by (seed, target index), in a seeded random order: the same config always yields
the same candidates, whatever else the run contains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.splits import HeldOut, Split

GAP_BINS = ((1, "< 1 hour"), (24, "1-24 hours"), (24 * 7, "1-7 days"), (np.inf, "> 7 days"))
HOUR_BINS = ((6, "night 0-5h"), (12, "morning 6-11h"), (18, "afternoon 12-17h"), (24, "evening 18-23h"))
LENGTH_BINS = ((11, "1-10"), (51, "11-50"), (201, "51-200"), (np.inf, "> 200"))
SLICES = ("hours since previous event", "hour of day", "history length")


@dataclass
class EvalTarget:
    """One held-out event to predict, with what the protocols need about it."""

    index: int
    held: HeldOut
    sampled: list[str] = field(default_factory=list)  # true item + negatives, shuffled (sampled protocol)
    slices: dict[str, str] = field(default_factory=dict)
    given: list[str] = field(default_factory=list)  # the candidates a file gives (candidates protocol)

    def candidates_for(self, protocol: str) -> list[str]:
        """The items a protocol ranks: the file's candidates (``candidates``; targets the file does not cover,
        such as validation targets, use their sampled ones) or the sampled ones."""
        return self.given if protocol == "candidates" and self.given else self.sampled

    @property
    def user_id(self) -> str:
        return self.held.user_id

    @property
    def item_id(self) -> str:
        return self.held.item_id

    @property
    def now(self) -> pd.Timestamp:
        return self.held.now


def _bin(value: float, bins: tuple) -> str:
    return next(label for upper, label in bins if value < upper)


def time_slices(history: pd.DataFrame, now: pd.Timestamp, timezone: str) -> dict[str, str]:
    """Which slice a target falls in: hours since the previous event, local hour of ``now``, history length."""
    n = len(history)
    if not history.attrs.get("times_known", True):  # pseudo-times: only the history's length means something
        return {"hours since previous event": "no times", "hour of day": "no times",
                "history length": _bin(n, LENGTH_BINS) if n else "0"}
    if n:
        gap_h = (now - history["timestamp"].iloc[-1]).total_seconds() / 3600
        gap = _bin(gap_h, GAP_BINS)
        length = _bin(n, LENGTH_BINS)
    else:
        gap, length = "no history", "0"
    hour = _bin(now.tz_convert(timezone).hour, HOUR_BINS)
    return {"hours since previous event": gap, "hour of day": hour, "history length": length}


def build_targets(split: Split, catalog: Catalog, which: str = "test", *, negatives: int = 19, seed: int = 0,
                  timezone: str = "UTC") -> list[EvalTarget]:
    """Targets of the split's ``which`` part ("test" or "validation") with sampled candidates and slices."""
    held = split.test if which == "test" else split.validation
    ids = np.asarray(catalog.ids, dtype=object)
    stream = 0 if which == "test" else 1
    out = []
    for i, h in enumerate(held):
        hist = split.history(h)
        seen = set(hist["item_id"]) | {h.item_id}
        pool = np.flatnonzero(~np.isin(ids, list(seen)))
        rng = np.random.default_rng([seed, stream, i])
        negs = list(ids[rng.choice(pool, size=min(negatives, len(pool)), replace=False)])
        sampled = [h.item_id] + negs
        sampled = [sampled[j] for j in rng.permutation(len(sampled))]
        out.append(EvalTarget(i, h, sampled, time_slices(hist, h.now, timezone)))
    return out


def sample_targets(targets: list[EvalTarget], n: int, seed: int) -> list[EvalTarget]:
    """A seeded sample of ``n`` targets (all when n >= len), kept in their original order."""
    if n >= len(targets):
        return list(targets)
    pick = np.random.default_rng([seed, 7]).choice(len(targets), n, replace=False)
    return [targets[i] for i in sorted(pick)]
