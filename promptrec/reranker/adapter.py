"""The adapter manifest (``promptrec_adapter.json``) and the checks made when an adapter is served.

The manifest records the base model (name and a hash of its config.json), the prompt
templates' hashes, the label scheme, the data split, the training config and the validation
metrics. Serving an adapter on another base model is an error; on edited templates, a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from promptrec import __version__
from promptrec.models import resolve_model
from promptrec.templates import TemplateError

MANIFEST = "promptrec_adapter.json"
log = logging.getLogger("promptrec.finetune")


class AdapterError(ValueError):
    """An adapter that cannot be served with the requested model."""


def base_model_id(model: str) -> dict[str, str]:
    """The base model's name and a hash of its config.json (what identifies its weights' shapes)."""
    path = Path(resolve_model(model))
    config = path / "config.json"
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.exists() else ""
    return {"name": path.name, "config_sha256": digest}


def write_manifest(folder: str | Path, data: dict[str, Any]) -> Path:
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps({"promptrec_version": __version__, **data}, indent=2, default=str))
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise AdapterError(f"{folder} is not a promptrec adapter ({MANIFEST} missing); train one with "
                           "`promptrec finetune`, or point to the folder it wrote.")
    return json.loads(path.read_text())


def check_adapter(folder: str | Path, model: str) -> dict[str, Any]:
    """The manifest, after checking that ``model`` is the adapter's base model."""
    manifest = read_manifest(folder)
    want, have = manifest["base_model"], base_model_id(model)
    if want["config_sha256"] != have["config_sha256"]:
        raise AdapterError(f"adapter {folder} was trained on base model '{want['name']}', not '{have['name']}' "
                           f"(config {want['config_sha256']} vs {have['config_sha256']}); serve it with "
                           f"model='{want['name']}' or train an adapter for this model.")
    return manifest


def max_lora_rank(manifests: list[dict[str, Any]]) -> int:
    """The ``max_lora_rank`` a vLLM engine needs to serve these adapters (vLLM's smallest setting is 8)."""
    return max([8, *(int(m["training"]["rank"]) for m in manifests)])


def template_drift(manifest: dict[str, Any], library: Any) -> list[str]:
    """Templates whose text differs from the ones the adapter was trained on (each logged as a warning)."""
    changed = []
    for name, digest in manifest.get("templates", {}).items():
        try:
            now = library.source_hash(name)
        except TemplateError:  # a template the current prompts folders do not have
            now = None
        if now != digest:
            changed.append(name)
            log.warning("template %s differs from the one the adapter was trained on; its ranking may suffer.", name)
    return changed
