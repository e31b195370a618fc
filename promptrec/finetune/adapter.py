"""Compatibility path: the adapter manifest and its serving checks live in :mod:`promptrec.reranker.adapter`
(the reranker serves adapters; fine-tuning, above it, writes them)."""

from promptrec.reranker.adapter import (MANIFEST, AdapterError, base_model_id, check_adapter, max_lora_rank,
                                        read_manifest, template_drift, write_manifest)

__all__ = ["MANIFEST", "AdapterError", "base_model_id", "check_adapter", "max_lora_rank", "read_manifest",
           "template_drift", "write_manifest"]
