"""Sequential: a trained SASRec's scores for the step after the user's history, asked at ``now``.

``sasrec`` is the model of Kang & McAuley (2018); ``sasrec_time`` is also told each event's gap,
hour and weekday and those of ``now``. The model is trained in ``fit`` on the training events
only (or loaded from ``model=FOLDER``, or from the cache when the same settings and data were
trained before) and saved with the retriever.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from promptrec.retriever.signals.base import FitData, Query, Signal, local_hour_dow

log = logging.getLogger("promptrec.sequential")


class SASRecSignal(Signal):
    signal_name = "sasrec"
    time_aware = False
    trains_model = True

    def __init__(self, model: str | None = None, cache: bool = True, progress: bool = True, **settings: Any):
        from promptrec.sequential.config import SASRecConfig

        self.config = SASRecConfig.from_dict({"time_aware": self.time_aware} | settings)
        super().__init__(self.signal_name, {"model": model, "cache": cache, "progress": progress, **settings})
        self.model = None
        self.training: dict[str, Any] = {}

    def fit(self, data: FitData) -> None:
        from promptrec.sequential import store
        from promptrec.sequential.ensemble import assemble

        if self.params["model"]:
            self.model, manifest = store.load_model(self.params["model"])
            self._check_items(data.n_items)
            self.config = self.model.config  # queries are cut to the loaded model's history length
            self.training = manifest.get("training", {})
            return
        trained = [self._fit_one(config, data) for config in self.config.members()]
        self.model, self.training = assemble([m for m, _ in trained], [s for _, s in trained])

    def _fit_one(self, config: Any, data: FitData) -> tuple[Any, dict[str, Any]]:
        """One model of the ensemble: from the cache when these settings were trained on these events."""
        from promptrec.sequential import store
        from promptrec.sequential.sequences import user_sequences
        from promptrec.sequential.train import train_sasrec

        vectors = data.item_vectors if config.item_init == "text" else None
        key = store.fingerprint(config, data.n_items, data.train_users, data.train_codes, data.train_times,
                                data.timezone, vectors)
        cached = store.cache_root() / key
        if self.params["cache"] and (cached / store.MANIFEST).exists():
            model, manifest = store.load_model(cached)
            training = manifest["training"]
            if training.get("stop_reason", training.get("stopped_by")) in ("time_budget", "time budget"):
                log.warning("reusing the cached SASRec model %s, which its time budget stopped at epoch %s before "
                            "early stopping (budget-stopped): raise max_minutes to train one that stops by patience.",
                            cached, training.get("epochs_run"))
            return model, training | {"from_cache": str(cached)}
        seqs = user_sequences(data.train_users, data.train_codes, data.train_times, data.timezone)
        result = train_sasrec(seqs, data.n_items, config, progress=self.params["progress"], item_vectors=vectors)
        if self.params["cache"]:
            store.save_model(result.model, cached, result.summary(), {"fingerprint": key})
        return result.model, result.summary()

    @property
    def needs_item_vectors(self) -> bool:
        return self.config.item_init == "text" and not self.params["model"]

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
        weights = {f"weights.{k}": v.detach().numpy() for k, v in self.model.state_dict().items()}
        return weights | {"config": np.array(json.dumps(self.model.config.to_dict()))}

    def load_state(self, state: dict[str, Any]) -> None:
        import torch

        from promptrec.sequential.config import SASRecConfig
        from promptrec.sequential.ensemble import build_model, items_in

        if "config" in state:  # retrievers saved before the config was kept use the signal's settings
            self.config = SASRecConfig.from_dict(json.loads(str(state["config"])))
        weights = {k.removeprefix("weights."): torch.from_numpy(np.asarray(v)) for k, v in state.items()
                   if k.startswith("weights.")}
        self.model = build_model(items_in(weights), self.config)
        self.model.load_state_dict(weights)
        self.model.eval()


class TimeSASRecSignal(SASRecSignal):
    signal_name = "sasrec_time"
    time_aware = True
