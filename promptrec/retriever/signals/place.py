"""Place: how far each item is from where the user is, and how busy its area is.

Where the user is: the request's location if it has one, else the place of the user's last
event. Distance decays as -log(1 + d / d0), with d0 fitted from the data: the median distance
between a user's consecutive events less than a day apart in training.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from promptrec.retriever.signals.base import DAY_NS, FitData, Query, Signal, recency_weights

EARTH_KM = 6371.0
FOREVER_NS = 1e7 * DAY_NS
MAX_AREA_PAIRS = 25_000_000  # above this many pairs of places within the scale, area popularity is skipped
log = logging.getLogger("promptrec.place")


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def on_sphere(coords: np.ndarray) -> np.ndarray:
    """(lat, lon) degrees -> points on the unit sphere, where Euclidean order is great-circle order."""
    lat, lon = np.radians(coords[:, 0]), np.radians(coords[:, 1])
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def consecutive_pairs(data: FitData, max_gap_hours: float) -> sp.csr_matrix:
    """(items x items) int64 counts of consecutive events of a user (an item, the user's next item) less than
    ``max_gap_hours`` apart. Sums over users: a log split by user adds up to the same."""
    u, c, t, n = data.train_users, np.asarray(data.train_codes, dtype=np.int64), data.train_times, data.n_items
    if t is None or len(c) < 2:
        return sp.csr_matrix((n, n), dtype=np.int64)
    same = (u[1:] == u[:-1]) & ((t[1:] - t[:-1]) < max_gap_hours * 3600e9)
    m = sp.csr_matrix((np.ones(int(same.sum()), np.int64), (c[:-1][same], c[1:][same])), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


def median_distance(pairs: sp.csr_matrix, coords: np.ndarray) -> float:
    """The median distance (km) over the pairs of places counted in ``pairs`` (each pair as often as counted;
    pairs at the same place or without coordinates left out), as ``np.median`` of every pair's distance gives
    it; 1.0 where there is none."""
    pairs = sp.csr_matrix(pairs)
    a = np.repeat(np.arange(pairs.shape[0]), np.diff(pairs.indptr))
    b, w = pairs.indices, np.asarray(pairs.data, dtype=np.int64)
    d = haversine_km(coords[a, 0], coords[a, 1], coords[b, 0], coords[b, 1])
    keep = np.isfinite(d) & (d > 0) & (w > 0)
    d, w = d[keep], w[keep]
    if not len(d):
        return 1.0
    order = np.argsort(d, kind="stable")
    d, ends = d[order], np.cumsum(w[order])
    total = int(ends[-1])
    middle = d[np.searchsorted(ends, [(total - 1) // 2, total // 2], side="right")]
    return float(np.mean(middle[:1] if total % 2 else middle))  # np.median: the middle one, or the mean of two


class PlaceSignal(Signal):
    scores_items = True

    def __init__(self, scale_km: float | None = None, half_life_days: float = 14.0, max_gap_hours: float = 24.0):
        super().__init__("place", {"scale_km": scale_km, "half_life_days": half_life_days,
                                   "max_gap_hours": max_gap_hours})
        self.coords: np.ndarray | None = None
        self.neighbours: sp.csr_matrix | None = None

    def fit(self, data: FitData, pairs: sp.csr_matrix | None = None) -> None:
        """``pairs``: the :func:`consecutive_pairs` of the training events (or their sums over shards of users:
        promptrec.retriever.ray_fit); by default counted from ``data``."""
        if data.item_coords is None or not np.isfinite(data.item_coords).all(axis=1).any():
            raise ValueError("the place signal needs item coordinates (item attributes latitude/longitude or "
                             "lat/lon); leave 'place' out of signals for items without them.")
        self.coords = np.asarray(data.item_coords, dtype=np.float64)
        if self.params["scale_km"] is None:
            if pairs is None and data.train_times is not None:
                pairs = consecutive_pairs(data, self.params["max_gap_hours"])
            self.params["scale_km"] = 1.0 if pairs is None else median_distance(pairs, self.coords)
        self.neighbours = self._neighbours(self.params["scale_km"])

    def _neighbours(self, radius_km: float) -> sp.csr_matrix | None:
        """(items x items) 1 where two located places are within ``radius_km`` (great-circle; each place is its
        own neighbour). Pairs come from a k-d tree over points on the sphere (chord length is monotone in
        great-circle distance), then the haversine distance decides, so the cost follows the number of pairs,
        not items squared. None, with a warning, above ``MAX_AREA_PAIRS`` pairs (area popularity is skipped)."""
        from scipy.spatial import cKDTree

        n = len(self.coords)
        located = np.flatnonzero(np.isfinite(self.coords).all(axis=1))
        tree = cKDTree(EARTH_KM * on_sphere(self.coords[located]))
        chord = 2 * EARTH_KM * np.sin(min(radius_km / (2 * EARTH_KM), np.pi / 2)) * (1 + 1e-9)  # a hair wider
        pairs = (int(tree.count_neighbors(tree, chord)) - len(located)) // 2
        if pairs > MAX_AREA_PAIRS:
            log.warning("place: %d pairs of places lie within %.2f km of each other (limit %d): area popularity "
                        "is skipped; raise promptrec.retriever.signals.place.MAX_AREA_PAIRS if memory allows "
                        "(the matrix keeps 16 bytes a pair; building it takes about 5 times that).", pairs,
                        radius_km, MAX_AREA_PAIRS)
            return None
        ij = tree.query_pairs(chord, output_type="ndarray")
        a, b = located[ij[:, 0]], located[ij[:, 1]]
        near = haversine_km(self.coords[a, 0], self.coords[a, 1], self.coords[b, 0], self.coords[b, 1]) <= radius_km
        a, b = a[near], b[near]
        del ij, near
        rows, cols = np.concatenate([a, b, located]), np.concatenate([b, a, located])
        # ones as one byte each (products with float vectors are the same numbers, summed in the same order)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))

    def _origin(self, q: Query) -> tuple[float, float] | None:
        if q.location is not None:
            return q.location
        if len(q.codes) and np.isfinite(self.coords[q.codes[-1]]).all():
            return tuple(self.coords[q.codes[-1]])
        return None

    def _distances(self, queries: list[Query], coords: np.ndarray) -> np.ndarray:
        """(batch x items) km from each query's origin to ``coords`` (NaN rows where there is none), in one pass."""
        origins = np.array([self._origin(q) or (np.nan, np.nan) for q in queries], dtype=np.float64).reshape(-1, 2)
        return haversine_km(origins[:, :1], origins[:, 1:], coords[None, :, 0], coords[None, :, 1])

    def _closeness(self, dist: np.ndarray) -> np.ndarray:
        """-log(1 + d / d0); items without coordinates rank below every located item (0 where no origin)."""
        out = -np.log1p(dist / self.params["scale_km"])
        lowest = np.nanmin(np.where(np.isnan(out), np.inf, out), axis=1, keepdims=True)
        out = np.where(np.isnan(out), np.where(np.isfinite(lowest), lowest - 1.0, 0.0), out)
        return out

    def score(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> np.ndarray:
        return self._closeness(self._distances(queries, self.coords if items is None else self.coords[items]))

    def features(self, queries: list[Query], log: Any, items: np.ndarray | None = None) -> dict[str, np.ndarray]:
        coords = self.coords if items is None else self.coords[items]
        dist = self._distances(queries, coords)
        centres = np.full((len(queries), 2), np.nan)
        area = np.zeros((len(queries), len(coords)))
        cache: dict[int, np.ndarray] = {}
        for i, q in enumerate(queries):
            known = np.isfinite(self.coords[q.codes]).all(axis=1) if len(q.codes) else np.zeros(0, bool)
            if known.any():
                w = recency_weights(q.times[known], q.now_ns, self.params["half_life_days"])
                centres[i] = (w @ self.coords[q.codes[known]]) / w.sum()
            if self.neighbours is not None:
                slot = log.slot(q.now_ns)
                if slot not in cache:
                    cache[slot] = np.log1p(self.neighbours @ log.decayed_counts(q.now_ns, FOREVER_NS, FOREVER_NS))
                area[i] = cache[slot] if items is None else cache[slot][items]
        centroid = haversine_km(centres[:, :1], centres[:, 1:], coords[None, :, 0], coords[None, :, 1])
        return {"place": self._closeness(dist),
                "place_km": np.log1p(dist), "place_centroid_km": np.log1p(centroid), "place_area_events": area}

    def state(self) -> dict[str, Any]:
        out = {"coords": self.coords}
        if self.neighbours is not None:
            out["neighbours"] = self.neighbours
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self.coords, self.neighbours = state["coords"], state.get("neighbours")
