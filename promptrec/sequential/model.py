"""SASRec in torch: item embeddings + learned positions, causal self-attention blocks, and the
item embeddings again as the output layer. The time-aware variant adds embeddings of each
event's gap since the previous one, hour and weekday to the input, and of the asked step's gap,
hour and weekday to the output (in the spirit of TiSASRec's intervals, with absolute calendar
time added because habits follow the clock)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from promptrec.sequential.config import SASRecConfig
from promptrec.sequential.sequences import GAP_BUCKETS, Batch


class TimeEmbedding(nn.Module):
    """Sum of gap-bucket, hour-of-day and weekday embeddings."""

    def __init__(self, dim: int):
        super().__init__()
        self.gap = nn.Embedding(GAP_BUCKETS, dim)
        self.hour = nn.Embedding(24, dim)
        self.dow = nn.Embedding(7, dim)

    def forward(self, gaps: torch.Tensor, hours: torch.Tensor, dows: torch.Tensor) -> torch.Tensor:
        return self.gap(gaps) + self.hour(hours) + self.dow(dows)


class SASRec(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig):
        super().__init__()
        self.n_items, self.config = n_items, config
        d = config.dim
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position = nn.Embedding(config.max_len, d)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=d, dropout=config.dropout,
                                           activation="relu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.input_time = TimeEmbedding(d) if config.time_aware else None
        self.query_time = TimeEmbedding(d) if config.time_aware else None
        nn.init.normal_(self.item.weight, std=d ** -0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()
            if config.time_aware and config.time_init == "zero":  # start as plain SASRec
                for table in (*self.input_time.children(), *self.query_time.children()):
                    table.weight.zero_()

    @torch.no_grad()
    def start_items_from_text(self, item_vectors: np.ndarray) -> None:
        """Item embeddings from the items' text vectors (``item_init="text"``): their top ``dim``
        principal components, scaled to the random start's spread, so items described alike start close."""
        self.item.weight[1:] = torch.from_numpy(text_start(item_vectors, self.config.dim))

    def _mask(self, items: torch.Tensor) -> torch.Tensor:
        """(B*heads, L, L) additive mask: causal, and no attention to padding (a padding position sees
        only itself, so no row is all -inf)."""
        b, length = items.shape
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).triu(1)
        pad = (items == 0)[:, None, :] & ~torch.eye(length, dtype=torch.bool, device=items.device)
        blocked = causal[None] | pad
        mask = torch.zeros(b, length, length, device=items.device).masked_fill(blocked, float("-inf"))
        return mask.repeat_interleave(self.config.heads, dim=0)

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, dim) state at each position, conditioned on the asked next step if time-aware."""
        items = batch["items"]
        positions = torch.arange(items.shape[1], device=items.device)
        x = self.item(items) * math.sqrt(self.config.dim) + self.position(positions)[None]
        if self.input_time is not None:
            x = x + self.input_time(batch["gaps"], batch["hours"], batch["dows"])
        x = self.dropout(x) * (items > 0).unsqueeze(-1)
        h = self.norm(self.blocks(x, mask=self._mask(items)))
        if self.query_time is not None:
            h = h + self.query_time(batch["next_gaps"], batch["next_hours"], batch["next_dows"])
        return h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item (not the padding token) for each hidden state."""
        return hidden @ self.item.weight[1:].T

    @torch.no_grad()
    def score_last(self, batch: Batch, chunk: int = 512) -> np.ndarray:
        """(B, n_items) scores for the step after each sequence's last event."""
        self.eval()
        out = []
        for start in range(0, len(batch.items), chunk):
            t = to_tensors(batch, slice(start, start + chunk))
            out.append(self.logits(self.hidden(t)[:, -1]).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_items), dtype=np.float32)


def text_start(item_vectors: np.ndarray, dim: int) -> np.ndarray:
    """(items, dim) float32: the centred vectors projected on their top ``dim`` principal components
    (zero-padded where there are fewer), with the random start's standard deviation ``dim ** -0.5``."""
    x = np.asarray(item_vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out = np.zeros((len(x), dim))
    k = min(dim, len(s))
    out[:, :k] = u[:, :k] * s[:k]
    spread = out.std()
    return (out * (dim ** -0.5 / spread if spread > 0 else 0.0)).astype(np.float32)


def to_tensors(batch: Batch, rows: slice | np.ndarray) -> dict[str, torch.Tensor]:
    names = ["items", "gaps", "hours", "dows", "next_gaps", "next_hours", "next_dows"]
    if batch.targets is not None:
        names.append("targets")
    return {n: torch.from_numpy(np.ascontiguousarray(getattr(batch, n)[rows])) for n in names}
