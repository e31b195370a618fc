"""Compatibility path: merging an adapter into its base model lives in :mod:`promptrec.reranker.merge`
(the reranker serves merged weights; ``promptrec finetune-merge`` calls it)."""

from promptrec.reranker.merge import (ADAPTER_FILES, ADAPTER_MODES, MERGED, adapter_fingerprint, adapter_serving,
                                      merge_adapter, merged_from, serves_merged, weights_to_load)

__all__ = ["ADAPTER_FILES", "ADAPTER_MODES", "MERGED", "adapter_fingerprint", "adapter_serving", "merge_adapter",
           "merged_from", "serves_merged", "weights_to_load"]
