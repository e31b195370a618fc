"""The request context: *when* (``now``) and the scene (device, location, free-form extras).

    retriever.retrieve("u42", context=Context("2024-04-01T20:00Z", device="tv", location=(40.75, -73.98)))
    retriever.retrieve("u42", now="2024-04-01T20:00Z")            # the short form: time only

One value flows through the retriever (signals read ``device`` and ``location``), the prompt
templates (``context`` in Jinja), the evaluation (a held-out event's own context is the
request context) and the HTTP API (``?now=&device=&lat=&lon=``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from promptrec.data.interactions import to_utc

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon", "lng")


@dataclass(frozen=True)
class Context:
    """When and where a recommendation is asked for. ``now`` is tz-aware (kept in UTC)."""

    now: pd.Timestamp
    device: str | None = None
    location: tuple[float, float] | None = None  # (latitude, longitude) in degrees
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", to_utc(self.now))
        if self.location is not None:
            lat, lon = (float(v) for v in self.location)
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"location {self.location!r} is not (latitude, longitude) in degrees; "
                                 "give e.g. (40.75, -73.98).")
            object.__setattr__(self, "location", (lat, lon))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))

    @property
    def now_ns(self) -> int:
        return int(self.now.value)

    @classmethod
    def of(cls, value: "Context | Any") -> "Context":
        """A Context from a Context or from a bare time (string, datetime, Timestamp)."""
        return value if isinstance(value, Context) else cls(value)

    @classmethod
    def from_event(cls, now: Any, columns: Mapping[str, Any]) -> "Context":
        """The context of an event from its context columns (``device``; ``latitude``/``longitude`` or
        ``lat``/``lon``); the other non-empty columns become extras."""
        values = {k: v for k, v in columns.items() if not _missing(v)}
        lat = next((values.pop(n) for n in LAT_NAMES if n in values), None)
        lon = next((values.pop(n) for n in LON_NAMES if n in values), None)
        device = values.pop("device", None)
        location = (float(lat), float(lon)) if lat is not None and lon is not None else None
        return cls(now, device=None if device is None else str(device), location=location, extras=values)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "device": self.device,
                "location": None if self.location is None else list(self.location), "extras": dict(self.extras)}


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def resolve_context(now: Any = None, context: Context | None = None) -> Context:
    """The one context of a call that accepts ``now=`` (short form) or ``context=``."""
    if context is not None:
        if now is not None and to_utc(now) != context.now:
            raise ValueError("give either now= or context= (whose .now is the time), not two different times.")
        return Context.of(context)
    if now is None:
        raise ValueError("give the time of the request: now=... or context=Context(now, ...).")
    return Context.of(now)
