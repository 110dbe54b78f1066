"""The heavy ranker: a MaskNet-style multi-task network with one calibrated head per engagement.

After X's 2023 ranker (parallel MaskNet, one tower per head), scaled to our ~26 features: dense
features are standardised; a topic embedding is appended; parallel mask blocks each learn an
instance-guided mask over the input; their outputs feed a shared MLP and one small tower per
head. Platt scaling per head (fitted on validation) calibrates the probabilities. No I/O here.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("click", "like", "repost", "reply", "profile_click", "dwell", "follow_author",
         "negative_feedback", "report")


class MaskBlock(nn.Module):
    """v = mask(x) ⊙ LN(e); out = ReLU(LN(W·v)) — MaskNet's instance-guided mask."""

    def __init__(self, d_in: int, d_out: int, reduction: float = 2.0):
        super().__init__()
        self.mask = nn.Sequential(nn.Linear(d_in, int(d_in * reduction)), nn.ReLU(),
                                  nn.Linear(int(d_in * reduction), d_in))
        self.ln_in = nn.LayerNorm(d_in)
        self.hidden = nn.Linear(d_in, d_out)
        self.ln_out = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.ln_out(self.hidden(self.mask(x) * self.ln_in(x))))


class HeavyRankerNet(nn.Module):
    def __init__(self, n_features: int, n_topics: int, heads: tuple[str, ...] = HEADS, blocks: int = 4,
                 block_dim: int = 64, mlp_dim: int = 128, tower_dim: int = 32, topic_dim: int = 8):
        super().__init__()
        self.heads = tuple(heads)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("platt_a", torch.ones(len(heads)))
        self.register_buffer("platt_b", torch.zeros(len(heads)))
        self.topic = nn.Embedding(n_topics + 1, topic_dim)  # row 0 = unknown topic
        d_in = n_features + topic_dim
        self.blocks = nn.ModuleList(MaskBlock(d_in, block_dim) for _ in range(blocks))
        self.mlp = nn.Sequential(nn.Linear(blocks * block_dim, mlp_dim), nn.ReLU())
        # One tower per head (mlp → tower_dim → 1), evaluated for all heads in two batched ops.
        self.tower_hidden = nn.Linear(mlp_dim, len(heads) * tower_dim)
        self.tower_out = nn.Parameter(torch.randn(len(heads), tower_dim) / tower_dim**0.5)
        self.tower_bias = nn.Parameter(torch.zeros(len(heads)))
        self.tower_dim = tower_dim

    def logits(self, x: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits (batch × heads)."""
        z = torch.cat([(x - self.mean) / self.std, self.topic(topic + 1)], dim=1)
        h = self.mlp(torch.cat([b(z) for b in self.blocks], dim=1))
        t = torch.relu(self.tower_hidden(h)).view(len(h), len(self.heads), self.tower_dim)
        return (t * self.tower_out).sum(-1) + self.tower_bias

    def forward(self, x: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities (batch × heads)."""
        return torch.sigmoid(self.platt_a * self.logits(x, topic) + self.platt_b)
