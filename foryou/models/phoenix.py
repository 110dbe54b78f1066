"""Phoenix, nano-sized: X's 2026 transformer ranker over a user's engagement history (../shared/PHOENIX.md).

One trunk reads `[user | history, oldest → newest | candidates]`:

- every entity (user, post, author) is embedded by **2 hashes** into one table each, each hash row
  projected to the model width and the projections summed (X's "project-then-sum");
- posts also carry their topic (our stand-in for X's semantic ids: what a post is about, known for a
  post nobody has engaged with yet);
- a history item adds its actions — a multi-hot vector embedded as (2a − 1)·W, zero when empty — its
  dwell and how long ago it happened; a candidate adds its context: a few standardised numbers (age,
  engagement and impression counts and rates of the post and its author, in-network, media and safety
  flags — X's age and count buckets, given as numbers), through a small GELU MLP whose hidden layer also
  reaches the heads directly (late fusion: a number need not pass through attention to move a logit;
  on the world it closed most of the AUC gap to MaskNet);
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

import math
import warnings
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
        # sparse gradients: a step touches the rows of its batch only (PHOENIX.md: row-wise AdaGrad for tables)
        self.table = nn.Embedding(buckets, width, padding_idx=0, sparse=True)
        nn.init.normal_(self.table.weight, std=0.02)
        with torch.no_grad():
            self.table.weight[0].zero_()
        self.project = nn.Parameter(torch.randn(HASHES, width, d_model) / width**0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.table(hash_rows(ids, self.buckets))  # (..., HASHES, width)
        # Σₕ rowsₕ · projectₕ as one matmul over the concatenated rows
        out: torch.Tensor = rows.flatten(-2) @ self.project.flatten(0, 1)
        return out


Rope = tuple[torch.Tensor, torch.Tensor]


class RMSNorm(nn.Module):
    """x / rms(x) · g, written out (torch's fused op has no ONNX export)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(positions: torch.Tensor, head_dim: int) -> Rope:
    """(cos, sin) of the angles position × θᵢ (RoPE, base 10,000) for positions (b, t): (b, 1, t, head_dim / 2),
    computed once per forward and shared by every layer and head."""
    half = head_dim // 2
    freq = 10_000.0 ** (-torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angle = positions.to(torch.float32).unsqueeze(-1) * freq
    return angle.cos().unsqueeze(1), angle.sin().unsqueeze(1)


def rotary(x: torch.Tensor, angles: Rope) -> torch.Tensor:
    """Rotate pairs of `x` (b, heads, t, head_dim) by `angles` (from `rope`)."""
    cos, sin = angles
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    """Pre-norm attention (qk-norm, rotary) and GELU feed-forward, with candidate isolation."""

    def __init__(self, d_model: int, heads: int, head_dim: int, ffn: int, isolated: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.isolated = isolated  # False: candidates attend to each other too (the dense-mask ablation)
        self.norm_attn, self.norm_ffn = RMSNorm(d_model), RMSNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * heads * head_dim, bias=False)
        self.q_norm, self.k_norm = RMSNorm(head_dim), RMSNorm(head_dim)
        self.out = nn.Linear(heads * head_dim, d_model, bias=False)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.GELU(), nn.Linear(ffn, d_model))

    def _qkv(self, x: torch.Tensor, angles: Rope) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        # (3, b, heads, t, head_dim), contiguous: element-wise work on transposed views is several times slower
        q, k, v = self.qkv(self.norm_attn(x)).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4) \
            .contiguous().unbind(0)
        return rotary(self.q_norm(q), angles), rotary(self.k_norm(k), angles), v

    def forward(self, ctx: torch.Tensor, ctx_pos: Rope, ctx_valid: torch.Tensor, cand: torch.Tensor,
                cand_pos: Rope, cand_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ctx (b, c, d) with its rotary angles and a validity mask (b, c); cand (b, m, d) with its angles (and,
        for the dense ablation only, a validity mask (b, m))."""
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
        if self.isolated:
            to_self = (qm * km).sum(-1, keepdim=True) * scale  # (b, heads, m, 1)
            weights = torch.softmax(torch.cat([to_ctx, to_self], dim=-1), dim=-1)
            cand_att = weights[..., :-1] @ vc + weights[..., -1:] * vm
        else:
            to_cand = (qm @ km.transpose(-1, -2)) * scale  # (b, heads, m, m)
            if cand_valid is not None:
                to_cand = to_cand.masked_fill(~cand_valid[:, None, None, :], float("-inf"))
            weights = torch.softmax(torch.cat([to_ctx, to_cand], dim=-1), dim=-1)
            c = kc.shape[2]
            cand_att = weights[..., :c] @ vc + weights[..., c:] @ vm
        cand = cand + self.out(cand_att.transpose(1, 2).flatten(2))
        cand = cand + self.ffn(self.norm_ffn(cand))
        return ctx, cand


class PhoenixRanker(nn.Module):
    """The nano ranker (module docstring). Sizes default to PHOENIX.md §4: D 64, 2 layers, 2 heads × 32,
    FFN 128, tables of width 32 (user 8,192, post 100,000, author 8,192 buckets)."""

    platt_a: torch.Tensor
    platt_b: torch.Tensor
    known_until: torch.Tensor
    context_mean: torch.Tensor
    context_std: torch.Tensor

    def __init__(self, heads: Sequence[str], n_actions: int, n_context: int, d_model: int = 64, layers: int = 2,
                 attn_heads: int = 2, head_dim: int = 32, ffn: int = 128, width: int = 32,
                 user_buckets: int = 8_192, post_buckets: int = 100_000, author_buckets: int = 8_192,
                 topics: int = 64, candidate_isolation: bool = True, context_hidden: int = 0):
        super().__init__()
        self.n_context = n_context
        self.heads = tuple(heads)
        self.user = HashedEmbedding(user_buckets, width, d_model)
        self.post = HashedEmbedding(post_buckets, width, d_model)
        self.author = HashedEmbedding(author_buckets, width, d_model)
        self.topic = nn.Embedding(topics + 1, d_model, padding_idx=0)  # topic + 1; 0 = unknown or padding
        self.actions = nn.Linear(n_actions, d_model, bias=False)
        self.dwell_since = nn.Linear(2, d_model)  # log1p(dwell seconds), log1p(hours since the engagement)
        # context numbers → token: one linear map, or (context_hidden > 0) a GELU MLP whose hidden layer also
        # reaches the heads directly (late fusion: numbers need not pass through attention to move a logit)
        self.context_hidden = context_hidden
        if context_hidden:
            self.context_mlp = nn.Sequential(nn.Linear(n_context, context_hidden), nn.GELU(),
                                             nn.Linear(context_hidden, context_hidden), nn.GELU())
            self.context_norm = nn.Linear(context_hidden, d_model)
        else:
            self.context_norm = nn.Linear(n_context, d_model)
        # the context numbers' mean and scale (set from the training rows; an infinite scale ignores a constant)
        self.register_buffer("context_mean", torch.zeros(n_context))
        self.register_buffer("context_std", torch.ones(n_context))
        self.head_dim = head_dim
        self.isolated = candidate_isolation
        self.blocks = nn.ModuleList(Block(d_model, attn_heads, head_dim, ffn, candidate_isolation)
                                    for _ in range(layers))
        self.norm = RMSNorm(d_model)
        self.logits = nn.Linear(d_model + context_hidden, len(self.heads))
        self.dwell = nn.Linear(d_model + context_hidden, 1)
        # Platt scaling per head (fit on validation after training): p = σ(a·logit + b)
        self.register_buffer("platt_a", torch.ones(len(self.heads)))
        self.register_buffer("platt_b", torch.zeros(len(self.heads)))
        # the end of the training window: candidate posts created from then on are given the unknown id (the
        # caller's job: foryou.training.phoenix.inputs); the largest instant = every post known
        self.register_buffer("known_until", torch.tensor(torch.iinfo(torch.int64).max))

    def _topic(self, topic: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.topic((topic + 1).clamp(0, self.topic.num_embeddings - 1))
        return out

    def context(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor, hist_topic: torch.Tensor,
                hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (b, 1 + h, d), positions, validity): the user token, then the right-aligned history
        (padding: post id < 0, on the left), newest at position h, the user token just before the oldest."""
        valid_hist = hist_post >= 0
        acted = hist_actions.any(-1, keepdim=True)
        items = (self.post(hist_post) + self.author(hist_author) + self._topic(hist_topic)
                 + self.actions(2 * hist_actions.float() - 1) * acted
                 + self.dwell_since(torch.stack([torch.log1p(hist_dwell.clamp(min=0)),
                                                 torch.log1p(hist_hours.clamp(min=0))], -1)) * valid_hist[..., None])
        tokens = torch.cat([self.user(user)[:, None, :], items], dim=1)
        b, h = hist_post.shape
        positions = torch.arange(h + 1, device=user.device).expand(b, h + 1).clone()
        positions[:, 0] = h - valid_hist.sum(1)  # padding on the left moves nothing a valid token sees
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=user.device), valid_hist], dim=1)
        return tokens, positions, valid

    def forward(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor, hist_topic: torch.Tensor,
                hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor,
                cand_post: torch.Tensor, cand_author: torch.Tensor, cand_topic: torch.Tensor,
                cand_context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (b, m, heads), dwell (b, m)) for m candidates of b users: user (b,), history (b, h[, actions]),
        candidates (b, m[, n_context]); topics < 0 are unknown."""
        ctx, ctx_pos, valid = self.context(user, hist_post, hist_author, hist_topic, hist_actions, hist_dwell,
                                           hist_hours)
        numbers = (cand_context - self.context_mean) / self.context_std
        late = self.context_mlp(numbers) if self.context_hidden else numbers[..., :0]
        cand = (self.post(cand_post) + self.author(cand_author) + self._topic(cand_topic)
                + self.context_norm(late if self.context_hidden else numbers))
        ctx_angles = rope(ctx_pos, self.head_dim)
        cand_angles = rope(torch.full(cand_post.shape, ctx.shape[1], dtype=torch.long, device=cand.device),
                           self.head_dim)
        cand_valid = None if self.isolated else (cand_context != 0).any(-1)  # padding: no context
        for block in self.blocks:
            ctx, cand = block(ctx, ctx_angles, valid, cand, cand_angles, cand_valid)
        out = torch.cat([self.norm(cand), late], dim=-1)
        return self.logits(out), self.dwell(out).squeeze(-1)

    def probabilities(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Calibrated P(head) per candidate (b, m, heads): `forward`'s inputs, its logits Platt-scaled."""
        logits, _ = self(*inputs)
        p: torch.Tensor = torch.sigmoid(logits * self.platt_a + self.platt_b)
        return p

    def user_vector(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor,
                    hist_topic: torch.Tensor, hist_actions: torch.Tensor, hist_dwell: torch.Tensor,
                    hist_hours: torch.Tensor) -> torch.Tensor:
        """The retrieval user tower: the trunk over the context alone, mean-pooled over valid positions, L2."""
        ctx, ctx_pos, valid = self.context(user, hist_post, hist_author, hist_topic, hist_actions, hist_dwell,
                                           hist_hours)
        angles = rope(ctx_pos, self.head_dim)
        none = ctx[:, :0]
        for block in self.blocks:
            ctx, _ = block(ctx, angles, valid, none, rope(ctx_pos[:, :0], self.head_dim))
        pooled = (self.norm(ctx) * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        return F.normalize(pooled, dim=-1)


class CandidateTower(nn.Module):
    """The retrieval candidate side: post and author hashes (and the topic) → Linear(2W) → SiLU → Linear(D) → L2."""

    def __init__(self, d_model: int = 64, width: int = 32, post_buckets: int = 100_000, author_buckets: int = 8_192,
                 topics: int = 64):
        super().__init__()
        self.post = HashedEmbedding(post_buckets, width, 2 * width)
        self.author = HashedEmbedding(author_buckets, width, 2 * width)
        self.topic = nn.Embedding(topics + 1, 2 * width, padding_idx=0)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(2 * width, d_model))

    def forward(self, post: torch.Tensor, author: torch.Tensor, topic: torch.Tensor | None = None) -> torch.Tensor:
        x = self.post(post) + self.author(author)
        if topic is not None:
            x = x + self.topic((topic + 1).clamp(0, self.topic.num_embeddings - 1))
        return F.normalize(self.mlp(x), dim=-1)


class PhoenixRetrieval(nn.Module):
    """The two-tower form: the user tower is a Phoenix trunk over the history (`PhoenixRanker.user_vector`: no
    candidates, no heads used), the candidate tower `CandidateTower`; scores ⟨u, v⟩ / a learned temperature."""

    def __init__(self, n_actions: int, d_model: int = 64, layers: int = 2, attn_heads: int = 2, head_dim: int = 32,
                 ffn: int = 128, width: int = 32, user_buckets: int = 8_192, post_buckets: int = 100_000,
                 author_buckets: int = 8_192, topics: int = 64):
        super().__init__()
        self.dim = d_model
        with warnings.catch_warnings():  # no heads: torch notes that initialising the empty head layer is a no-op
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            self.user_tower = PhoenixRanker((), n_actions, 1, d_model, layers, attn_heads, head_dim, ffn, width,
                                            user_buckets, post_buckets, author_buckets, topics)
        self.candidate_tower = CandidateTower(d_model, width, post_buckets, author_buckets, topics)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.1)))  # X's initial temperature

    def users(self, user: torch.Tensor, hist_post: torch.Tensor, hist_author: torch.Tensor, hist_topic: torch.Tensor,
              hist_actions: torch.Tensor, hist_dwell: torch.Tensor, hist_hours: torch.Tensor) -> torch.Tensor:
        return self.user_tower.user_vector(user, hist_post, hist_author, hist_topic, hist_actions, hist_dwell,
                                           hist_hours)

    def candidates(self, post: torch.Tensor, author: torch.Tensor, topic: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.candidate_tower(post, author, topic)
        return out
