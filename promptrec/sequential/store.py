"""Trained sequential models on disk: ``model.pt`` (weights) and ``manifest.json`` (settings, data
fingerprint, training summary, versions), cached by fingerprint so an evaluation trains each model
once and the retriever's blend and the baseline share it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from promptrec import __version__
from promptrec.sequential.config import SASRecConfig
from promptrec.sequential.ensemble import SASRecEnsemble, build_model
from promptrec.sequential.model import SASRec

MANIFEST = "manifest.json"
# setting -> the value that trains as before it existed
LATER_SETTINGS = {"final_epochs": 0, "seeds": 1, "item_init": "random", "time_init": "random"}
WEIGHTS = "model.pt"


def cache_root() -> Path:
    """``$PROMPTREC_CACHE/sequential`` (default ``~/.cache/promptrec/sequential``)."""
    return Path(os.environ.get("PROMPTREC_CACHE", Path.home() / ".cache" / "promptrec")) / "sequential"


def fingerprint(config: SASRecConfig, n_items: int, users: np.ndarray, codes: np.ndarray, times: np.ndarray,
                timezone: str, item_vectors: np.ndarray | None = None) -> str:
    """Hash of everything a trained model depends on: settings, catalogue size, training events (and the
    item vectors it starts from, with ``item_init="text"``). Settings added later are left out at the value
    that gives what models trained before them were, so those stay cached; so is ``time_init`` for a model
    without time embeddings."""
    settings = {k: v for k, v in config.to_dict().items() if not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    if not config.time_aware:
        settings.pop("time_init", None)
    h = hashlib.sha256(json.dumps([settings, n_items, timezone, __version__], sort_keys=True).encode())
    arrays = [np.asarray(users).astype(str), codes, times]
    if config.item_init == "text" and item_vectors is not None:
        arrays.append(np.asarray(item_vectors, dtype=np.float32))
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else "\0".join(a).encode())
    return h.hexdigest()[:20]


def save_model(model: SASRec | SASRecEnsemble, folder: str | Path, summary: dict[str, Any],
               extra: dict[str, Any] | None = None) -> Path:
    """Write weights and manifest atomically (a temporary folder renamed into place)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    torch.save(model.state_dict(), tmp / WEIGHTS)
    manifest = {"model": "SASRec", "config": model.config.to_dict(), "n_items": model.n_items,
                "stop_reason": summary.get("stop_reason"), "training": summary, "promptrec_version": __version__, "torch_version": torch.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | (extra or {})
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_model(folder: str | Path) -> tuple[SASRec | SASRecEnsemble, dict[str, Any]]:
    """A saved model (in eval mode) and its manifest."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"no trained sequential model at {folder}; train one with "
                                "`promptrec train-sequential DATA --out FOLDER`.")
    manifest = json.loads((folder / MANIFEST).read_text())
    # a manifest written before a setting existed: the model was trained as that setting's LATER_SETTINGS value
    model = build_model(manifest["n_items"], SASRecConfig.from_dict(LATER_SETTINGS | manifest["config"]))
    model.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    model.eval()
    return model, manifest
