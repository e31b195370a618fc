"""Typed records that cross module lines: items and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Item:
    """One catalogue item with the text an LLM or embedder sees."""

    item_id: str
    title: str
    description: str = ""
    categories: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    release_time: pd.Timestamp | None = None

    @property
    def release_year(self) -> int | None:
        return None if self.release_time is None else int(self.release_time.year)


@dataclass(frozen=True)
class Event:
    """One timestamped interaction of a user with an item.

    ``timestamp`` is tz-aware (UTC inside promptrec); ``context`` carries optional
    columns such as device or location.
    """

    user_id: str
    item_id: str
    timestamp: pd.Timestamp
    event_type: str = "interaction"
    weight: float = 1.0
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError(
                f"Event timestamp {self.timestamp} has no time zone; "
                "pass a tz-aware timestamp (e.g. pd.Timestamp(..., tz='UTC'))."
            )
