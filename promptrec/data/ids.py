"""Id columns as pandas categoricals with sorted string categories: four bytes a row, not a string object.

Categories are kept sorted, so comparing codes orders rows as comparing the strings would, and only the
values a frame holds are categories (a subset drops the others), so ``value_counts`` and ``groupby`` see
the frame's own ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ID_COLUMNS = ("user_id", "item_id", "event_type")


def _sorted_strings(categories: pd.Index) -> bool:
    return pd.api.types.is_string_dtype(categories) and categories.is_monotonic_increasing


def is_sorted_category(values: pd.Series) -> bool:
    """Whether ``values`` is already a categorical of strings with sorted categories."""
    dtype = values.dtype
    return isinstance(dtype, pd.CategoricalDtype) and not dtype.ordered and _sorted_strings(dtype.categories)


def as_sorted_category(values: pd.Series) -> pd.Series:
    """``values`` as a categorical of strings with sorted categories (a no-op when already one)."""
    if is_sorted_category(values):
        return values
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if pd.api.types.is_string_dtype(cats) and cats.is_unique:
            text = pd.Index(cats.astype(str))
            if text.is_unique:
                return pd.Series(from_codes(values.cat.codes.to_numpy(), text.to_numpy(dtype=object)),
                                 index=values.index, name=values.name)
    return values.astype(str).astype("category")


def from_codes(codes: np.ndarray, categories: np.ndarray) -> pd.Categorical:
    """A categorical of ``categories[codes]`` (-1: missing) keeping only the used categories, sorted."""
    codes = np.asarray(codes)
    categories = np.asarray(categories, dtype=object)
    used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0 if len(codes) else np.zeros(
        len(categories), bool)
    kept = categories[used]
    order = np.argsort(kept, kind="stable") if len(kept) else np.array([], np.int64)
    rank = np.empty(len(kept), np.int64)
    rank[order] = np.arange(len(kept))
    remap = np.full(len(categories) + 1, -1, np.int32)  # last slot: code -1 stays missing
    remap[:-1][used] = rank
    new = remap[codes] if len(codes) else codes.astype(np.int32)
    return pd.Categorical.from_codes(new, categories=pd.Index(kept[order], dtype="str"), validate=False)


def compact(values: pd.Series) -> pd.Series:
    """A categorical without the categories no row holds (cheap: one pass over the codes)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    codes = values.cat.codes.to_numpy()
    cats = values.cat.categories
    if len(codes) and len(cats) <= len(codes) and (np.bincount(codes[codes >= 0], minlength=len(cats)) > 0).all():
        return values
    return pd.Series(from_codes(codes, cats.to_numpy(dtype=object)), index=values.index, name=values.name)


def id_codes(values: pd.Series) -> np.ndarray:
    """Integer codes standing for the ids (equal ids, equal codes): a categorical's own, else factorized."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy()
    return pd.factorize(values)[0]


def align_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Frames whose categorical id columns share one sorted category set, so ``pd.concat`` keeps them
    categorical (instead of a string object per row)."""
    out = list(frames)
    for col in ID_COLUMNS:
        if len(out) < 2 or not all(col in f.columns and isinstance(f[col].dtype, pd.CategoricalDtype) for f in out):
            continue
        union = pd.Index(sorted(set().union(*(f[col].cat.categories for f in out))), dtype="str")
        out = [f.assign(**{col: f[col].cat.set_categories(union)}) for f in out]
    return out
