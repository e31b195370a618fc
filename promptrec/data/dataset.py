"""A dataset: the catalogue, the event log and the report of how they were loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.interactions import Interactions
from promptrec.data.problems import LoadReport


@dataclass
class Dataset:
    name: str
    catalog: Catalog
    interactions: Interactions
    report: LoadReport = field(default_factory=LoadReport)
    source: str = ""

    def describe(self) -> dict[str, Any]:
        ev = self.interactions.describe()
        return {
            "name": self.name,
            "source": self.source,
            "users": ev["users"],
            "items": len(self.catalog),
            "items_with_events": ev["items"],
            "events": ev["events"],
            "time_range": ev["time_range"],
            "events_per_user": ev["events_per_user"],
            "share_in_same_second_ties": ev["share_in_same_second_ties"],
            "event_types": ev["event_types"],
            "context_columns": ev["context_columns"],
            "timezone": ev["timezone"],
            "times_known": ev["times_known"],  # False: timestamps are ordinal pseudo-times (order only)
            "repeat_rate": ev["repeat_rate"],
            "hour_profile": ev["hour_profile"],
            "catalog": self.catalog.describe(),
            "rows_dropped": self.report.dropped_by_kind(),
        }

    def digest(self) -> str:
        """SHA-256 of the content: every event (user, item, time, type, weight, context) and every item (all
        columns), in the log's order; the same data loaded again gives the same digest, any edit another."""
        h = hashlib.sha256()
        for frame in (self.interactions.frame, self.catalog.frame.reset_index()):
            h.update(",".join(map(str, frame.columns)).encode())
            for name in frame.columns:
                column = frame[name]
                if column.dtype == object:
                    column = column.astype(str)  # lists / tuples (categories) hash by their text
                h.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())
        return h.hexdigest()
