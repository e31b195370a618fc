"""The one way a time-aware retriever is fitted: `fit_retriever`.

The CLI (`promptrec retriever fit`, `recommend`, `serve`, `batch`), `promptrec eval`, the demo and the
benchmarks all call it, so a retriever fitted anywhere has the same defaults:

    retriever = fit_retriever(dataset)                      # auto signals, learned blend tuned on validation
    retriever = fit_retriever(dataset, split="temporal", tune=False)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.splits import Split, make_split
from promptrec.retriever.retriever import TimeAwareRetriever

log = logging.getLogger(__name__)

TUNE_CHOICES = (True, False, "auto", "lightgbm", "coordinate")


@dataclass(frozen=True)
class RetrieverSettings:
    """How a retriever is built and tuned; the defaults are the library's, everywhere.

    ``signals``: "auto" (every signal the data supports) or a list of names / Signal objects; ``params``: per-signal
    settings; ``weights``: starting blend weights; ``repeats``: "auto", "allow" or "exclude" items the user has
    had; ``pool``: candidate pools ("auto", "on", "off" or PoolConfig settings); ``tune``: True (= "auto": the
    learned blend or linear weights, whichever is better on the later validation targets), "lightgbm",
    "coordinate" or False; ``ranker``: learned-blend settings (promptrec.retriever.learned.RankerConfig);
    ``optional``: signals kept only if the blend with them is better on the later validation targets."""

    signals: str | Sequence[Any] = "auto"
    params: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, float] | None = None
    repeats: str = "auto"
    pool: Any = "auto"
    tune: bool | str = True
    ranker: Mapping[str, Any] | None = None
    optional: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.tune not in TUNE_CHOICES:
            raise ValueError(f"tune={self.tune!r}; choose one of {', '.join(map(repr, TUNE_CHOICES))}.")

    def replace(self, **changes: Any) -> "RetrieverSettings":
        """A copy with ``changes``; an unknown name is refused with the names there are."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown retriever setting(s) {unknown}; settings are {sorted(known)}.")
        return dataclasses.replace(self, **changes)

    def wants_index(self) -> bool:
        """Whether these signals read item vectors (auto uses the content signal when an index is given)."""
        if isinstance(self.signals, str):
            return self.signals == "auto" or self.signals == "content"
        return any(s in ("auto", "content") for s in self.signals if isinstance(s, str))


def fit_on_split(split: Split, catalog: Catalog, index: Any = None,
                 settings: RetrieverSettings | None = None, *, progress: bool = False) -> TimeAwareRetriever:
    """Fit on ``split.train`` (the whole log ``split.full`` is read for live statistics before each ``now``)
    and tune the blend on ``split.validation`` when ``settings.tune`` asks and there are several signals."""
    s = settings or RetrieverSettings()
    signals = s.signals if isinstance(s.signals, str) else list(s.signals)
    model = TimeAwareRetriever(signals=signals, weights=dict(s.weights) if s.weights else None,
                               params=dict(s.params), repeats=s.repeats, pool=s.pool)
    model.fit(split.train, catalog, index, log=split.full)
    if s.tune and len(model.signals) > 1 and split.validation:
        method = "auto" if s.tune is True else str(s.tune)
        model.tune(split.validation, method=method, ranker=dict(s.ranker) if s.ranker else None,
                   optional=list(s.optional), progress=progress)
    return model


def fit_retriever(dataset: Dataset, split: str | Split = "leave-last-out", *, index: Any = "auto",
                  index_root: str | Path = "indexes", settings: RetrieverSettings | None = None,
                  progress: bool = False, **overrides: Any) -> TimeAwareRetriever:
    """Fit (and tune) the time-aware retriever on ``dataset`` with the library's defaults.

    ``split``: a split name (promptrec.data.splits.make_split) or a :class:`Split`; the retriever is fitted on
    its training events and tuned on its validation targets. ``index``: "auto" loads or builds the item index
    under ``index_root`` when the signals read item vectors, None fits without it, or pass an ItemIndex.
    ``overrides``: any :class:`RetrieverSettings` field, e.g. ``fit_retriever(ds, tune=False)``."""
    s = (settings or RetrieverSettings()).replace(**overrides) if overrides else (settings or RetrieverSettings())
    if isinstance(split, str):
        split = make_split(dataset.interactions, split)
    if isinstance(index, str):
        if index != "auto":
            raise ValueError(f"index={index!r}; give 'auto', None or an ItemIndex.")
        index = item_index_for(dataset, index_root) if s.wants_index() else None
    return fit_on_split(split, dataset.catalog, index, s, progress=progress)


def item_index_for(dataset: Dataset, root: str | Path = "indexes") -> Any:
    """The dataset's item index under ``root``: loaded if it covers the catalogue, else built (embeds the items)."""
    from promptrec.index.item_index import ItemIndex

    return ItemIndex.for_catalog(dataset.catalog, dataset.name, root=root)
