"""MovieLens 100K (u.data, u.item) and 1M (ratings.dat, movies.dat) loaders.

The files are read from where the user keeps them; promptrec never copies them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from promptrec.data.catalog import Catalog
from promptrec.data.dataset import Dataset
from promptrec.data.domain import DOMAINS
from promptrec.data.interactions import Interactions
from promptrec.data.problems import DataError, ErrorPolicy, LoadReport, Problem, missing_file
from promptrec.data.validate import clean_events, clean_items

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _need(folder: Path, name: str, fmt: str) -> Path:
    path = folder / name
    if not path.exists():
        raise missing_file(str(path), f"{fmt} file '{name}'",
                           f"point to the folder that holds {name} (e.g. ../shared/data/ml-100k).")
    return path


def _read_delimited(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    """Read a headerless file split on a literal separator; rows with the wrong field count are an error."""
    lines = path.read_text(encoding="latin-1").splitlines()
    parts = [line.split(sep) for line in lines]
    bad = [i + 1 for i, p in enumerate(parts) if len(p) != len(names) and lines[i].strip()]
    if bad:
        raise DataError(Problem(str(path), None, "bad_row", f"expected {len(names)} fields separated by {sep!r}.",
                                "check that the file is the unmodified MovieLens file.", tuple(bad[:5]), len(bad)))
    rows = [p for p, line in zip(parts, lines) if line.strip()]
    frame = pd.DataFrame(rows, columns=names, dtype=str)
    frame.index = np.array([i + 1 for i, line in enumerate(lines) if line.strip()])
    return frame


def load_movielens_100k(folder: str | Path, *, errors: ErrorPolicy = "raise", seed: int = 0,
                        timezone: str = "UTC") -> Dataset:
    """MovieLens 100K: ratings become events (type 'rating', the rating kept as context)."""
    folder = Path(folder)
    report = LoadReport()
    genre_names = ML100K_GENRES
    if (folder / "u.genre").exists():
        pairs = [l.split("|") for l in (folder / "u.genre").read_text(encoding="latin-1").splitlines() if l.strip()]
        genre_names = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    item_path = _need(folder, "u.item", "MovieLens 100K")
    raw_items = _read_delimited(item_path, "|", ["item_id", "title", "release_time", "video_release", "url"]
                                + [f"g{i}" for i in range(len(genre_names))])
    flags = raw_items[[f"g{i}" for i in range(len(genre_names))]].to_numpy() == "1"
    items = pd.DataFrame({
        "item_id": raw_items["item_id"], "title": raw_items["title"],
        "categories": [tuple(g for g, f in zip(genre_names, row) if f) for row in flags],
        "release_time": raw_items["release_time"], "url": raw_items["url"],
    })
    items = clean_items(items, file=str(item_path), row_numbers=raw_items.index.to_numpy(), report=report,
                        errors=errors, release_format="%d-%b-%Y", timezone=timezone)
    return _with_ratings("movielens-100k", folder, "u.data", "\t", Catalog(items), report, errors, seed, timezone)


def load_movielens_1m(folder: str | Path, *, errors: ErrorPolicy = "raise", seed: int = 0,
                      timezone: str = "UTC") -> Dataset:
    """MovieLens 1M: ``::``-separated ratings.dat and movies.dat (genres split on '|')."""
    folder = Path(folder)
    report = LoadReport()
    movie_path = _need(folder, "movies.dat", "MovieLens 1M")
    raw_items = _read_delimited(movie_path, "::", ["item_id", "title", "genres"])
    years = raw_items["title"].str.extract(_YEAR)[0]
    items = pd.DataFrame({
        "item_id": raw_items["item_id"], "title": raw_items["title"],
        "categories": [tuple(g for g in s.split("|") if g) for s in raw_items["genres"]],
        "release_time": years.fillna("").map(lambda y: f"{y}-01-01" if y else ""),
    })
    catalog = Catalog(clean_items(items, file=str(movie_path), row_numbers=raw_items.index.to_numpy(),
                                  report=report, errors=errors, timezone=timezone))
    return _with_ratings("movielens-1m", folder, "ratings.dat", "::", catalog, report, errors, seed, timezone)


def _with_ratings(name: str, folder: Path, file: str, sep: str, catalog: Catalog, report: LoadReport,
                  errors: ErrorPolicy, seed: int, timezone: str) -> Dataset:
    """Read a MovieLens ratings file (user, item, rating, timestamp) against ``catalog``: ratings become events
    of type 'rating', the rating kept as context."""
    catalog.domain = DOMAINS["movies"]
    data_path = _need(folder, file, name)
    raw = _read_delimited(data_path, sep, ["user_id", "item_id", "rating", "timestamp"])
    events = clean_events(raw.assign(event_type="rating"), file=str(data_path), row_numbers=raw.index.to_numpy(),
                          report=report, errors=errors, known_items=catalog.frame.index, timezone=timezone)
    events["rating"] = pd.to_numeric(events["rating"], errors="coerce")
    return Dataset(name, catalog, Interactions(events, seed=seed, timezone=timezone), report, source=str(folder))
