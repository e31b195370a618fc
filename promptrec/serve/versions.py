"""Model versions: fitted retrievers kept side by side in ``<model dir>/<version>/``, each with a manifest.

A version is written whole into a temporary folder and renamed into place, so a reader (a server watching
the folder) never sees half a version. ``newest()`` skips versions marked rolled back, so a watcher does not
swap a version back in after an operator rolled it back.

    versions = ModelVersions("models/nyc")
    v = versions.write(retriever, manifest)     # -> "20261205T162301Z"
    retriever = versions.load(versions.newest())
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST = "version.json"
ROLLED_BACK = "ROLLED_BACK"


@dataclass(frozen=True)
class VersionManifest:
    """What a model version was fitted on, how, and how well it did on the latest validation days."""

    version: str
    created_at: str  # UTC ISO time
    data_window: dict[str, str]  # first and last event time fitted on
    events: dict[str, int]  # from the original log, from the event store, in all
    store_seq: int  # the event store's rows up to this sequence number are in the model
    fit_seconds: float
    validation: dict[str, Any]  # the tuning objective on the latest days (equal weights -> tuned)
    code_version: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> pd.Timestamp:
        return pd.Timestamp(self.created_at)


def code_version() -> str:
    """promptrec's version, with the git commit when run from a checkout."""
    from promptrec import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


class ModelVersions:
    """The versions under one model folder, oldest first."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def is_versions_folder(path: str | Path) -> bool:
        """Whether ``path`` holds model versions (rather than one saved retriever)."""
        path = Path(path)
        return path.is_dir() and not (path / "retriever.json").exists() and any(
            _is_version(p) for p in path.iterdir())

    def all(self) -> list[str]:
        """Every complete version (a fit still writing its staging folder is not one), oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _is_version(p))

    def usable(self) -> list[str]:
        """Versions not rolled back, oldest first."""
        return [v for v in self.all() if not (self.root / v / ROLLED_BACK).exists()]

    def newest(self) -> str | None:
        usable = self.usable()
        return usable[-1] if usable else None

    def before(self, version: str) -> str | None:
        """The usable version before ``version``, or None."""
        earlier = [v for v in self.usable() if v < version]
        return earlier[-1] if earlier else None

    def manifest(self, version: str) -> VersionManifest:
        data = json.loads((self.root / version / MANIFEST).read_text())
        return VersionManifest(**data)

    def load(self, version: str) -> Any:
        from promptrec.retriever.retriever import TimeAwareRetriever

        return TimeAwareRetriever.load(self.root / version)

    def write(self, retriever: Any, manifest: dict[str, Any]) -> str:
        """Save ``retriever`` as a new version with ``manifest`` (VersionManifest fields but ``version`` and
        ``created_at``, which are set here); returns the version name."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = pd.Timestamp.now(tz="UTC")
        version = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
        while (self.root / version).exists():  # two fits in one millisecond
            time.sleep(0.002)
            now = pd.Timestamp.now(tz="UTC")
            version = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
        staging = self.root / f".{version}.partial-{os.getpid()}"
        retriever.save(staging)
        full = VersionManifest(version=version, created_at=now.isoformat(), **manifest)
        (staging / MANIFEST).write_text(json.dumps(asdict(full), indent=2, default=str))
        os.replace(staging, self.root / version)  # atomic: readers see a whole version or none
        return version

    def mark_rolled_back(self, version: str, reason: str) -> None:
        (self.root / version / ROLLED_BACK).write_text(f"{pd.Timestamp.now(tz='UTC').isoformat()} {reason}\n")

    def remove_partials(self) -> None:
        """Delete staging folders left by a fit that died."""
        for p in self.root.glob(".*.partial-*"):
            shutil.rmtree(p, ignore_errors=True)


def _is_version(path: Path) -> bool:
    """A finished version folder: has its manifest and is not a hidden staging folder (``.<v>.partial-<pid>``)."""
    return path.is_dir() and not path.name.startswith(".") and (path / MANIFEST).exists()

