"""Hugging Face transformers: the reference backend (parity tests, machines without vLLM).

Prompts run one at a time by default (``batch_size=1``), unpadded: in bfloat16 the sums of a forward pass
depend on the batch's shape (measured on SmolLM2-135M, AVX512-BF16/AMX: up to 0.33 in a label's
log-probability between a prompt scored alone and in a padded batch of 8, and still 0.21 in unpadded batches of
equal-length prompts), so a request's answer would depend on the requests beside it. ``batch_size=n`` batches up
to n prompts of the same token length (faster, not batch-invariant in bfloat16).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.models import fast_dtype, resolve_model
from promptrec.reranker.backends.base import Backend, Generation, renormalise


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model: str, *, dtype: str | None = None, batch_size: int = 1, adapter: str | None = None,
                 device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.torch = torch
        self.dtype = dtype or fast_dtype()
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype)).to(device)
        self.model.eval()
        self.batch_size = batch_size
        self.device = device
        self._adapters: dict[str, str] = {}
        self._active: str | None = None
        if adapter:
            self.set_adapter(adapter)

    def set_adapter(self, adapter: str | None) -> None:
        """Load the adapter through peft once; switch between adapters and the base model after that."""
        if adapter is None:
            self._active = None
            return
        from pathlib import Path

        from peft import PeftModel

        path = str(Path(adapter).resolve())
        if path not in self._adapters:
            name = f"adapter{len(self._adapters) + 1}"
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            self.model.eval()
            self._adapters[path] = name
        self._active = self._adapters[path]
        self.model.set_adapter(self._active)

    def _serving(self):
        """The base model when no adapter is active (peft's adapters stay loaded)."""
        import contextlib

        if self._adapters and self._active is None:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def _batches(self, prompts: list[str]):
        """(positions, encoded batch) over prompts of one token length, at most ``batch_size`` at a time: nothing
        is padded, so a prompt's numbers do not depend on which prompts share its call."""
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        by_length: dict[int, list[int]] = {}
        for i, toks in enumerate(ids):
            by_length.setdefault(len(toks), []).append(i)
        for idx in by_length.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                tokens = self.torch.tensor([ids[i] for i in chunk], device=self.device)
                yield chunk, {"input_ids": tokens, "attention_mask": self.torch.ones_like(tokens)}

    def choice_logprobs(self, prompts: list[str], token_ids: list[int]) -> tuple[np.ndarray, list[int]]:
        scores, lengths = np.empty((len(prompts), len(token_ids))), [0] * len(prompts)
        with self.torch.inference_mode(), self._serving():
            for chunk, enc in self._batches(prompts):
                logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :].float()
                scores[chunk] = logits[:, token_ids].cpu().numpy()
                for i in chunk:
                    lengths[i] = int(enc["input_ids"].shape[1])
        return renormalise(scores), lengths

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        out: list[Generation | None] = [None] * len(prompts)
        with self.torch.inference_mode(), self._serving():
            for chunk, enc in self._batches(prompts):
                gen = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
                new = gen[:, enc["input_ids"].shape[1]:]
                for row, i in enumerate(chunk):
                    ids = [t for t in new[row].tolist() if t != self.tokenizer.pad_token_id]
                    out[i] = Generation(self.tokenizer.decode(ids, skip_special_tokens=True),
                                        int(enc["input_ids"].shape[1]), len(ids))
        return out  # type: ignore[return-value]

    def stats(self) -> dict[str, Any]:
        return {}
