"""Turning raw frames into clean item and event frames, flagging every bad row.

Every loader reads its format into a raw frame of strings with promptrec's column
names, then hands it here; the checks and their messages are the same for all formats.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

from promptrec.data.problems import DataError, ErrorPolicy, LoadReport, Problem, RowChecker

_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
TEXT_COLUMNS = ("title", "description")


def clean_text(value: Any) -> Any:
    """Item text as people read it: HTML entities decoded (``&amp;`` -> ``&``, ``&reg;`` -> ``®``), Unicode NFC,
    runs of whitespace made one space, ends stripped. Missing values and non-strings are left as they are."""
    if not isinstance(value, str):
        return value
    return " ".join(unicodedata.normalize("NFC", html.unescape(value)).split())


def clean_item_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Title, description and categories cleaned by :func:`clean_text` (once, at load: prompts and embeddings
    read the catalogue)."""
    for col in TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(clean_text)
    if "categories" in frame.columns:
        frame["categories"] = frame["categories"].map(
            lambda v: clean_text(v) if isinstance(v, str)
            else tuple(c for c in (clean_text(str(x)) for x in v) if c) if isinstance(v, (list, tuple, np.ndarray))
            else v)
    return frame


FIRST, LAST = pd.Timestamp.min + pd.Timedelta(days=1), pd.Timestamp.max - pd.Timedelta(days=1)  # pandas' ns range


def storable_time(value: object) -> bool:
    """Whether a time (aware or naive, read as UTC) lies in the range promptrec stores."""
    try:
        ts = pd.Timestamp(value)
        return bool(FIRST <= (ts if ts.tzinfo is None else ts.tz_convert(None)) <= LAST)
    except (OverflowError, ValueError, TypeError):
        return False


def _in_range(parsed: pd.Series) -> pd.Series:
    """Parsed times as nanoseconds; values outside pandas' range, or a column pandas could not give one type
    (naive and zoned values mixed), become NaT."""
    if parsed.dtype == object:
        return pd.Series(pd.NaT, index=parsed.index, dtype="datetime64[ns]")
    tz = parsed.dt.tz
    bounds = (FIRST, LAST) if tz is None else (FIRST.tz_localize("UTC"), LAST.tz_localize("UTC"))
    ok = parsed.notna() & (parsed >= bounds[0]) & (parsed <= bounds[1])
    return parsed.where(ok).astype("datetime64[ns]" if tz is None else f"datetime64[ns, {tz}]")


def _to_datetime(text: pd.Series, fmt: str | None, utc: bool = False) -> pd.Series:
    """Date strings parsed with ``fmt``; without one, as ISO 8601 at C speed when every value is, else one
    by one ("mixed")."""
    if fmt:
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=utc)
    iso = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    if iso.dtype != object and iso.notna().all():
        return iso
    return pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)


def parse_timestamps(values: pd.Series, *, unit: str = "s", timezone: str = "UTC", fmt: str | None = None) -> pd.Series:
    """Parse numbers (epoch ``unit``) or date strings to UTC; unparsable values (and times outside
    1677-09-22..2262-04-10, pandas' range) become NaT.

    Strings without a zone are read as local time in ``timezone``.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # typed times (Parquet): no text round trip
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            return _in_range(values.dt.tz_convert("UTC")).astype("datetime64[ns, UTC]")
        local = _in_range(values).dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        return local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        raw, numeric = None, pd.to_numeric(values)  # epoch numbers: parsed as the text of them would be
    else:
        raw = values.astype("string").str.strip()
        numeric = pd.to_numeric(raw, errors="coerce")
    ns = numeric.astype("float64") * pd.Timedelta(1, unit=unit).value
    numeric = numeric.where((ns > FIRST.value) & (ns < LAST.value))
    is_num = numeric.notna()
    if is_num.any():
        out[is_num] = pd.to_datetime(numeric[is_num], unit=unit, utc=True, errors="coerce")
    if raw is None:
        return out
    text = raw[~is_num & raw.notna() & (raw != "")]
    if len(text):
        has_tz = text.str.contains(_TZ_SUFFIX)
        if has_tz.any():
            zoned = _to_datetime(text[has_tz], fmt, utc=True)
            out[has_tz[has_tz].index] = _in_range(zoned)
        naive = text[~has_tz]
        if len(naive):
            parsed = _in_range(_to_datetime(naive, fmt))
            if parsed.dt.tz is None:
                parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            out[naive.index] = parsed.dt.tz_convert("UTC")
    return out


CHECK_ORDER = (("missing_value", "user_id"), ("missing_value", "item_id"), ("bad_timestamp", "timestamp"),
               ("bad_value", "weight"))  # the row checks of check_events, in the order they run


def check_events(frame: pd.DataFrame, check: RowChecker, *, timestamp_unit: str = "s",
                 timestamp_format: str | None = None, timezone: str = "UTC") -> pd.DataFrame:
    """The checks one row answers alone (ids present, time and weight parse), flagged on ``check``; ``frame``
    (a whole raw file or one chunk of it) is changed in place: ids stripped, times parsed, weights numbers."""
    for col in ("user_id", "item_id"):
        frame[col] = frame[col].astype("string").str.strip()
        check.flag(frame[col].isna() | (frame[col] == ""), column=col, kind="missing_value",
                   message=f"empty {col}.", fix=f"give every event a {col}.")
    ts = parse_timestamps(frame["timestamp"], unit=timestamp_unit, timezone=timezone, fmt=timestamp_format)
    check.flag(ts.isna(), column="timestamp", kind="bad_timestamp",
               message="timestamp could not be parsed.",
               fix="use epoch seconds (or set timestamp_unit) or ISO 8601 such as 2024-05-01T18:30:00+02:00.")
    frame["timestamp"] = ts
    if "weight" in frame.columns:
        w = pd.to_numeric(frame["weight"], errors="coerce")
        check.flag(w.isna(), column="weight", kind="bad_value", message="weight is not a number.",
                   fix="make weight numeric, or leave the column out (weight 1.0).")
        frame["weight"] = w
    if "event_type" in frame.columns:
        frame["event_type"] = frame["event_type"].astype("string").fillna("interaction").astype(str)
    return frame


def flag_unknown_items(check: RowChecker, unknown: np.ndarray) -> None:
    check.flag(unknown, column="item_id", kind="unknown_item",
               message="event names an item that is not in the item file.",
               fix="add the item to the catalog, or remove the event.")


def duplicate_key(columns: list[str] | pd.Index) -> list[str]:
    """The columns two events share when one repeats the other."""
    return [c for c in ("user_id", "item_id", "timestamp", "event_type") if c in columns]


def flag_duplicates(check: RowChecker, dupes: np.ndarray, key: list[str]) -> None:
    check.flag(dupes & ~check.bad, column=None, kind="duplicate_row",
               message=f"repeats an earlier event (same {', '.join(key)}).",
               fix="remove the repeated rows, or pass errors='drop' to keep the first of each.")


def no_events(file: str) -> DataError:
    return DataError(Problem(file, None, "empty", "no usable events in the file.",
                             "check the file and the column mapping."))


def clean_events(
    raw: pd.DataFrame,
    *,
    file: str,
    row_numbers: np.ndarray,
    report: LoadReport,
    errors: ErrorPolicy = "raise",
    known_items: pd.Index | None = None,
    timestamp_unit: str = "s",
    timestamp_format: str | None = None,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """Validate a raw event frame (string columns user_id, item_id, timestamp, ...)."""
    check = RowChecker(file, row_numbers, errors)
    frame = check_events(raw.copy(), check, timestamp_unit=timestamp_unit, timestamp_format=timestamp_format,
                         timezone=timezone)
    if known_items is not None:
        flag_unknown_items(check, ~frame["item_id"].isin(known_items).fillna(False).to_numpy(dtype=bool))
    key = duplicate_key(frame.columns)
    flag_duplicates(check, frame.duplicated(subset=key, keep="first").to_numpy(), key)
    kept = check.finish(frame, report)
    if kept.empty:
        raise no_events(file)
    kept = kept.copy()
    kept["user_id"] = kept["user_id"].astype(str)
    kept["item_id"] = kept["item_id"].astype(str)
    return kept


def clean_items(
    raw: pd.DataFrame,
    *,
    file: str,
    row_numbers: np.ndarray,
    report: LoadReport,
    errors: ErrorPolicy = "raise",
    release_format: str | None = None,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """Validate a raw item frame (string columns item_id, title, optional description, categories, release_time);
    item text is cleaned (:func:`clean_text`)."""
    check = RowChecker(file, row_numbers, errors)
    frame = raw.copy()
    frame["item_id"] = frame["item_id"].astype("string").str.strip()
    check.flag(frame["item_id"].isna() | (frame["item_id"] == ""), column="item_id", kind="missing_value",
               message="empty item_id.", fix="give every item an id.")
    check.flag(frame["item_id"].duplicated(keep="first").to_numpy(), column="item_id", kind="duplicate_item",
               message="item id appears more than once.", fix="keep one row per item id.")
    if "release_time" in frame.columns:
        given = frame["release_time"].astype("string").str.strip().fillna("")
        rel = parse_timestamps(given.mask(given == "", None).fillna(""), unit="s", timezone=timezone, fmt=release_format)
        check.flag((given != "").to_numpy() & rel.isna().to_numpy(), column="release_time", kind="bad_timestamp",
                   message="release time could not be parsed.",
                   fix="use ISO dates (1995-01-01) or leave the field empty when unknown.")
        frame["release_time"] = rel
    kept = clean_item_text(check.finish(frame, report).copy())
    kept["item_id"] = kept["item_id"].astype(str)
    return kept
