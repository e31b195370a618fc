"""Device: which items people use on the device of the request (from the training log)."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, category_matrix, n_columns


class DeviceSignal(Signal):
    """log-lift of P(device | item) over P(device), smoothed toward the item's categories for items with
    few events. A request without a device (or with one never seen in training) scores 0 everywhere."""

    scores_items = True

    def __init__(self, smoothing: float = 20.0):
        super().__init__("device", {"smoothing": smoothing})
        self.devices: np.ndarray = np.array([], dtype=str)
        self.lift: np.ndarray | None = None  # items x devices

    def fit(self, data: FitData) -> None:
        if data.train_devices is None:
            raise ValueError("the device signal needs a 'device' column in the events; leave 'device' out of "
                             "signals for data without one.")
        dev = np.asarray([("" if v is None or v != v else str(v)) for v in data.train_devices], dtype=object)
        known = dev != ""
        self.devices = np.array(sorted(set(dev[known])), dtype=str)
        col = {d: j for j, d in enumerate(self.devices)}
        counts = np.zeros((data.n_items, max(1, len(self.devices))))
        np.add.at(counts, (data.train_codes[known], [col[d] for d in dev[known]]), 1.0)
        a = self.params["smoothing"]
        p_global = (counts.sum(axis=0) + 1.0) / (counts.sum() + counts.shape[1])
        item_cat = category_matrix(data.item_categories, data.n_items)
        cat_counts = item_cat.T @ counts
        p_cat = (cat_counts + a * p_global) / (cat_counts.sum(axis=1, keepdims=True) + a)
        prior = np.asarray(item_cat @ p_cat)
        has_cat = np.asarray(item_cat.sum(axis=1)).ravel() > 0
        prior[~has_cat] = p_global
        p_item = (counts + a * prior) / (counts.sum(axis=1, keepdims=True) + a)
        self.lift = np.log(p_item / p_global)

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((len(queries), n_columns(log, items)))
        lift = self.lift if items is None else self.lift[items]
        col = {d: j for j, d in enumerate(self.devices)}
        for i, q in enumerate(queries):
            if q.device in col:
                out[i] = lift[:, col[q.device]]
        return out

    def state(self) -> dict[str, Any]:
        return {"lift": self.lift, "devices": self.devices}

    def load_state(self, state: dict[str, Any]) -> None:
        self.lift, self.devices = state["lift"], np.asarray(state["devices"], dtype=str)
