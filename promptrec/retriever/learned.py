"""The learned blend: a LightGBM lambdarank model over the signals' features and the request context.

A linear blend of z-scores cannot learn interactions ("the last place matters when it was ten
minutes ago, the habit when it was yesterday"); gradient-boosted trees over the signals' features
and context features (hour, weekday, hours since the last event, history length) can. The model
scores the union of each signal's top-N items, not the whole catalogue, so candidate generation
stays cheap. Training uses targets held out in time (the validation split): the earlier part
trains, the later part stops the boosting early.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONTEXT_FEATURES = ("context_hour", "context_weekday", "context_hours_since_last", "context_history_length")
# earlier windows "auto" trains on: measured on three periods of the NYC check-ins and on the demo (README)
AUTO_EARLIER_WINDOWS = 2


@dataclass
class RankerConfig:
    """LightGBM settings of the learned blend (lambdarank objective, NDCG@10 for early stopping)."""

    # each signal's top-N items (plus the user's own where repeats are allowed) form the candidates the model
    # scores. 50 (the default since 2026-12-02; was 100): NYC scored 1.5-1.8x faster, and over 3 LightGBM seeds x 3
    # NYC periods Acc@1 +0.0037 (SE 0.0006), NDCG@10 +0.0011, Acc@10 -0.0012 (SE 0.0008) (lab/results/top_n_*)
    top_n: int = 50
    num_leaves: int = 15
    min_data_in_leaf: int = 50
    learning_rate: float = 0.05
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    # the stop set's NDCG@10 per round is averaged over this many rounds (centred) before its best round is
    # taken and before "no gain for early_stopping_rounds" is judged: 1 takes the noisy curve's own maximum, as
    # LightGBM's early stopping does. 21 (the default since 2026-12-02): over 5 LightGBM seeds x 4 data sets,
    # test NDCG@10 +0.0017 (SE 0.0007) paired with 1, and a smaller seed spread (lab/results/blend_seed_spread.md)
    stop_window: int = 21
    stop_fraction: float = 0.3  # the latest share of the validation targets (in time) stops the boosting
    # more to learn from: targets of this many windows before the validation targets (each as long as the
    # validation period), each with the signals refitted on the events before its window (temporal splits).
    # "auto": AUTO_EARLIER_WINDOWS where the retriever can refit cheaply (see TimeAwareRetriever.tune), else 0
    earlier_windows: int | str = "auto"
    seed: int = 0
    threads: int = 2  # fixed: LightGBM's sums (and so the trained blend) change with the thread count

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RankerConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown learned-blend settings {sorted(unknown)}; allowed: "
                             f"{sorted(cls.__dataclass_fields__)}.")
        return cls(**d)

    def __post_init__(self):
        w = self.earlier_windows
        if w != "auto" and not (isinstance(w, int) and w >= 0):
            raise ValueError(f"earlier_windows={w!r}: use 'auto' or a whole number >= 0.")
        if not (isinstance(self.stop_window, int) and self.stop_window >= 1 and self.stop_window % 2):
            raise ValueError(f"stop_window={self.stop_window!r}: use an odd whole number >= 1 (1: no smoothing).")

    def lightgbm_params(self) -> dict[str, Any]:
        """The parameters lightgbm.train gets (early stopping is done by a callback, see LearnedBlend.train)."""
        return {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
                "feature_fraction": self.feature_fraction, "bagging_fraction": self.bagging_fraction,
                "bagging_freq": 1, "seed": self.seed, "deterministic": True, "num_threads": self.threads,
                "verbose": -1}


@dataclass
class RankingRows:
    """Feature rows of candidates grouped per query; ``labels`` 1 for the true item; ``targets`` the position of
    each group's query in the targets the rows were made for (rows joined by FeatureBuilder.concat keep each part's
    own positions)."""

    features: np.ndarray  # rows x features (float32)
    labels: np.ndarray
    groups: np.ndarray  # rows per query, in order
    queries_without_truth: int = 0  # queries whose true item was not among the candidates (left out)
    earlier_queries: int = 0  # of the groups, those from windows before the validation targets
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per group: its target's position


@dataclass
class LearnedBlend:
    """A trained lambdarank booster and what it needs to score: feature names and their signals."""

    feature_names: list[str]
    feature_signal: dict[str, str]  # feature -> signal (or "context") it comes from
    config: RankerConfig = field(default_factory=RankerConfig)
    booster: Any = None
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def train(cls, fit: RankingRows, stop: RankingRows, feature_names: list[str], feature_signal: dict[str, str],
              config: RankerConfig) -> "LearnedBlend":
        lgb = _lightgbm()
        params = config.lightgbm_params()
        train_set = lgb.Dataset(fit.features, fit.labels, group=fit.groups, feature_name=feature_names)
        stop_set = lgb.Dataset(stop.features, stop.labels, group=stop.groups, reference=train_set)
        curve: dict[str, Any] = {}
        booster = lgb.train(params, train_set, num_boost_round=config.max_rounds, valid_sets=[stop_set],
                            valid_names=["stop"], callbacks=[lgb.record_evaluation(curve),
                                                             _smoothed_early_stopping(config, curve)])
        booster.best_iteration = _best_round(curve["stop"]["ndcg@10"], config.stop_window)
        gain = booster.feature_importance("gain")
        importances = {n: round(float(g) / max(float(gain.sum()), 1e-12), 4) for n, g in zip(feature_names, gain)}
        # the settings go into the report too, so an eval's results say which defaults (top_n, stop_window...) made them
        report = {"config": asdict(config), "best_iteration": int(booster.best_iteration),
                  "fit_queries": int(len(fit.groups)), "fit_queries_from_earlier_windows": int(fit.earlier_queries),
                  "fit_rows": int(len(fit.labels)), "stop_queries": int(len(stop.groups)),
                  "left_out_no_truth_in_candidates": {"fit": fit.queries_without_truth, "stop": stop.queries_without_truth},
                  "stop_ndcg@10_curve": [round(v, 4) for v in curve.get("stop", {}).get("ndcg@10", [])],
                  "importance_gain_share": dict(sorted(importances.items(), key=lambda kv: -kv[1]))}
        return cls(list(feature_names), dict(feature_signal), config, booster, report)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features, num_iteration=self.booster.best_iteration or None)

    def contributions(self, features: np.ndarray) -> list[dict[str, float]]:
        """Per row, each signal's share of the score (SHAP values summed per signal, plus 'bias'): they
        add up to the score."""
        shap = self.booster.predict(features, num_iteration=self.booster.best_iteration or None, pred_contrib=True)
        out = []
        for row in np.atleast_2d(shap):
            parts: dict[str, float] = {}
            for name, value in zip(self.feature_names, row[:-1]):
                key = self.feature_signal[name]
                parts[key] = parts.get(key, 0.0) + float(value)
            parts["bias"] = float(row[-1])
            out.append(parts)
        return out

    def save(self, folder: Path) -> dict[str, Any]:
        self.booster.save_model(str(folder / "ranker.txt"), num_iteration=self.booster.best_iteration or None)
        return {"feature_names": self.feature_names, "feature_signal": self.feature_signal,
                "config": asdict(self.config), "report": self.report}

    @classmethod
    def load(cls, folder: Path, saved: dict[str, Any]) -> "LearnedBlend":
        lgb = _lightgbm()
        path = folder / "ranker.txt"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the retriever was saved with a learned blend; fit and "
                                    "save it again (promptrec retriever fit).")
        booster = lgb.Booster(model_file=str(path))
        return cls(saved["feature_names"], saved["feature_signal"], RankerConfig.from_dict(saved["config"]), booster,
                   saved.get("report", {}))

    def describe(self) -> dict[str, Any]:
        return json.loads(json.dumps({"config": asdict(self.config), **self.report}, default=str))


def _smoothed(values: list[float], window: int) -> np.ndarray:
    """Centred moving average (shorter at the ends)."""
    v = np.asarray(values, dtype=float)
    half = window // 2
    csum = np.concatenate([[0.0], np.cumsum(v)])
    lo = np.maximum(np.arange(len(v)) - half, 0)
    hi = np.minimum(np.arange(len(v)) + half + 1, len(v))
    return (csum[hi] - csum[lo]) / (hi - lo)


def _best_round(values: list[float], window: int) -> int:
    """1-based round with the best smoothed stop-set metric (the first of equals)."""
    return int(np.argmax(_smoothed(values, window))) + 1


def _smoothed_early_stopping(config: RankerConfig, curve: dict[str, Any]):
    """Stop when the smoothed stop-set NDCG@10 has not improved for ``early_stopping_rounds`` rounds."""
    lgb = _lightgbm()

    def callback(env):
        values = curve.get("stop", {}).get("ndcg@10", [])
        if len(values) > config.early_stopping_rounds + config.stop_window // 2:
            # rounds whose smoothing window is complete
            settled = _smoothed(values, config.stop_window)[:len(values) - config.stop_window // 2]
            if len(settled) - 1 - int(np.argmax(settled)) >= config.early_stopping_rounds:
                raise lgb.callback.EarlyStopException(_best_round(values, config.stop_window) - 1, [])
    callback.order = 30  # after record_evaluation (order 20)
    return callback


def _lightgbm():
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - lightgbm is a dependency
        raise ImportError("the learned blend needs LightGBM: pip install lightgbm (or tune with "
                          "method='coordinate').") from exc
    return lightgbm
