"""A LoRA adapter merged into its base model's weights: a plain model folder any backend serves at base speed.

vLLM serves adapters with ``LoRARequest`` (the way on GPUs, many adapters on one engine), but its CPU
LoRA kernels are several times slower than the base model (measured: 6.5 s vs 1.6 s per 20-candidate
request). Merging removes that cost: ``W' = W + (alpha / r) * B @ A`` once, with peft's
``merge_and_unload``, then the merged folder loads like any model. The folder carries
``promptrec_merged.json`` naming the adapter's fingerprint, so a reranker can tell that a backend
already serves that adapter. Merged folders are cached under ``$PROMPTREC_HOME/models/merged``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from promptrec.reranker.adapter import check_adapter, read_manifest

MERGED = "promptrec_merged.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
log = logging.getLogger("promptrec.finetune")


def adapter_fingerprint(adapter: str | Path) -> str:
    """A hash of the adapter's config and weights (what the merged weights depend on)."""
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = Path(adapter) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {adapter} is not a LoRA adapter folder written by peft.")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def merged_from(model_path: str | Path | None) -> dict[str, Any] | None:
    """The merge record of a model folder (None for a plain model)."""
    path = Path(model_path) / MERGED if model_path else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def serves_merged(model_path: str | Path | None, adapter: str | Path) -> bool:
    """Whether the model folder is the base model with exactly this adapter merged in."""
    record = merged_from(model_path)
    return record is not None and record["adapter_sha256"] == adapter_fingerprint(adapter)


def merge_adapter(adapter: str | Path, model: str | None = None, out: str | Path | None = None) -> Path:
    """The adapter merged into its base model, written to ``out`` (default: the cache, reused when the
    adapter's weights have not changed). ``model``: the base model, by default the one the manifest names."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promptrec.models import cache_dir, resolve_model

    name = model or read_manifest(adapter)["base_model"]["name"]
    manifest = check_adapter(adapter, name)
    base = resolve_model(name)
    digest = adapter_fingerprint(adapter)
    out = Path(out) if out is not None else cache_dir() / "merged" / f"{Path(base).name}-{digest}"
    if serves_merged(out, adapter):
        return out
    log.info("merging adapter %s into %s -> %s", adapter, base, out)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")  # workers merging at once do not collide
    shutil.rmtree(tmp, ignore_errors=True)
    model_obj = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model_obj, str(adapter)).merge_and_unload()
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(tmp)
    (tmp / MERGED).write_text(json.dumps({"adapter": str(Path(adapter).resolve()), "adapter_sha256": digest,
                                          "base_model": manifest["base_model"], "labels": manifest.get("labels")},
                                         indent=2))
    if serves_merged(out, adapter):  # another process finished the same merge meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # complete folders only: an interrupted merge leaves a .partial folder, never a broken model
    return out


ADAPTER_MODES = ("auto", "lora", "merged")


def adapter_serving(adapter: str | Path, mode: str, backend: Any) -> str:
    """How a reranker serves ``adapter`` on ``backend`` (a name or a running backend): "lora" (the backend's
    adapter support: vLLM's LoRARequest, peft) or "merged" (a model folder with the adapter in its weights).
    "auto" merges for vLLM without a CUDA GPU, where its LoRA kernels are slow; a running backend is taken as
    it is: merged when its weights are this adapter merged, else LoRA."""
    if mode not in ADAPTER_MODES:
        raise ValueError(f"unknown adapter_mode {mode!r}; choose one of {ADAPTER_MODES}.")
    if not isinstance(backend, str):
        if serves_merged(getattr(backend, "model_path", None), adapter):
            return "merged"
        if mode == "merged":
            raise ValueError(f"the backend serves {getattr(backend, 'model_path', 'another model')}, not {adapter} "
                             "merged; start it on merge_adapter(adapter) or pass adapter_mode='lora'.")
        return "lora"
    if mode == "auto":
        import torch

        return "merged" if backend == "vllm" and not torch.cuda.is_available() else "lora"
    return mode


def weights_to_load(model: str, adapter: str | Path | None, served: str | None) -> str:
    """What a backend loads to serve ``adapter`` as decided by :func:`adapter_serving`: the merged folder, or
    the base ``model`` (no adapter, or LoRA on top)."""
    return str(merge_adapter(adapter, model)) if adapter is not None and served == "merged" else model
