"""Context columns: which items people use under each value of a column of the event log (weather, channel,
page, app surface...), from the training log. The device signal is the same idea for the ``device`` column.

A column is declared as context with ``load_dataset(..., context=["weather"])`` (or an eval config's
``dataset: {context: [weather]}``); ``signals="auto"`` then adds one signal per declared column, named
``context-<column>`` (a hyphen: LightGBM refuses ':' in feature names), and the request's value comes from
``Context(now, extras={"weather": "rain"})``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, category_matrix, n_columns

PREFIX = "context-"


def signal_name(column: str) -> str:
    """The signal of a declared context column: ``context-weather`` for ``weather``."""
    return f"{PREFIX}{column}"


def column_of(signal: str) -> str | None:
    """The column a context signal reads (None for other signals)."""
    return signal[len(PREFIX):] if signal.startswith(PREFIX) and len(signal) > len(PREFIX) else None


def value_text(value: Any) -> str:
    """A column value as the signal keys it ('' where missing): training values and request values alike."""
    return "" if value is None or value != value else str(value)


def lift_table(values: np.ndarray, codes: np.ndarray, n_items: int, item_categories: list[tuple[str, ...]],
               smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """The seen values (sorted) and log-lift of P(value | item) over P(value) (items x values), each item's
    distribution smoothed toward its categories' (and those toward everybody's) with ``smoothing`` events."""
    vocab, counts = value_counts(values, codes, n_items)
    return vocab, lift_of_counts(counts, n_items, item_categories, smoothing)


def value_counts(values: np.ndarray, codes: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The seen values (sorted) and each item's events per value (items x max(1, values), float): what
    :func:`lift_of_counts` reads. Sums over users: a log split by user adds up to the same."""
    val = np.asarray([value_text(v) for v in values], dtype=object)
    known = val != ""
    vocab = np.array(sorted(set(val[known])), dtype=str)
    col = {d: j for j, d in enumerate(vocab)}
    counts = np.zeros((n_items, max(1, len(vocab))))
    np.add.at(counts, (np.asarray(codes)[known], [col[d] for d in val[known]]), 1.0)
    return vocab, counts


def lift_of_counts(counts: np.ndarray, n_items: int, item_categories: list[tuple[str, ...]],
                   smoothing: float) -> np.ndarray:
    """The log-lift table (items x values) of :func:`value_counts`' counts."""
    a = smoothing
    p_global = (counts.sum(axis=0) + 1.0) / (counts.sum() + counts.shape[1])
    item_cat = category_matrix(item_categories, n_items)
    cat_counts = item_cat.T @ counts
    p_cat = (cat_counts + a * p_global) / (cat_counts.sum(axis=1, keepdims=True) + a)
    prior = np.asarray(item_cat @ p_cat)
    has_cat = np.asarray(item_cat.sum(axis=1)).ravel() > 0
    prior[~has_cat] = p_global
    p_item = (counts + a * prior) / (counts.sum(axis=1, keepdims=True) + a)
    return np.log(p_item / p_global)


class ContextColumnSignal(Signal):
    """log-lift of P(value | item) over P(value) for one context column, smoothed toward the item's categories
    for items with few events. A request without the column's value (or with one never seen in training)
    scores 0 everywhere."""

    scores_items = True

    def __init__(self, column: str, smoothing: float = 20.0, *, name: str | None = None):
        super().__init__(name or signal_name(column), {"smoothing": smoothing})
        self.column = column
        self.values: np.ndarray = np.array([], dtype=str)
        self.lift: np.ndarray | None = None  # items x values

    def train_values(self, data: FitData) -> np.ndarray:
        if self.column not in data.train_context:
            raise ValueError(f"signal {self.name!r} needs a {self.column!r} column in the training events; they "
                             f"have context columns {sorted(data.train_context)}. Declare it with "
                             f"load_dataset(..., context=[{self.column!r}]) or leave {self.name!r} out of signals.")
        return data.train_context[self.column]

    def request_value(self, query: Query) -> str:
        return value_text(query.extras.get(self.column))

    def fit(self, data: FitData) -> None:
        self.fit_counts(*value_counts(self.train_values(data), data.train_codes, data.n_items), data)

    def fit_counts(self, values: np.ndarray, counts: np.ndarray, data: FitData) -> None:
        """Fit from :func:`value_counts` (or their sums over shards of users: promptrec.retriever.ray_fit)."""
        self.values = values
        self.lift = lift_of_counts(counts, data.n_items, data.item_categories, self.params["smoothing"])

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((len(queries), n_columns(log, items)))
        lift = self.lift if items is None else self.lift[items]
        col = {d: j for j, d in enumerate(self.values)}
        for i, q in enumerate(queries):
            value = self.request_value(q)
            if value in col:
                out[i] = lift[:, col[value]]
        return out

    def state(self) -> dict[str, Any]:
        return {"lift": self.lift, "values": self.values}

    def load_state(self, state: dict[str, Any]) -> None:
        self.lift, self.values = state["lift"], np.asarray(state["values"], dtype=str)
