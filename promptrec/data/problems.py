"""Problems found in input data: where (file, row, column), what, and how to fix it.

Loaders either raise :class:`DataError` (``errors="raise"``, the default) or drop the
offending rows and count them in a :class:`LoadReport` (``errors="drop"``). Nothing is
dropped without being counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

ErrorPolicy = Literal["raise", "drop"]
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One kind of problem in one file, with the rows where it occurs."""

    file: str
    column: str | None
    kind: str
    message: str
    fix: str
    rows: tuple[int, ...] = ()  # row numbers as a person finds them in the file
    count: int = 0

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:MAX_EXAMPLES])
            more = f" and {self.count - MAX_EXAMPLES} more" if self.count > MAX_EXAMPLES else ""
            where += f", row{'s' if self.count > 1 else ''} {shown}{more}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message} Fix: {self.fix}"


class DataError(ValueError):
    """Input data that promptrec cannot use as it is."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class LoadReport:
    """What a loader read, and every row it dropped with the reason."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return self.rows_read - self.rows_kept

    def dropped_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind] = out.get(p.kind, 0) + p.count
        return out

    def merge(self, other: "LoadReport") -> "LoadReport":
        return LoadReport(
            files=self.files + other.files,
            rows_read=self.rows_read + other.rows_read,
            rows_kept=self.rows_kept + other.rows_kept,
            problems=self.problems + other.problems,
        )

    def summary(self) -> str:
        lines = [f"read {self.rows_read:,} rows from {', '.join(self.files)}; kept {self.rows_kept:,}"]
        lines += [f"  dropped {p.count:,}: {p}" for p in self.problems]
        return "\n".join(lines)


class RowChecker:
    """Collects bad rows of one frame and applies the error policy once at the end.

    ``row_numbers`` maps the frame's positional rows to the numbers a person sees in the
    file (line numbers for text files, row numbers for Parquet); a ``range`` stands for them without
    holding one number per row.
    """

    def __init__(self, file: str, row_numbers: np.ndarray | range, policy: ErrorPolicy):
        if policy not in ("raise", "drop"):
            raise ValueError(f"errors must be 'raise' or 'drop', not {policy!r}")
        self.file = file
        self.row_numbers = row_numbers if isinstance(row_numbers, range) else np.asarray(row_numbers)
        self.policy = policy
        self.bad = np.zeros(len(self.row_numbers), dtype=bool)
        self.problems: list[Problem] = []

    def flag(self, mask: np.ndarray | pd.Series, *, column: str | None, kind: str, message: str, fix: str) -> None:
        mask = np.asarray(mask, dtype=bool) & ~self.bad  # count each row once, for its first problem
        n = int(mask.sum())
        if n == 0:
            return
        rows = tuple(int(self.row_numbers[i]) for i in np.flatnonzero(mask)[:MAX_EXAMPLES])
        self.problems.append(Problem(self.file, column, kind, message, fix, rows, n))
        self.bad |= mask

    def settle(self, report: LoadReport) -> int:
        """Raise on any problem under 'raise'; otherwise report the problems. Returns the rows kept."""
        report.files.append(self.file)
        report.rows_read += len(self.bad)
        if self.problems and self.policy == "raise":
            raise DataError(
                [p for p in self.problems]
                + [Problem(self.file, None, "hint", "Rows above were not loaded.",
                           "correct the file, or pass errors='drop' to drop and count such rows.")]
            )
        report.problems.extend(self.problems)
        kept = int((~self.bad).sum())
        report.rows_kept += kept
        return kept

    def finish(self, frame: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
        """Raise on any problem under 'raise'; otherwise drop the flagged rows and report them."""
        self.settle(report)
        kept = frame.loc[~self.bad]
        self.row_numbers = np.asarray(self.row_numbers)[~self.bad]
        return kept


def merge_problems(problems: list[Problem], order: tuple[tuple[str, str | None], ...] = ()) -> list[Problem]:
    """Problems found chunk by chunk (in file order) as one list: those of one kind merged (first examples,
    summed counts), kinds in the order ``order`` lists (kind, column) pairs."""
    merged: dict[tuple, Problem] = {}
    for p in problems:
        key = (p.kind, p.column, p.message, p.fix)
        q = merged.get(key)
        merged[key] = p if q is None else Problem(q.file, q.column, q.kind, q.message, q.fix,
                                                   (q.rows + p.rows)[:MAX_EXAMPLES], q.count + p.count)
    rank = {k: i for i, k in enumerate(order)}
    return sorted(merged.values(), key=lambda p: rank.get((p.kind, p.column), len(rank)))


def missing_file(path: str, what: str, fix: str) -> DataError:
    return DataError(Problem(path, None, "missing_file", f"{what} not found.", fix))


def require_columns(file: str, present: list[str], required: dict[str, str], param: str | None = "columns",
                    mappable: frozenset[str] | set[str] | None = None) -> None:
    """Raise naming every required column (promptrec name -> file column) the file lacks. The fix names the
    loader's mapping parameter ``param`` (None: the loader has none) for the names in ``mappable`` (default:
    all), so following it works."""
    missing = {ours: theirs for ours, theirs in required.items() if theirs not in present}
    if missing:
        def fix(ours: str) -> str:
            if param is None or (mappable is not None and ours not in mappable):
                return "rename the column in the file."
            return f"rename the column in the file, or map it: {param}={{'{ours}': '<your column>'}}."

        problems = [
            Problem(
                file,
                theirs,
                "missing_column",
                f"column '{theirs}' (needed as '{ours}') is missing; the file has {present}.",
                fix(ours),
            )
            for ours, theirs in missing.items()
        ]
        raise DataError(problems)


@contextlib.contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Turn a parser's failure on ``path`` (pandas, pyarrow, codecs) into a DataError naming the file."""
    try:
        yield
    except DataError:
        raise
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parser errors are ValueErrors
        raise DataError(Problem(path, None, "unreadable", f"cannot be read as {what}: {exc}",
                                "check the file's format (delimiter, quoting, encoding).")) from exc
