"""The item catalogue: a pandas frame indexed by item id, with typed access."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.domain import Domain
from promptrec.data.records import Item

CORE_COLUMNS = ["title", "description", "categories", "release_time"]


class Catalog:
    """Items keyed by string id.

    The frame has the columns ``title``, ``description``, ``categories`` (tuples of
    strings), ``release_time`` (UTC, may be NaT) and any number of attribute columns.
    Each item also has a dense integer *code* (its row position), used by indexes and
    retrievers for array maths.
    """

    def __init__(self, frame: pd.DataFrame, *, items_from_events: bool = False, domain: Domain | str | None = None):
        self.items_from_events = items_from_events  # built from an event file: an item exists once someone used it
        self.domain = Domain.of(domain)  # the words prompts use for what users do with these items
        frame = frame.copy()
        if frame.index.name != "item_id":
            if "item_id" not in frame.columns:
                raise ValueError("Catalog frame needs an 'item_id' column or index.")
            frame = frame.set_index("item_id")
        frame.index = frame.index.astype(str)
        if frame.index.has_duplicates:
            dupes = frame.index[frame.index.duplicated()].unique().tolist()[:5]
            raise ValueError(f"Catalog has duplicate item ids {dupes}; each item id must be unique.")
        if "title" not in frame.columns:
            raise ValueError("Catalog frame needs a 'title' column.")
        frame["title"] = frame["title"].fillna("").astype(str)
        frame["description"] = frame.get("description", pd.Series("", index=frame.index)).fillna("").astype(str)
        cats = frame.get("categories", pd.Series([()] * len(frame), index=frame.index))
        frame["categories"] = [_as_tuple(c) for c in cats]
        rel = frame.get("release_time", pd.Series(pd.NaT, index=frame.index))
        frame["release_time"] = pd.to_datetime(rel, utc=True)
        other = [c for c in frame.columns if c not in CORE_COLUMNS]
        self.frame = frame[CORE_COLUMNS + other]
        self._codes = pd.Index(self.frame.index)

    @classmethod
    def from_items(cls, items: Iterable[Item]) -> "Catalog":
        rows = []
        for it in items:
            rows.append({"item_id": it.item_id, "title": it.title, "description": it.description,
                         "categories": it.categories, "release_time": it.release_time, **it.attributes})
        return cls(pd.DataFrame(rows))

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._codes

    def __iter__(self) -> Iterator[Item]:
        for item_id in self.frame.index:
            yield self[item_id]

    def __getitem__(self, item_id: str) -> Item:
        try:
            row = self.frame.loc[str(item_id)]
        except KeyError:
            raise KeyError(f"item '{item_id}' is not in the catalog ({len(self)} items)") from None
        attrs = {c: _plain(row[c]) for c in self.attribute_columns}
        rel = row["release_time"]
        return Item(str(item_id), row["title"], row["description"], row["categories"], attrs,
                    None if pd.isna(rel) else rel)

    @property
    def ids(self) -> np.ndarray:
        return self.frame.index.to_numpy()

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in CORE_COLUMNS]

    def codes(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Dense integer codes of item ids; raises naming ids not in the catalogue."""
        codes = self._codes.get_indexer(np.asarray(item_ids, dtype=object).astype(str))
        if (codes < 0).any():
            missing = np.asarray(item_ids)[codes < 0][:5].tolist()
            raise KeyError(f"items {missing} are not in the catalog")
        return codes

    def codes_of(self, item_ids: pd.Series) -> np.ndarray:
        """Codes (int32) of a column of item ids, -1 where an id is not in the catalogue. A categorical column
        is looked up once per distinct id, not once per row."""
        if isinstance(item_ids.dtype, pd.CategoricalDtype):
            # one more slot for code -1 (a missing id): unknown
            per_category = np.append(self._codes.get_indexer(item_ids.cat.categories.astype(str)), -1).astype(np.int32)
            return per_category[item_ids.cat.codes.to_numpy()]
        values = item_ids.to_numpy()
        if values.dtype != object:  # numbers as ids: the catalogue's ids are strings
            values = values.astype(str).astype(object)
        return self._codes.get_indexer(values).astype(np.int32)

    def coordinates(self) -> np.ndarray | None:
        """(items x 2) latitude and longitude from attribute columns latitude/longitude or lat/lon (NaN where
        unknown), or None when the catalogue has no such columns."""
        from promptrec.context import LAT_NAMES, LON_NAMES

        lat = next((c for c in LAT_NAMES if c in self.frame.columns), None)
        lon = next((c for c in LON_NAMES if c in self.frame.columns), None)
        if lat is None or lon is None:
            return None
        coords = np.column_stack([pd.to_numeric(self.frame[lat], errors="coerce"),
                                  pd.to_numeric(self.frame[lon], errors="coerce")]).astype(np.float64)
        return coords if np.isfinite(coords).all(axis=1).any() else None

    def categories(self) -> list[str]:
        return sorted({c for cats in self.frame["categories"] for c in cats})

    def subset(self, item_ids: Iterable[str]) -> "Catalog":
        return Catalog(self.frame.loc[[str(i) for i in item_ids]], items_from_events=self.items_from_events,
                       domain=self.domain)

    def describe(self) -> dict[str, Any]:
        rel = self.frame["release_time"].dropna()
        return {
            "items": len(self),
            "categories": len(self.categories()),
            "with_description": int((self.frame["description"] != "").sum()),
            "release_time_range": None if rel.empty else (str(rel.min()), str(rel.max())),
            "with_coordinates": 0 if self.coordinates() is None else int(np.isfinite(self.coordinates()).all(axis=1).sum()),
            "items_from_events": self.items_from_events,
        }


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("|") if v.strip()) if value else ()
    return tuple(str(v) for v in value)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so attributes render cleanly in templates."""
    return value.item() if isinstance(value, np.generic) else value
