"""Phoenix, nano-sized: X's 2026 transformer ranker over a user's engagement history (../shared/PHOENIX.md).

One trunk reads `[user | history, oldest → newest | candidates]`:

- every entity (user, post, author) is embedded by **2 hashes** into one table each, each hash row
  projected to the model width and the projections summed (X's "project-then-sum");
- a history item adds its actions — a multi-hot vector embedded as (2a − 1)·W, zero when empty — its
  dwell and how long ago it happened; a candidate adds its context (age bucket, in-network, counts
  bucket);
- pre-norm blocks (RMSNorm), qk-norm, GELU feed-forward, **right-anchored rotary positions**: the history
  is right-aligned so the newest item always has the same position, and every candidate shares one
  position after it (scores depend on positions only through their differences: padding changes nothing);
- **candidate isolation**: per layer, the context (user and history) attends to itself once
  (bidirectional over valid items, as X's production kernels), then each candidate attends to the
  context's keys and values plus its own — never to another candidate, so a candidate's score depends on
  the user and itself only (cacheable, and the same in any batch). This is done structurally (context
  attention, then one candidate-to-context product and one self term), not with a dense mask over
  everything, so 500 candidates cost 500 × (context + 1) scores per head.

Outputs per candidate: one logit per action head and a dwell estimate. `user_vector` is the retrieval
form's user tower (the trunk over the context, mean-pooled over valid positions, L2-normalised), and
`CandidateTower` its candidate side. No data access and no training here (foryou.training).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

HASHES = 2
# (id · scale + bias) mod PRIME, then into [1, buckets): row 0 is padding. Two fixed (scale, bias) pairs.
PRIME = 2_147_483_647
HASH_PARAMS = ((1_000_003, 17), (998_244_353, 101))


def hash_rows(ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """`ids` (any shape, int64; < 0 = padding) → (..., HASHES) table rows in [1, buckets), 0 for padding."""
    out = torch.stack([(ids * scale + bias) % PRIME % (buckets - 1) + 1 for scale, bias in HASH_PARAMS], dim=-1)
    return torch.where(ids.unsqueeze(-1) < 0, torch.zeros_like(out), out)


class HashedEmbedding(nn.Module):
    """One table of `buckets` rows of `width`; each of an entity's HASHES rows is projected to `d_model` by
    its own linear map and the projections summed (padding embeds to zero)."""

    def __init__(self, buckets: int, width: int, d_model: int):
        super().__init__()
        self.buckets = buckets
        self.table = nn.Embedding(buckets, width, padding_idx=0)
        nn.init.normal_(self.table.weight, std=0.02)
        with torch.no_grad():
            self.table.weight[0].zero_()
        self.project = nn.Parameter(torch.randn(HASHES, width, d_model) / width**0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.table(hash_rows(ids, self.buckets))  # (..., HASHES, width)
        # Σₕ rowsₕ · projectₕ as one matmul over the concatenated rows
        out: torch.Tensor = rows.flatten(-2) @ self.project.flatten(0, 1)
        return out


def rotary(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of `x` (..., T, head_dim) by angles position × θᵢ (RoPE, base 10,000)."""
    half = x.shape[-1] // 2
    freq = 10_000.0 ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angle = positions.to(torch.float32).unsqueeze(-1) * freq  # (..., T, half)
    cos, sin = angle.cos(), angle.sin()
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    """Pre-norm attention (qk-norm, rotary) and GELU feed-forward, with candidate isolation."""

    def __init__(self, d_model: int, heads: int, head_dim: int, ffn: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm_attn, self.norm_ffn = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * heads * head_dim, bias=False)
        self.q_norm, self.k_norm = nn.RMSNorm(head_dim), nn.RMSNorm(head_dim)
        self.out = nn.Linear(heads * head_dim, d_model, bias=False)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.GELU(), nn.Linear(ffn, d_model))

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).view(b, t, 3, self.heads, self.head_dim).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (b, heads, t, head_dim)
        pos = positions.unsqueeze(1)  # (b, 1, t): the same positions for every head
        return rotary(self.q_norm(q), pos), rotary(self.k_norm(k), pos), v

    def forward(self, ctx: torch.Tensor, ctx_pos: torch.Tensor, ctx_valid: torch.Tensor, cand: torch.Tensor,
                cand_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ctx (b, c, d) with positions and a validity mask (b, c); cand (b, m, d) with positions (b, m)."""
        qc, kc, vc = self._qkv(ctx, ctx_pos)
        keep = ctx_valid[:, None, None, :]  # (b, 1, 1, c)
        ctx_att = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=keep)
        ctx = ctx + self.out(ctx_att.transpose(1, 2).flatten(2))
        ctx = ctx + self.ffn(self.norm_ffn(ctx))
        # candidates: the context's keys/values (of this layer's input, as in one masked pass) plus their own
        qm, km, vm = self._qkv(cand, cand_pos)
        scale = self.head_dim ** -0.5
        to_ctx = (qm @ kc.transpose(-1, -2)) * scale  # (b, heads, m, c)
        to_ctx = to_ctx.masked_fill(~keep, float("-inf"))
        to_self = (qm * km).sum(-1, keepdim=True) * scale  # (b, heads, m, 1)
        weights = torch.softmax(torch.cat([to_ctx, to_self], dim=-1), dim=-1)
        cand_att = weights[..., :-1] @ vc + weights[..., -1:] * vm
        cand = cand + self.out(cand_att.transpose(1, 2).flatten(2))
        cand = cand + self.ffn(self.norm_ffn(cand))
        return ctx, cand


class PhoenixRanker(nn.Module):
    """The nano ranker (module docstring). Sizes default to PHOENIX.md §4: D 64, 2 layers, 2 heads × 32,
    FFN 128, tables of width 32 (user 8,192, post 100,000, author 8,192 buckets)."""

    def __init__(self, heads: Sequence[str], n_actions: int, d_model: int = 64, layers: int = 2,
                 attn_heads: int = 2, head_dim: int = 32, ffn: int = 128, width: int = 32,
                 user_buckets: int = 8_192, post_buckets: int = 100_000, author_buckets: int = 8_192,
                 age_buckets: int = 16, count_buckets: int = 16):
        super().__init__()
        self.heads = tuple(heads)
        self.user = HashedEmbedding(user_buckets, width, d_model)
        self.post = HashedEmbedding(post_buckets, width, d_model)
        self.author = HashedEmbedding(author_buckets, width, d_model)
        self.actions = nn.Linear(n_actions, d_model, bias=False)
        self.dwell_since = nn.Linear(2, d_model)  # log1p(dwell seconds), log1p(hours since the engagement)
        self.age = nn.Embedding(age_buckets, d_model)
        self.counts = nn.Embedding(count_buckets, d_model)
        self.in_network = nn.Embedding(2, d_model)
        self.blocks = nn.ModuleList(Block(d_model, attn_heads, head_dim, ffn) for _ in range(layers))
        self.norm = nn.RMSNorm(d_model)
        self.logits = nn.Linear(d_model, len(self.heads))
        self.dwell = nn.Linear(d_model, 1)

    def context(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor,
                hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (b, 1 + h, d), positions, validity): the user token, then the right-aligned history
        (padding: post id < 0, on the left), newest at position h, the user token just before the oldest."""
        valid_hist = hist_post >= 0
        acted = hist_actions.any(-1, keepdim=True)
        items = (self.post(hist_post) + self.author(hist_author)
                 + self.actions(2 * hist_actions.float() - 1) * acted
                 + self.dwell_since(torch.stack([torch.log1p(hist_dwell.clamp(min=0)),
                                                 torch.log1p(hist_hours.clamp(min=0))], -1)) * valid_hist[..., None])
        tokens = torch.cat([self.user(user)[:, None, :], items], dim=1)
        b, h = hist_post.shape
        positions = torch.arange(h + 1, device=user.device).expand(b, h + 1).clone()
        positions[:, 0] = h - valid_hist.sum(1)  # padding on the left moves nothing a valid token sees
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=user.device), valid_hist], dim=1)
        return tokens, positions, valid

    def forward(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor,
                hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor,
                cand_post: torch.Tensor, cand_author: torch.Tensor, cand_age: torch.Tensor,
                cand_in_network: torch.Tensor, cand_counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (b, m, heads), dwell (b, m)) for m candidates of b users: user (b,), history (b, h[, actions]),
        candidates (b, m); buckets are clamped into their tables."""
        ctx, ctx_pos, valid = self.context(user, hist_post, hist_author, hist_actions, hist_dwell, hist_hours)
        cand = (self.post(cand_post) + self.author(cand_author)
                + self.age(cand_age.clamp(0, self.age.num_embeddings - 1))
                + self.counts(cand_counts.clamp(0, self.counts.num_embeddings - 1))
                + self.in_network(cand_in_network.long().clamp(0, 1)))
        cand_pos = torch.full(cand_post.shape, ctx.shape[1], dtype=torch.long, device=cand.device)
        for block in self.blocks:
            ctx, cand = block(ctx, ctx_pos, valid, cand, cand_pos)
        out = self.norm(cand)
        return self.logits(out), self.dwell(out).squeeze(-1)

    def user_vector(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor,
                    hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor) -> torch.Tensor:
        """The retrieval user tower: the trunk over the context alone, mean-pooled over valid positions, L2."""
        ctx, ctx_pos, valid = self.context(user, hist_post, hist_author, hist_actions, hist_dwell, hist_hours)
        none = ctx[:, :0]
        for block in self.blocks:
            ctx, _ = block(ctx, ctx_pos, valid, none, ctx_pos[:, :0])
        pooled = (self.norm(ctx) * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        return F.normalize(pooled, dim=-1)


class CandidateTower(nn.Module):
    """The retrieval candidate side: post and author hashes → Linear(2W) → SiLU → Linear(D) → L2."""

    def __init__(self, d_model: int = 64, width: int = 32, post_buckets: int = 100_000, author_buckets: int = 8_192):
        super().__init__()
        self.post = HashedEmbedding(post_buckets, width, 2 * width)
        self.author = HashedEmbedding(author_buckets, width, 2 * width)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(2 * width, d_model))

    def forward(self, post: torch.Tensor, author: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(self.post(post) + self.author(author)), dim=-1)
