"""Per-target results on disk, so an interrupted evaluation resumes where it stopped.

One JSON-lines file per (pipeline, protocol, part, pipeline fingerprint) under
``<results>/cache/``; records are appended batch by batch and flushed, and a half-written last
line (a kill mid-write) is ignored on reload. The folder is stamped with the fingerprint of what
every pipeline shares (data, split, protocols, seeds, reranker defaults): results of another such
config are never mixed in, nor those of other data under the same config (the split's cut times and sizes
are checked once the data is read: a file replaced in place, or ``test_days`` on a later period); a pipeline's
own settings (and its retriever's, for a reranker) are in its files' names, so adding or editing one pipeline
recomputes that one only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

from promptrec.eval.config import ConfigError


class RecordCache:
    def __init__(self, folder: str | Path, fingerprint: str, resume: bool = True):
        self.folder = Path(folder)
        stamp = self.folder / "FINGERPRINT"
        if self.folder.exists():
            old = stamp.read_text().strip() if stamp.exists() else None
            if not resume:
                shutil.rmtree(self.folder)
            elif old != fingerprint:
                raise ConfigError(f"{self.folder} holds results of a different config (fingerprint {old}, this "
                                  f"config {fingerprint}); rerun with --fresh to discard them, or choose another --out.")
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint + "\n")

    def check_data(self, stamp: dict[str, Any]) -> None:
        """Refuse a folder whose records were computed on other data (``stamp``: the data's digest and what the
        split made of it); a folder without a stamp (a new one) takes this one, and a stamp written before a key
        existed (an older version's, without the digest) is judged on the keys it has."""
        path = self.folder / "DATA.json"
        stamp = json.loads(json.dumps(stamp, default=str))
        if path.exists():
            old = json.loads(path.read_text())
            changed = {k: (old[k], stamp.get(k)) for k in sorted(old) if old[k] != stamp.get(k)}
            if changed:
                raise ConfigError(f"{self.folder} holds results computed on other data (cached -> now: {changed}); "
                                  "rerun with --fresh to discard them, or choose another --out.")
        path.write_text(json.dumps(stamp, indent=1) + "\n")

    def path(self, *key: str) -> Path:
        return self.folder / f"{'__'.join(_slug(k) for k in key)}.jsonl"

    def discard(self, pipeline: str) -> int:
        """Delete every record file of ``pipeline`` (all protocols, parts and settings); returns how many."""
        files = list(self.folder.glob(f"{_slug(pipeline)}__*.jsonl"))
        for f in files:
            f.unlink()
        return len(files)

    def load(self, *key: str) -> dict[int, dict[str, Any]]:
        """Records by target index (later lines win)."""
        path = self.path(*key)
        out: dict[int, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption
                out[int(rec["i"])] = rec
        return out

    def append(self, key: tuple[str, ...], records: Iterable[dict[str, Any]]) -> None:
        path = self.path(*key)
        with path.open("a") as f:
            text = "".join(json.dumps(r) + "\n" for r in records)
            if path.stat().st_size and not path.read_text().endswith("\n"):
                text = "\n" + text  # never glue a record to a cut-short line
            f.write(text)
            f.flush()


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-")
