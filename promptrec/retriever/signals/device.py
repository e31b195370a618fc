"""Device: which items people use on the device of the request (from the training log): the context-column
signal (:mod:`promptrec.retriever.signals.context_column`) for the ``device`` column."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query
from promptrec.retriever.signals.context_column import ContextColumnSignal, value_text


class DeviceSignal(ContextColumnSignal):
    """log-lift of P(device | item) over P(device), smoothed toward the item's categories for items with
    few events. A request without a device (or with one never seen in training) scores 0 everywhere."""

    def __init__(self, smoothing: float = 20.0):
        super().__init__("device", smoothing, name="device")

    @property
    def devices(self) -> np.ndarray:
        return self.values

    def train_values(self, data: FitData) -> np.ndarray:
        if data.train_devices is None:
            raise ValueError("the device signal needs a 'device' column in the events; leave 'device' out of "
                             "signals for data without one.")
        return data.train_devices

    def request_value(self, query: Query) -> str:
        return value_text(query.device)

    def state(self) -> dict[str, Any]:
        return {"lift": self.lift, "devices": self.values}

    def load_state(self, state: dict[str, Any]) -> None:
        self.lift, self.values = state["lift"], np.asarray(state["devices"], dtype=str)
