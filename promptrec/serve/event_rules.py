"""What an event must be to be stored: one set of rules for POST /events and for replaying stored rows.

Every rule here holds for SQLite and PostgreSQL alike, so an event one store accepts the other accepts too,
and a stored event that breaks a rule (written by an older version, or by hand) is quarantined at replay
instead of stopping the server.

- Text (ids, event type, context keys and string values) is valid Unicode without lone surrogates and
  without NUL characters (PostgreSQL cannot store NUL; a lone surrogate cannot be encoded as UTF-8).
- ``context`` holds at most ``MAX_CONTEXT_KEYS`` scalar values; its keys live in their own namespace and
  may not be named like an event column (``RESERVED_KEYS``); integers fit in 64 bits; a latitude or
  longitude is a number in range.
"""

from __future__ import annotations

import json
import math
from typing import Any

from promptrec.context import LAT_NAMES, LON_NAMES

MAX_ID_CHARS = 256
MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_KEY_CHARS = 64
MAX_CONTEXT_TEXT_CHARS = 1024
MAX_INT = 2**63 - 1  # numbers in a context lie within ±MAX_INT: 64-bit integers, as both stores keep them
MAX_JSON_DIGITS = 400  # longer integer literals in a body are refused before Python converts them
# No NUL. (Lone surrogates are refused too, by text_problem, but no pattern can say so that every JSON
# Schema validator reads: a surrogate range is not a valid regex in Rust's or Go's flavour.)
TEXT_PATTERN = r"^[^\x00]*$"
EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "event_type", "weight", "event_id")
RESERVED_KEYS = frozenset(EVENT_COLUMNS + ("seq", "ts_ns", "received_ns", "context", "index"))
RANGES = {**{n: 90.0 for n in LAT_NAMES}, **{n: 180.0 for n in LON_NAMES}}


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (e.g. \\ud800), which is not valid Unicode text"
    return None


def checked_text(value: str) -> str:
    """``value`` if it is storable text, else ValueError saying why (for pydantic validators)."""
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def context_problems(context: Any) -> list[str]:
    """Everything wrong with an event's context (empty if it may be stored)."""
    if not isinstance(context, dict):
        return [f"context must be an object of scalar values, not {type(context).__name__}"]
    if len(context) > MAX_CONTEXT_KEYS:
        return [f"context has {len(context)} keys; at most {MAX_CONTEXT_KEYS}"]
    out = []
    for key, value in context.items():
        out += [f"context key {key!r}: {p}" for p in _key_problems(key)]
        out += [f"context[{key!r}]: {p}" for p in _value_problems(key, value)]
    return out


def _key_problems(key: Any) -> list[str]:
    if not isinstance(key, str) or not key:
        return ["keys are non-empty text"]
    if len(key) > MAX_CONTEXT_KEY_CHARS:
        return [f"longer than {MAX_CONTEXT_KEY_CHARS} characters"]
    if key in RESERVED_KEYS:
        return [f"is an event field's name (reserved: {', '.join(sorted(RESERVED_KEYS))}); send it as the event's "
                "own field or rename the context key"]
    problem = text_problem(key)
    return [problem] if problem else []


def _value_problems(key: str, value: Any) -> list[str]:
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return ["numbers must be finite"]
        limit = RANGES.get(key, MAX_INT)
        return [] if abs(value) <= limit else [f"{key} must lie within ±{limit:g}" if key in RANGES else
                                               f"numbers lie within ±{MAX_INT} (64-bit)"]
    if isinstance(value, str):
        if key in RANGES:
            return [f"{key} must be a number"]
        if len(value) > MAX_CONTEXT_TEXT_CHARS:
            return [f"text longer than {MAX_CONTEXT_TEXT_CHARS} characters"]
        problem = text_problem(value)
        return [problem] if problem else []
    return [f"values are text, numbers, true/false or null, not {type(value).__name__}"]


def context_json_schema() -> dict[str, Any]:
    """The JSON Schema of a context: exactly the rules :func:`context_problems` applies."""
    text = {"type": "string", "maxLength": MAX_CONTEXT_TEXT_CHARS, "pattern": TEXT_PATTERN}
    number = {"type": "number", "minimum": -MAX_INT, "maximum": MAX_INT}
    value = {"anyOf": [text, number, {"type": "boolean"}, {"type": "null"}]}
    return {"type": "object", "maxProperties": MAX_CONTEXT_KEYS, "additionalProperties": value,
            "propertyNames": {"minLength": 1, "maxLength": MAX_CONTEXT_KEY_CHARS, "pattern": TEXT_PATTERN,
                              "not": {"enum": sorted(RESERVED_KEYS)}},
            "properties": {name: {"anyOf": [{"type": "number", "minimum": -limit, "maximum": limit},
                                             {"type": "boolean"}, {"type": "null"}]} for name, limit in RANGES.items()},
            "description": "Scalar values, e.g. {\"device\": \"mobile\"}: keys of 1 to 64 characters, none named "
                           "like an event field; text up to 1,024 characters without NUL or lone surrogates; numbers "
                           "within 64 bits; latitude / longitude numbers in range."}


def stored_row_problem(row: dict[str, Any]) -> str | None:
    """Why a stored event row (the store's columns; ``context`` JSON text or a dict) cannot be applied, or None."""
    for name in ("user_id", "item_id", "event_type"):
        value = row.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
            return f"{name} is not text of 1 to {MAX_ID_CHARS} characters"
        problem = text_problem(value)
        if problem:
            return f"{name} {problem}"
    event_id = row.get("event_id")
    if event_id is not None and not (isinstance(event_id, float) and math.isnan(event_id)):  # NULL read as NaN
        if not isinstance(event_id, str):
            return "event_id is not text"
        problem = text_problem(event_id)
        if problem:
            return f"event_id {problem}"
    try:
        weight = float(row.get("weight"))
        ts = int(row.get("ts_ns"))
    except (TypeError, ValueError, OverflowError):
        return "weight or ts_ns is not a number"
    if not math.isfinite(weight):
        return "weight is not finite"
    if abs(ts) > MAX_INT:
        return "ts_ns is beyond 64 bits"
    context = row.get("context")
    if isinstance(context, (str, bytes)):
        try:
            context = json.loads(context)
        except (ValueError, RecursionError) as exc:
            return f"context is not JSON ({type(exc).__name__})"
    problems = context_problems(context)
    return "; ".join(problems) if problems else None
