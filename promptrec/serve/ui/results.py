"""Read-only access to a results folder (eval/results): reports and their figures, nothing else.

Only files found by listing the folder can be read (``*.md`` and ``*.png``, at most one folder deep, no
hidden names, no links leading outside): a requested path is looked up in that listing, never joined onto
the folder, so ``..`` or an absolute path names nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KINDS = {".md": "text/markdown; charset=utf-8", ".png": "image/png"}
MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ResultFile:
    path: str  # relative to the results folder, '/'-separated
    kind: str  # "md" or "png"
    size: int


class ResultsFolder:
    """The reports (``*.md``) and figures (``*.png``) of ``root`` and its direct subfolders."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root).resolve() if root is not None and Path(root).is_dir() else None

    def files(self) -> list[ResultFile]:
        if self.root is None:
            return []
        out = []
        for pattern in ("*", "*/*"):
            for path in sorted(self.root.glob(pattern)):
                rel = path.relative_to(self.root)
                if (path.suffix.lower() not in KINDS or any(p.startswith(".") for p in rel.parts)
                        or not path.is_file() or not path.resolve().is_relative_to(self.root)):
                    continue
                out.append(ResultFile(rel.as_posix(), path.suffix.lower()[1:], path.stat().st_size))
        return out

    def read(self, rel: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a listed file, or None for anything else."""
        listed = {f.path: f for f in self.files()}
        found = listed.get(rel)
        if found is None or found.size > MAX_BYTES:
            return None
        path = self.root / found.path
        return path.read_bytes(), KINDS["." + found.kind]
