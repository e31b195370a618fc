"""Write a dataset as RecBole sequence files: each user's items in order, without times.

    <name>.inter   user_id:token  item_id_list:token_seq  item_id:token   (the history, then the last item)
    <name>.item    item_id:token  title:token_seq  categories:token_seq

What other tools (RecBole, papers on LLM ranking) read, and what :func:`promptrec.load_dataset` reads back as a
log whose times are absent (``times_known=False``): a way to check how a model does on the order alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from promptrec.data.dataset import Dataset

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SequenceFiles:
    """The files written and what they hold."""

    inter: Path
    item: Path
    users: int
    events: int


def _text(value: object) -> str:
    """One line of text: tabs and newlines would break the file's columns."""
    return "" if value is None or (isinstance(value, float) and value != value) else _SPACE.sub(" ", str(value)).strip()


def _refuse_spaces(ids: pd.Series, what: str) -> None:
    bad = ids[ids.str.contains(r"\s", regex=True)]
    if len(bad):
        raise ValueError(f"{len(bad)} {what} ids contain spaces (e.g. {bad.iloc[0]!r}), which RecBole's token_seq "
                         "fields use as separators; map them to ids without spaces first.")


def write_recbole_sequences(dataset: Dataset, folder: str | Path, name: str | None = None) -> SequenceFiles:
    """``folder/<name>.inter`` (one row per user: all but the last item, then the last) and ``<name>.item``."""
    folder = Path(folder)
    name = name or dataset.name
    frame = dataset.interactions.frame
    _refuse_spaces(frame["user_id"], "user")
    _refuse_spaces(frame["item_id"], "item")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for user, items in frame.groupby("user_id", sort=False, observed=True)["item_id"]:  # the log is in each user's time order
        ids = items.tolist()
        rows.append(f"{user}\t{' '.join(ids[:-1])}\t{ids[-1]}")
    inter = folder / f"{name}.inter"
    inter.write_text("user_id:token\titem_id_list:token_seq\titem_id:token\n" + "\n".join(rows) + "\n")
    items = dataset.catalog.frame.reset_index()
    _refuse_spaces(items["item_id"].astype(str), "item")
    categories = items["categories"] if "categories" in items.columns else pd.Series([()] * len(items))
    lines = [f"{i}\t{_text(t)}\t{' '.join(_text(c).replace(' ', '_') for c in cats)}"
             for i, t, cats in zip(items["item_id"], items["title"], categories)]
    item = folder / f"{name}.item"
    item.write_text("item_id:token\ttitle:token_seq\tcategories:token_seq\n" + "\n".join(lines) + "\n")
    return SequenceFiles(inter, item, len(rows), len(frame))
