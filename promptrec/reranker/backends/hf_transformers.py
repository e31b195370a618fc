"""Hugging Face transformers: the reference backend (parity tests, machines without vLLM)."""

from __future__ import annotations

from typing import Any

import numpy as np

from promptrec.models import fast_dtype, resolve_model
from promptrec.reranker.backends.base import Backend, Generation, renormalise


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model: str, *, dtype: str | None = None, batch_size: int = 8, adapter: str | None = None,
                 device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, dtype or fast_dtype())).to(device)
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
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            yield chunk, enc

    def choice_logprobs(self, prompts: list[str], token_ids: list[int]) -> tuple[np.ndarray, list[int]]:
        rows, lengths = [], []
        with self.torch.inference_mode(), self._serving():
            for _, enc in self._batches(prompts):
                logits = self.model(**enc).logits[:, -1, :].float()
                rows.append(logits[:, token_ids].cpu().numpy())
                lengths += enc["attention_mask"].sum(dim=1).tolist()
        return renormalise(np.concatenate(rows)), [int(n) for n in lengths]

    def generate(self, prompts: list[str], max_tokens: int) -> list[Generation]:
        out: list[Generation] = []
        with self.torch.inference_mode(), self._serving():
            for chunk, enc in self._batches(prompts):
                gen = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
                new = gen[:, enc["input_ids"].shape[1]:]
                for i in range(len(chunk)):
                    ids = [t for t in new[i].tolist() if t != self.tokenizer.pad_token_id]
                    out.append(Generation(self.tokenizer.decode(ids, skip_special_tokens=True),
                                          int(enc["attention_mask"][i].sum()), len(ids)))
        return out

    def stats(self) -> dict[str, Any]:
        return {}
