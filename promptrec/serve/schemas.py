"""What the HTTP API accepts and returns (pydantic models; FastAPI turns them into the OpenAPI spec)."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Union

from pydantic import (AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter,
                      WithJsonSchema, field_validator)

from promptrec.data.validate import FIRST, LAST, storable_time
from promptrec.serve.event_rules import (MAX_ID_CHARS, TEXT_PATTERN, checked_text, context_json_schema,
                                        context_problems)

MAX_EVENTS_PER_REQUEST = 1000


def _id_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _storable(value: Any) -> Any:
    """Times must fit the range the loaders and the event store use (pandas' nanosecond timestamps)."""
    if not storable_time(value):
        raise ValueError(f"time outside the range promptrec stores ({FIRST:%Y-%m-%d} to {LAST:%Y-%m-%d})")
    return value


Text = Annotated[str, AfterValidator(checked_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
Id = Annotated[Text, BeforeValidator(_id_to_str), Field(min_length=1, max_length=MAX_ID_CHARS)]
def _iso_only(value: Any) -> Any:
    """A number (or a string of one) is not an ISO time, though pydantic would read it as Unix seconds."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1)
                                           .isdigit()):
        raise ValueError("give an ISO time with a zone, e.g. 2024-05-01T18:00:00Z (not a number)")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_storable)]
ContextValue = Union[str, int, float, bool, None]


class EventIn(BaseModel):
    """One interaction. ``timestamp`` needs a time zone; omitted, it is the time the server receives it."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    item_id: Id = Field(description="A catalogue item's id (others are refused).")
    timestamp: Time | None = Field(None, description="ISO time with a zone, between 1678 and 2261; omitted: received time.")
    event_type: Text = Field("interaction", min_length=1, max_length=64)
    weight: float = Field(1.0, allow_inf_nan=False, ge=-sys.float_info.max, le=sys.float_info.max)
    event_id: Text | None = Field(None, min_length=1, max_length=MAX_ID_CHARS,
                                 description="Optional idempotency key: an event_id already stored is not stored again.")
    context: Annotated[dict[str, ContextValue], WithJsonSchema(context_json_schema())] = Field(default_factory=dict)

    @field_validator("context")
    @classmethod
    def _storable_context(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = context_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


EventsBody = TypeAdapter(Union[EventIn, Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)]])


class EventsAck(BaseModel):
    stored: int = Field(description="Events written to the store (durable) and applied.")
    duplicates: int = Field(description="Events whose event_id was already stored; not stored again.")
    events_stored_total: int


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    rank: int
    score: float = Field(description="The final score (LLM, fused with the retriever if configured; else retriever).")
    retriever_score: float
    llm_score: float | None
    components: dict[str, float] = Field(description="Each retriever signal's weighted contribution.")


class Recommendations(BaseModel):
    user_id: str
    now: AwareDatetime
    device: str | None = Field(None, description="The request's device, if given.")
    location: list[float] | None = Field(None, description="The request's [lat, lon], if given.")
    context: dict[str, str] = Field(default_factory=dict, description="The request's values of declared context "
                                                                       "columns (e.g. weather), if given.")
    history_events: int = Field(description="Events of the user before `now` (fitted log and posted).")
    reranked: bool
    model_version: str | None = Field(None, description="The model version that retrieved these items (None: a "
                                                        "retriever folder without versions).")
    fallback_reason: str | None = Field(description="Why the LLM did not order these items, if it did not.")
    llm: dict[str, Any] | None
    items: list[RecommendedItem]
    timings_ms: dict[str, float]


class HistoryEvent(BaseModel):
    item_id: str
    event_id: str | None = Field(None, description="The event_id it was posted with, if any.")
    timestamp: AwareDatetime
    event_type: str
    weight: float
    context: dict[str, ContextValue]


class Health(BaseModel):
    status: str
    model: dict[str, Any] | None = Field(None, description="The model version served: name, when it was fitted, its "
                                                           "age in seconds, its data's last event, its store_seq.")
    items: int
    users: int
    events_stored: int
    live_events: int
    stored_events_not_applied: int = Field(description="Stored events naming items this catalogue lacks.")
    stored_events_quarantined: int = Field(0, description="Stored events set aside since start because they cannot "
                                              "be applied (`promptrec events quarantine` lists them).")
    event_store: dict[str, Any] = Field(description="Kind (SQLite or PostgreSQL), where (only to a valid key: the file, "
                                                    "or the URL without password), "
                                                    "whether replicas share it, and the last sequence number applied.")
    retrieval: dict[str, Any]
    llm: dict[str, Any]
    uptime_s: float
    config: dict[str, Any]


class SwapResult(BaseModel):
    version: str = Field(description="The model version now served.")
    previous: str | None = Field(description="The version served before.")
    unchanged: bool = Field(False, description="True if it was already served (nothing was done).")
    events_applied: int | None = Field(None, description="Live events applied to it before the switch.")
    swap_ms: float | None = Field(None, description="Time to apply them and switch (loading not counted).")
    load_ms: float | None = Field(None, description="Time to load the version from disk.")
    rolled_back: str | None = Field(None, description="The version rolled back (marked; a watcher skips it).")


class FieldProblem(BaseModel):
    field: str = Field(description="Where, e.g. events[3].timestamp or query parameter k.")
    message: str


class ErrorBody(BaseModel):
    """Every error response: a message for people and, for invalid input, each problem by field."""

    detail: str
    errors: list[FieldProblem] | None = None
