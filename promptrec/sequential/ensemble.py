"""Several SASRec models trained with different seeds, scored as one: the mean of their
log-probabilities over the items (each model's logits pass through log-softmax first, so a model
with sharper logits does not outvote the others)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from promptrec.sequential.config import SASRecConfig
from promptrec.sequential.model import SASRec
from promptrec.sequential.sequences import Batch


class SASRecEnsemble(nn.Module):
    def __init__(self, members: list[SASRec]):
        super().__init__()
        if not members or len({m.n_items for m in members}) != 1:
            raise ValueError("an ensemble needs at least one model, all trained for the same catalogue.")
        self.members = nn.ModuleList(members)
        self.n_items = members[0].n_items
        self.config = replace(members[0].config, seeds=len(members))

    @torch.no_grad()
    def score_last(self, batch: Batch, chunk: int = 512) -> np.ndarray:
        """(B, n_items) mean log-probability of the step after each sequence's last event."""
        total = None
        for member in self.members:
            logits = torch.from_numpy(member.score_last(batch, chunk))
            scores = torch.log_softmax(logits, dim=1).numpy()
            total = scores if total is None else total + scores
        return total / len(self.members)


def build_model(n_items: int, config: SASRecConfig) -> SASRec | SASRecEnsemble:
    """An untrained model of this shape: one SASRec, or an ensemble of ``config.seeds`` of them."""
    if config.seeds == 1:
        return SASRec(n_items, config)
    return SASRecEnsemble([SASRec(n_items, c) for c in config.members()])


def items_in(weights: dict[str, torch.Tensor]) -> int:
    """Catalogue size of saved weights, of one model or of an ensemble's members."""
    return int(weights.get("members.0.item.weight", weights.get("item.weight")).shape[0]) - 1


def assemble(models: list[SASRec], summaries: list[dict[str, Any]]) -> tuple[SASRec | SASRecEnsemble, dict[str, Any]]:
    """One model from the trained members, with their training summaries merged (" / " between members)."""
    if len(models) == 1:
        return models[0], summaries[0]
    summary: dict[str, Any] = {k: " / ".join(str(s.get(k)) for s in summaries)
                               for k in ("epochs_run", "best_epoch", "stopped_by", "valid_ndcg10")}
    # a member cached before stop reasons were recorded has only its stopped_by words
    summary["stop_reason"] = " / ".join(str(s.get("stop_reason") or s.get("stopped_by")) for s in summaries)
    summary |= {"seconds": round(sum(s.get("seconds", 0.0) for s in summaries), 1), "members": len(models)}
    cached = sum(bool(s.get("from_cache")) for s in summaries)
    if cached:
        summary["from_cache"] = f"{cached} of {len(models)} models"
    return SASRecEnsemble(models), summary
