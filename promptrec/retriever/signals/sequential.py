"""Sequential: a trained SASRec's scores for the step after the user's history, asked at ``now``.

``sasrec`` is the model of Kang & McAuley (2018); ``sasrec_time`` is also told each event's gap,
hour and weekday and those of ``now``. The model is trained in ``fit`` on the training events
only (or loaded from ``model=FOLDER``, or from the cache when the same settings and data were
trained before) and saved with the retriever.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, local_hour_dow


class SASRecSignal(Signal):
    signal_name = "sasrec"
    time_aware = False

    def __init__(self, model: str | None = None, cache: bool = True, progress: bool = True, **settings: Any):
        from promptrec.sequential.config import SASRecConfig

        self.config = SASRecConfig.from_dict({"time_aware": self.time_aware} | settings)
        super().__init__(self.signal_name, {"model": model, "cache": cache, "progress": progress, **settings})
        self.model = None
        self.training: dict[str, Any] = {}

    def fit(self, data: FitData) -> None:
        from promptrec.sequential import store
        from promptrec.sequential.sequences import user_sequences
        from promptrec.sequential.train import train_sasrec

        if self.params["model"]:
            self.model, manifest = store.load_model(self.params["model"])
            self._check_items(data.n_items)
            self.training = manifest.get("training", {})
            return
        key = store.fingerprint(self.config, data.n_items, data.train_users, data.train_codes, data.train_times,
                                data.timezone)
        cached = store.cache_root() / key
        if self.params["cache"] and (cached / store.MANIFEST).exists():
            self.model, manifest = store.load_model(cached)
            self.training = manifest["training"] | {"from_cache": str(cached)}
            return
        seqs = user_sequences(data.train_users, data.train_codes, data.train_times, data.timezone)
        result = train_sasrec(seqs, data.n_items, self.config, progress=self.params["progress"])
        self.model, self.training = result.model, result.summary()
        if self.params["cache"]:
            store.save_model(self.model, cached, self.training, {"fingerprint": key})

    def _check_items(self, n_items: int) -> None:
        if self.model.n_items != n_items:
            raise ValueError(f"the sequential model was trained for {self.model.n_items} items, this catalogue has "
                             f"{n_items}; train it again on this data (promptrec train-sequential).")

    def score(self, queries: list[Query], log: Any) -> np.ndarray:
        from promptrec.sequential.sequences import Sequence, query_batch

        if self.model is None:
            raise RuntimeError("the sequential signal is not fitted; fit the retriever first.")
        seqs = [Sequence(q.codes, q.times, *q.calendar(log.timezone)) for q in queries]
        now = np.array([q.now_ns for q in queries], dtype=np.int64)
        batch = query_batch(seqs, self.config.max_len, now, *local_hour_dow(now, log.timezone))
        scores = self.model.score_last(batch).astype(np.float64)
        scores[[len(q.codes) == 0 for q in queries]] = 0.0  # no history: no opinion
        return scores

    def state(self) -> dict[str, Any]:
        return {f"weights.{k}": v.detach().numpy() for k, v in self.model.state_dict().items()}

    def load_state(self, state: dict[str, Any]) -> None:
        import torch

        from promptrec.sequential.model import SASRec

        weights = {k.removeprefix("weights."): torch.from_numpy(np.asarray(v)) for k, v in state.items()}
        self.model = SASRec(int(weights["item.weight"].shape[0]) - 1, self.config)
        self.model.load_state_dict(weights)
        self.model.eval()


class TimeSASRecSignal(SASRecSignal):
    signal_name = "sasrec_time"
    time_aware = True
