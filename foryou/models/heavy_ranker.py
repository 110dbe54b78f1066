"""The heavy ranker: a MaskNet-style multi-task network with one calibrated head per engagement.

After X's 2023 ranker (parallel MaskNet, one tower per head), scaled to our ~26 features: dense
features are standardised; a topic embedding is appended; parallel mask blocks each learn an
instance-guided mask over the input; their outputs feed a shared MLP and one small tower per
head. Platt scaling per head (fitted on validation) calibrates the probabilities. No I/O here.

Optional id embeddings (X's ranker has them too): a user vector and an author vector over a fixed
id vocabulary (stored with the weights), their dot product (a learned user–author taste match the
counters only see for pairs that already met) and a per-user topic bias. Index 0 is "unknown":
training drops ids to 0 at random so that new users and authors get a trained default.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from foryou.vocab import RANKER_HEADS


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
    id_vocab: torch.Tensor  # sorted user ids with an embedding row (row = position + 1; 0 = unknown)
    mean: torch.Tensor
    std: torch.Tensor
    platt_a: torch.Tensor
    platt_b: torch.Tensor

    def __init__(self, n_features: int, n_topics: int, heads: tuple[str, ...] = RANKER_HEADS, blocks: int = 4,
                 block_dim: int = 64, mlp_dim: int = 128, tower_dim: int = 32, topic_dim: int = 8,
                 id_vocab: np.ndarray | None = None, id_dim: int = 0):
        super().__init__()
        self.heads = tuple(heads)
        vocab = np.zeros(0, np.int64) if id_vocab is None or id_dim == 0 else np.asarray(id_vocab, np.int64)
        self.register_buffer("id_vocab", torch.from_numpy(np.sort(vocab)))
        self.id_dim = id_dim if len(vocab) else 0
        if self.id_dim:
            self.user_emb = nn.Embedding(len(vocab) + 1, id_dim)
            self.author_emb = nn.Embedding(len(vocab) + 1, id_dim)
            self.user_topic = nn.Embedding(len(vocab) + 1, n_topics + 1)
            for table in (self.user_emb, self.author_emb):
                nn.init.normal_(table.weight, std=0.01)
            nn.init.zeros_(self.user_topic.weight)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("platt_a", torch.ones(len(heads)))
        self.register_buffer("platt_b", torch.zeros(len(heads)))
        self.topic = nn.Embedding(n_topics + 1, topic_dim)  # row 0 = unknown topic
        d_in = n_features + topic_dim + (2 * self.id_dim + 2 if self.id_dim else 0)
        self.blocks = nn.ModuleList(MaskBlock(d_in, block_dim) for _ in range(blocks))
        self.mlp = nn.Sequential(nn.Linear(blocks * block_dim, mlp_dim), nn.ReLU())
        # One tower per head (mlp → tower_dim → 1), evaluated for all heads in two batched ops.
        self.tower_hidden = nn.Linear(mlp_dim, len(heads) * tower_dim)
        self.tower_out = nn.Parameter(torch.randn(len(heads), tower_dim) / tower_dim**0.5)
        self.tower_bias = nn.Parameter(torch.zeros(len(heads)))
        self.tower_dim = tower_dim

    def vocab_index(self, ids: np.ndarray) -> np.ndarray:
        """Raw user ids → embedding rows (0 = not in the vocabulary, or no id embeddings)."""
        ids = np.asarray(ids, np.int64)
        vocab = self.id_vocab.numpy()
        if not len(vocab):
            return np.zeros(ids.shape, np.int64)
        pos = np.minimum(np.searchsorted(vocab, ids), len(vocab) - 1)
        return np.where(vocab[pos] == ids, pos + 1, 0)

    def logits(self, x: torch.Tensor, topic: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Uncalibrated logits (batch × heads); `ids` = (viewer, author) vocabulary rows (batch × 2)."""
        parts = [(x - self.mean) / self.std, self.topic(topic + 1)]
        if self.id_dim:
            ids = torch.zeros((x.shape[0], 2), dtype=torch.int64) if ids is None else ids
            u, a = self.user_emb(ids[:, 0]), self.author_emb(ids[:, 1])
            parts += [u, a, (u * a).sum(1, keepdim=True), self.user_topic(ids[:, 0]).gather(1, (topic + 1)[:, None])]
        z = torch.cat(parts, dim=1)
        h = self.mlp(torch.cat([b(z) for b in self.blocks], dim=1))
        t = torch.relu(self.tower_hidden(h)).view(-1, len(self.heads), self.tower_dim)  # -1: ONNX-traceable
        return (t * self.tower_out).sum(-1) + self.tower_bias

    def forward(self, x: torch.Tensor, topic: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated probabilities (batch × heads)."""
        return torch.sigmoid(self.platt_a * self.logits(x, topic, ids) + self.platt_b)
