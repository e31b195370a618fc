"""A batch run's output folder: one Parquet part per finished batch (written whole, then renamed), a
manifest of the settings (a resumed run must match it), and the report. ``pandas.read_parquet(folder)``
reads all parts (files starting with ``_`` are not data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST, REPORT = "_manifest.json", "_report.json"


def part_name(batch_id: int) -> str:
    return f"part-{batch_id:06d}.parquet"


class BatchOutput:
    def __init__(self, folder: str | Path, manifest: dict[str, Any], overwrite: bool = False):
        self.folder = Path(folder)
        if overwrite and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / MANIFEST
        if path.exists():
            found = json.loads(path.read_text())
            if found != manifest:
                changed = sorted(k for k in set(found) | set(manifest) if found.get(k) != manifest.get(k))
                raise ValueError(f"{self.folder} holds a batch run with other settings ({', '.join(changed)}); "
                                 "rerun with the same settings to resume it, or pass --overwrite / another --out")
        else:
            path.write_text(json.dumps(manifest, indent=2, sort_keys=True))

    def done(self) -> set[int]:
        """Batches whose part file is complete (parts are renamed into place only when whole)."""
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("part-*.parquet")}

    def write_part(self, batch_id: int, parquet: bytes) -> None:
        tmp = self.folder / f".{part_name(batch_id)}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(parquet)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / part_name(batch_id))

    def write_report(self, report: dict[str, Any]) -> None:
        (self.folder / REPORT).write_text(json.dumps(report, indent=2, default=str))

    def read(self) -> pd.DataFrame:
        """Every finished batch's rows, in batch order."""
        parts = sorted(self.folder.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()
