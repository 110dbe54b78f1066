"""Train Phoenix (foryou.models.phoenix): rows, inputs, losses, calibration, evaluation.

A row is one viewer at one instant with the candidates they were shown then, and their history is what
they engaged with strictly before that instant (`EngagementSequences.window`: a later event changes no
row). Two recipes, by what the data logs:

- **with impressions** (worlds, logged feeds): a row is a page view (the impressions of one session, at
  its first impression's time), each candidate labelled by the heads' engagements of the viewer on it —
  multi-label BCE plus the dwell regression. Each row also borrows other page views' impressions as
  not-engaged (X's RECAP_NOT_DWELLED negatives), weighted 1/(times that post was borrowed) so popular posts
  do not dominate, with the negative-feedback heads masked on them (nobody reported what they never saw).
- **without impressions** (positives-only imports): a row is an engagement (the first per user and post),
  its post the positive candidate, plus `sampled_negatives` posts that existed then — half drawn by
  popularity (the post of an engagement before t), half uniformly — not the user's own nor one they engage
  with. Per head the positive must out-score the negatives in a softmax whose logits carry the log-Q
  correction (− log of each candidate's expected draws); a BCE term beside it (`sampled_bce`) is off by
  default: against popularity-drawn negatives it teaches the ranker to discount popularity.

`inputs` is the one definition of the model's inputs, used by training and by the served ranker
(foryou.timeline.loading.TrainedPhoenix): ids (hashed by the model), topics, history actions, dwell and
hours since, and each candidate's context numbers at t (CONTEXT_FEATURES: the feature store's post and
author columns — X's count buckets — then, with `viewer_context`, MaskNet's viewer × candidate aggregates,
and last the candidate's positives over the data's trending window). A candidate post newer than the
training window is given the unknown id (its hashed rows were only trained for other posts), and training
drops candidate post ids as often as the validation window meets such posts (a feed: most; a catalog: none).
The dense learning rate decays along a half cosine (a constant rate left the validation loss jittering).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.nn import functional as F

from foryou.config import PhoenixConfig
from foryou.data.dataset import Dataset
from foryou.data.lookup import member
from foryou.data.split import Window
from foryou.features import FEATURE_SCHEMA, FeatureStore
from foryou.features.sequences import N_ACTIONS, action_matrix
from foryou.logs import Progress
from foryou.models.phoenix import PhoenixRanker
from foryou.training.heavy_ranker import HEAD_KINDS, head_report
from foryou.training.loop import fit, seeded
from foryou.training.negatives import window_seed
from foryou.vocab import DAY, HOUR, RANKER_HEADS

if TYPE_CHECKING:
    from foryou.data.world import GroundTruth

MASKED_ON_BORROWED = tuple(j for j, h in enumerate(RANKER_HEADS) if h in ("negative_feedback", "report"))
DWELL_WEIGHT = 0.1  # X's weight of the dwell regression against the heads' BCE
INPUT_NAMES = ("user", "hist_post", "hist_author", "hist_topic", "hist_actions", "hist_dwell", "hist_hours",
               "cand_post", "cand_author", "cand_topic", "cand_context")
# A candidate's context: the feature store's post and author columns at t (X's age and count buckets, as numbers);
# what the viewer thinks of it is the history's to say.
CONTEXT_FEATURES = ("age_log_h", "post_positive_log", "post_impressions_log", "post_rate", "post_positive_24h_log",
                    "post_negative_rate", "has_media", "has_link", "length_log", "is_reply", "is_repost", "is_nsfw",
                    "is_toxic", "is_spam", "is_misinfo", "author_rate", "author_impressions_log",
                    "author_negative_rate", "author_followers_log", "in_network")
# `viewer_context`: MaskNet's viewer × candidate aggregates over the viewer's whole log (impressions ignored
# included), which a history of the last engagements cannot hold
VIEWER_FEATURES = ("user_topic_share", "user_positive_log", "user_impressions_log", "user_negative_rate",
                   "user_media_share", "user_unsafe_negative_log", "user_topic_rate", "user_topic_impression_share",
                   "user_author_positive_log", "user_author_impressions_log", "user_author_rate",
                   "user_author_negative")
# What a stored Phoenix was trained on: its inputs' definition (a version with another is not served).
SCHEMA = "phoenix-" + hashlib.sha256(f"4|{'|'.join(INPUT_NAMES)}|{'|'.join(CONTEXT_FEATURES + VIEWER_FEATURES)}|"
                                     f"{FEATURE_SCHEMA}".encode()).hexdigest()[:12]


def context_features(cfg: PhoenixConfig) -> tuple[str, ...]:
    """The candidate context numbers a model of this config reads."""
    return CONTEXT_FEATURES + (VIEWER_FEATURES if cfg.viewer_context else ())


@dataclass
class Inputs:
    """The model's inputs as numpy, one row per (viewer, instant); candidate padding has post id −1."""

    arrays: dict[str, np.ndarray]

    def numpy(self, idx: np.ndarray | slice = slice(None)) -> list[np.ndarray]:
        """The arrays in `forward`'s order (actions as multi-hot), rows `idx`."""
        out = []
        for name in INPUT_NAMES:
            a = self.arrays[name][idx]
            out.append(action_matrix(a) if name == "hist_actions" else np.ascontiguousarray(a))
        return out

    def tensors(self, idx: np.ndarray | slice = slice(None)) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(a) for a in self.numpy(idx))


def inputs(store: FeatureStore, user_rows: np.ndarray, times: np.ndarray, cand_rows: np.ndarray,
           history: int, context: tuple[str, ...] = CONTEXT_FEATURES, trend_s: int = DAY,
           known_until: int | None = None) -> Inputs:
    """Inputs for viewers `user_rows` at `times` (n,) and their candidates `cand_rows` (n, m) post rows
    (−1 = padding): the last `history` engagements before each time, and each candidate as of that time.
    A candidate post created at or after `known_until` (the end of the model's training window) is given
    the unknown id: its hashed rows were trained on other posts only, so its id would add noise."""
    u, t = np.asarray(user_rows, np.int64), np.asarray(times, np.int64)
    cand = np.asarray(cand_rows, np.int64)
    h_post, h_actions, h_dwell, h_time = store.sequences.window(u, t, history)
    valid_h, valid_c = h_post >= 0, cand >= 0
    hp = np.where(valid_h, h_post, 0)
    n, m = cand.shape
    flat = np.where(valid_c, cand, 0).ravel()
    f = store.compute(np.repeat(u, m), flat, np.repeat(t, m), names=context)
    rates = [i for i, name in enumerate(context) if name.endswith("_rate")]  # as logs: rates span decades
    f[:, rates] = np.log(np.maximum(f[:, rates], 1e-6))
    # recent popularity at the data's own time scale (a catalog's month, a feed's day), last column
    content_t, pos = np.repeat(t, m), store.counters["post_pos"]
    trend = pos.count_before(store.content_row[flat], content_t) - pos.count_before(store.content_row[flat],
                                                                                    content_t - trend_s)
    f = np.concatenate([f, np.log1p(np.maximum(trend, 0))[:, None]], 1)
    content = store.content_row[flat]

    def ids(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.where(valid, values, -1).astype(np.int64)

    return Inputs({
        "user": store.user_ids[u].astype(np.int64),
        "hist_post": ids(store.post_id[hp], valid_h),
        "hist_author": ids(store.user_ids[store.author_row[hp]], valid_h),
        "hist_topic": ids(store.topic[hp], valid_h),
        "hist_actions": h_actions,
        "hist_dwell": h_dwell.astype(np.float32),
        "hist_hours": np.where(valid_h, (t[:, None] - h_time) / HOUR, 0).astype(np.float32),
        "cand_post": ids(store.post_id[content].reshape(n, m),
                         valid_c & (store.created_at[content].reshape(n, m) < (known_until or np.iinfo(np.int64).max))),
        "cand_author": ids(store.user_ids[store.author_row[content]].reshape(n, m), valid_c),
        "cand_topic": ids(store.topic[content].reshape(n, m), valid_c),
        "cand_context": (f * valid_c.reshape(-1, 1)).reshape(n, m, len(context) + 1).astype(np.float32),
    })


@dataclass
class PhoenixRows:
    """Training rows: viewer, instant, candidates (n, m) post rows (−1 pad), labels and weights per head
    (n, m, heads), dwell targets (log1p seconds), log-Q per candidate, and which candidates were shown."""

    user_row: np.ndarray
    time: np.ndarray
    cand: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    dwell: np.ndarray
    logq: np.ndarray
    shown: np.ndarray
    sampled: bool  # positives-only rows (softmax over sampled candidates) rather than logged page views
    known_until: int | None = None  # candidate posts created from then on are unknown to the model (`inputs`)
    inputs: Inputs = field(repr=False, default_factory=lambda: Inputs({}))

    def __len__(self) -> int:
        return len(self.time)


def build_rows(dataset: Dataset, store: FeatureStore, window: Window, cfg: PhoenixConfig,
               impressions: bool, known_until: int | None = None) -> PhoenixRows:
    """The window's rows by the recipe the data allows (module doc), with their inputs; `known_until`: the end
    of the training window (posts created later are unknown ids, as when served)."""
    rows = (_page_rows if impressions else _engagement_rows)(dataset, store, window, cfg)
    rows.known_until = known_until
    rows.inputs = inputs(store, rows.user_row, rows.time, rows.cand, cfg.history, context_features(cfg),
                         int(cfg.trend_hours * HOUR), known_until)
    return rows


def known_rows(store: FeatureStore, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask of the rows whose user and post the store knows, their user rows, their post rows) of an event table."""
    (u_ok, u), (p_ok, p) = member(store.user_ids, table["user_id"].to_numpy()), member(store.post_id,
                                                                                      table["post_id"].to_numpy())
    ok = u_ok & p_ok
    return ok, u[ok].astype(np.int64), p[ok].astype(np.int64)


def _labels(dataset: Dataset, store: FeatureStore, user_row: np.ndarray, cand: np.ndarray,
            before: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(y (n, m, heads), dwell log1p seconds (n, m)): what each viewer did on each candidate (before `before`)."""
    e = dataset.engagements
    if before is not None:
        e = e.filter(pc.less(e["created_at"], before))
    ok, e_u, e_p = known_rows(store, e)
    n_posts = len(store.post_id)
    e_key = e_u * n_posts + e_p
    e_kind = e["kind"].to_numpy(zero_copy_only=False)[ok]
    key = np.where(cand >= 0, user_row[:, None] * n_posts + cand, -1)
    y = np.zeros((*cand.shape, len(RANKER_HEADS)), np.float32)
    for j, head in enumerate(RANKER_HEADS):
        y[..., j] = np.isin(key, e_key[np.isin(e_kind, HEAD_KINDS.get(head, (head,)))])
    dwelled = e_kind == "dwell"
    d_key, d_val = e_key[dwelled], e["value"].to_numpy()[ok][dwelled]
    order = np.argsort(d_key)
    dwell = np.zeros(key.size, np.float32)
    if len(order):  # data without dwell events: no dwell target
        found, at = member(d_key[order], key.ravel())
        dwell[found] = np.log1p(np.maximum(d_val[order][at[found]], 0))
    return y, dwell.reshape(cand.shape)


def _page_rows(dataset: Dataset, store: FeatureStore, window: Window, cfg: PhoenixConfig) -> PhoenixRows:
    imp = window.rows(dataset, "impressions")
    ok, u, p = known_rows(store, imp)
    t, session = imp["created_at"].to_numpy()[ok], imp["session_id"].to_numpy()[ok]
    order = np.lexsort((p, t, session, u))
    u, p, t, session = u[order], p[order], t[order], session[order]
    start = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (session[1:] != session[:-1])])
    rank = np.arange(len(u)) - np.repeat(start, np.diff(np.r_[start, len(u)]))
    keep = rank < cfg.max_candidates
    row = np.repeat(np.arange(len(start)), np.diff(np.r_[start, len(u)]))
    m = int(min(cfg.max_candidates, rank.max(initial=0) + 1))
    cand = np.full((len(start), m), -1, np.int64)
    cand[row[keep], rank[keep]] = p[keep]
    user_row, when = u[start], t[start]
    recent = np.argsort(when, kind="stable")[-cfg.max_train_rows:]  # the most recent page views
    user_row, when, cand = user_row[recent], when[recent], cand[recent]
    y, dwell = _labels(dataset, store, user_row, cand, None)
    weight = np.repeat((cand >= 0)[..., None], len(RANKER_HEADS), -1).astype(np.float32)
    shown = cand >= 0
    if cfg.borrowed_negatives:
        cand, y, weight, dwell, shown = _borrow(store, user_row, cand, y, weight, dwell, shown, cfg, window)
    return PhoenixRows(user_row, when, cand, y, weight, dwell, np.zeros(cand.shape, np.float32), shown, False)


def _borrow(store: FeatureStore, user_row: np.ndarray, cand: np.ndarray, y: np.ndarray, weight: np.ndarray,
            dwell: np.ndarray, shown: np.ndarray, cfg: PhoenixConfig, window: Window
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Append `borrowed_negatives` impressions of other rows to each row (module doc)."""
    rng = window_seed(cfg.seed, window)
    pool_row, pool_col = np.nonzero(cand >= 0)
    pick = rng.integers(0, len(pool_row), (len(cand), cfg.borrowed_negatives)) if len(pool_row) else \
        np.zeros((len(cand), 0), np.int64)
    borrowed = cand[pool_row[pick], pool_col[pick]] if len(pool_row) else np.zeros_like(pick)
    ok = (user_row[pool_row[pick]] != user_row[:, None]) if len(pool_row) else np.zeros_like(pick, bool)
    ok &= store.author_row[store.content_row[borrowed]] != user_row[:, None]
    ok &= ~(borrowed[:, :, None] == cand[:, None, :]).any(-1)  # not one of this row's own impressions
    posts, counts = np.unique(borrowed[ok], return_counts=True)
    w = np.zeros(borrowed.shape, np.float32)
    w[ok] = 1.0 / counts[np.searchsorted(posts, borrowed[ok])]
    bw = np.repeat(w[..., None], len(RANKER_HEADS), -1)
    bw[..., list(MASKED_ON_BORROWED)] = 0.0
    borrowed = np.where(ok, borrowed, -1)
    zeros = np.zeros((*borrowed.shape, len(RANKER_HEADS)), np.float32)
    return (np.concatenate([cand, borrowed], 1), np.concatenate([y, zeros], 1), np.concatenate([weight, bw], 1),
            np.concatenate([dwell, np.zeros(borrowed.shape, np.float32)], 1),
            np.concatenate([shown, np.zeros(borrowed.shape, bool)], 1))


def _engagement_rows(dataset: Dataset, store: FeatureStore, window: Window, cfg: PhoenixConfig) -> PhoenixRows:
    kinds = tuple(k for head in RANKER_HEADS for k in HEAD_KINDS.get(head, (head,)))
    e = dataset.engagements
    e = e.filter(pc.is_in(e["kind"], pa.array(list(kinds))))
    if window.end is not None:
        e = e.filter(pc.less(e["created_at"], window.end))
    ok, u, p = known_rows(store, e)
    p, t = store.content_row[p].astype(np.int64), e["created_at"].to_numpy()[ok]
    n_posts = len(store.post_id)
    engaged = np.unique(u * n_posts + p)
    pool_t, pool_p = np.sort(t), p[np.argsort(t, kind="stable")]  # every engagement by time: popularity draws
    first = np.lexsort((t, u * n_posts + p))
    key = (u * n_posts + p)[first]
    first = first[np.r_[True, key[1:] != key[:-1]]]
    first = first[(t[first] >= window.start) if window.start is not None else slice(None)]
    first = first[np.argsort(t[first], kind="stable")][-cfg.max_train_rows:]
    user_row, when, pos = u[first], t[first], p[first]
    neg, logq = _sample(store, user_row, when, cfg, window_seed(cfg.seed, window), (pool_t, pool_p))
    bad = member(engaged, (user_row[:, None] * n_posts + neg).ravel())[0].reshape(neg.shape)
    bad |= (neg < 0) | (neg == pos[:, None])
    bad |= store.author_row[np.maximum(neg, 0)] == user_row[:, None]
    cand = np.concatenate([pos[:, None], np.where(bad, -1, neg)], 1)
    y, dwell = _labels(dataset, store, user_row, cand, window.end)
    weight = np.repeat((cand >= 0)[..., None], len(RANKER_HEADS), -1).astype(np.float32)
    logq = np.concatenate([np.zeros((len(cand), 1), np.float32), logq], 1)
    shown = np.zeros(cand.shape, bool)
    shown[:, 0] = True
    return PhoenixRows(user_row, when, cand, y, weight, dwell, logq, shown, True)


def _sample(store: FeatureStore, user_row: np.ndarray, when: np.ndarray, cfg: PhoenixConfig,
            rng: np.random.Generator, pool: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(posts (n, k), log of each one's expected draws (n, k)): half by popularity before t, half uniform
    among posts created before t; −1 where nothing can be drawn."""
    k = cfg.sampled_negatives
    k_pop = k // 2
    pool_t, pool_p = pool
    n_eng = np.searchsorted(pool_t, when, side="left")
    created_order = np.argsort(store.created_at, kind="stable")
    created_sorted = store.created_at[created_order]
    n_posts = np.searchsorted(created_sorted, when, side="left")
    r = rng.random((len(when), k))
    pop = pool_p[np.minimum((r[:, :k_pop] * n_eng[:, None]).astype(np.int64), max(len(pool_p) - 1, 0))] \
        if len(pool_p) else np.full((len(when), k_pop), -1)
    uni = store.content_row[created_order[np.minimum((r[:, k_pop:] * n_posts[:, None]).astype(np.int64),
                                                     max(len(created_order) - 1, 0))]]  # what the post shows
    posts = np.concatenate([np.where(n_eng[:, None] > 0, pop, -1), np.where(n_posts[:, None] > 0, uni, -1)], 1)
    # the mixture's probability of each drawn post: popularity share before t, and 1 / posts before t
    counts = store.counters["post_pos"].count_before(np.maximum(posts, 0).ravel(),
                                                     np.repeat(when, k)).reshape(posts.shape)
    q = k_pop * counts / np.maximum(n_eng, 1)[:, None] + (k - k_pop) / np.maximum(n_posts, 1)[:, None]
    return posts, np.log(np.maximum(q, 1e-12)).astype(np.float32)


def _loss(model: PhoenixRanker, rows: PhoenixRows, idx: np.ndarray | slice,
          id_dropout: tuple[float, float] = (0.0, 0.0), rng: np.random.Generator | None = None,
          sampled_bce: float = 1.0) -> torch.Tensor:
    """`id_dropout`: the shares of viewer and candidate-post ids made unknown (training only, with `rng`)."""
    x = rows.inputs.numpy(idx)
    if rng is not None:  # unknown viewers and posts, as new ones are when served
        for name, share in zip(("user", "cand_post"), id_dropout, strict=True):
            i = INPUT_NAMES.index(name)
            x[i] = np.where(rng.random(x[i].shape) < share, -1, x[i]) if share else x[i]
    logits, dwell = model(*(torch.from_numpy(a) for a in x))
    y, w = torch.from_numpy(rows.y[idx]), torch.from_numpy(rows.weight[idx])
    loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).sum() / w.sum().clamp(min=1.0)
    if rows.sampled:
        loss = loss * sampled_bce
    shown = torch.from_numpy(rows.shown[idx])
    if rows.sampled:  # per head, the positive (column 0) against the sampled candidates, log-Q corrected
        valid = torch.from_numpy(rows.cand[idx] >= 0)
        z = (logits - torch.from_numpy(rows.logq[idx])[..., None]).masked_fill(~valid[..., None], float("-inf"))
        ce = -torch.log_softmax(z, dim=1)[:, 0, :]  # (b, heads)
        has = y[:, 0, :] > 0
        loss = loss + (ce * has).sum() / has.sum().clamp(min=1)
    elif shown.any():
        target = torch.from_numpy(rows.dwell[idx])
        loss = loss + DWELL_WEIGHT * (dwell - target).abs()[shown].mean()
    return loss


def train_phoenix(train: PhoenixRows, valid: PhoenixRows, cfg: PhoenixConfig,
                  progress: Progress | None = None) -> tuple[PhoenixRanker, dict[str, Any]]:
    """Fit with early stopping on the validation loss, then Platt-calibrate on validation. Seeded."""
    t0 = time.perf_counter()
    with seeded(cfg.seed):
        model = new_model(cfg, int(max(train.inputs.arrays["cand_topic"].max(initial=0), 0)) + 1)
    context = train.inputs.arrays["cand_context"][train.cand >= 0]
    std = context.std(0) if len(context) else np.ones(context.shape[-1], np.float32)
    model.context_mean.copy_(torch.from_numpy(context.mean(0) if len(context) else np.zeros_like(std)))
    model.context_std.copy_(torch.from_numpy(np.where(std > 1e-6, std, np.inf).astype(np.float32)))
    if train.known_until is not None:
        model.known_until.fill_(train.known_until)
    chunk = max(cfg.batch_size, 256)
    # Posts are unknown to the model as often as serving will meet them: on a feed most candidates are newer than
    # the training window (their ids would be noise), in a catalog almost none are.
    valid_cand = valid.inputs.arrays["cand_post"][valid.cand >= 0] if len(valid) else np.zeros(0)
    unknown = float(np.mean(valid_cand < 0)) if len(valid_cand) else 0.0
    dropout = (cfg.id_dropout, max(cfg.id_dropout, unknown))

    def batch_loss(idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return _loss(model, train, idx, dropout, rng, cfg.sampled_bce)

    def valid_loss() -> float:
        parts = [(_loss(model, valid, slice(i, i + chunk), sampled_bce=cfg.sampled_bce).item(),
                  min(chunk, len(valid) - i))
                 for i in range(0, len(valid), chunk)]
        return sum(v * n for v, n in parts) / max(sum(n for _, n in parts), 1)

    opts = table_optimizers(model, cfg)
    # the dense learning rate decays along a half cosine over the planned steps (to 10 %): the validation loss
    # of a constant rate jitters by more than an epoch gains
    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opts[0], lambda k: 0.1 + 0.45 * (1 + math.cos(math.pi * min(k / max(steps, 1), 1.0))))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse invariant checks", UserWarning)  # AdaGrad's sparse state
        result = fit(model, opts, batch_loss, len(train), epochs=cfg.epochs, batch_size=cfg.batch_size,
                     min_batch=2, valid_loss=valid_loss if len(valid) else None, patience=cfg.patience,
                     min_delta=1e-5, seed=cfg.seed, progress=progress, stage="phoenix", schedulers=[schedule])
    if len(valid):
        _calibrate(model, valid)
    seconds = time.perf_counter() - t0
    return model, {"epochs": len(result.epochs), "valid_loss": [round(v, 6) for v in result.valid_losses],
                   "train_rows": len(train), "valid_rows": len(valid), "seconds": round(seconds, 2),
                   "rows_per_s": round(result.examples / max(seconds, 1e-9)),
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "unknown_post_share": round(unknown, 4),
                   "recipe": "engagements + sampled negatives (softmax, log-Q)" if train.sampled
                   else "page views + borrowed negatives (BCE)"}


def table_optimizers(model: torch.nn.Module, cfg: PhoenixConfig) -> list[torch.optim.Optimizer]:
    """Dense weights: AdamW; the hashed tables (sparse gradients): AdaGrad, as PHOENIX.md's plan (X: row-wise)."""
    tables = [p for name, p in model.named_parameters() if name.endswith("table.weight")]
    dense = [p for name, p in model.named_parameters() if not name.endswith("table.weight")]
    return [torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay),
            torch.optim.Adagrad(tables, lr=cfg.table_lr)]


def new_model(cfg: PhoenixConfig, topics: int) -> PhoenixRanker:
    return PhoenixRanker(RANKER_HEADS, N_ACTIONS, len(context_features(cfg)) + 1,  # + the trend count
                         d_model=cfg.d_model, layers=cfg.layers, attn_heads=cfg.attn_heads, head_dim=cfg.head_dim,
                         ffn=cfg.ffn, width=cfg.width,
                         user_buckets=cfg.user_buckets, post_buckets=cfg.post_buckets,
                         author_buckets=cfg.author_buckets, topics=topics,
                         candidate_isolation=cfg.candidate_isolation, context_hidden=cfg.context_hidden)


@torch.no_grad()
def logits_of(model: PhoenixRanker, rows: PhoenixRows, chunk: int = 256) -> np.ndarray:
    model.eval()
    parts = [model(*rows.inputs.tensors(slice(i, i + chunk)))[0].numpy() for i in range(0, len(rows), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, rows.cand.shape[1], len(RANKER_HEADS)), np.float32)


def _calibrate(model: PhoenixRanker, rows: PhoenixRows) -> None:
    """Platt scaling per head on the validation rows' weighted candidates (shown ones only where logged)."""
    logits = torch.from_numpy(logits_of(model, rows))
    y, w = torch.from_numpy(rows.y), torch.from_numpy(rows.weight)
    if not rows.sampled:
        w = w * torch.from_numpy(rows.shown)[..., None]
    a = torch.ones(len(RANKER_HEADS), requires_grad=True)
    b = torch.zeros(len(RANKER_HEADS), requires_grad=True)
    opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=100)

    def closure() -> float:
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(a * logits + b, y, reduction="none") * w).sum() / w.sum()
        loss.backward()
        return float(loss.detach())

    opt.step(closure)
    model.platt_a.copy_(a.detach())
    model.platt_b.copy_(b.detach())


def evaluate(model: PhoenixRanker, rows: PhoenixRows, truth: GroundTruth | None = None,
             store: FeatureStore | None = None) -> dict[str, dict[str, Any]]:
    """Per-head metrics on the shown candidates (logged impressions; without them, the engagement and
    its sampled negatives), as the heavy ranker reports them (`head_report`)."""
    logits = torch.from_numpy(logits_of(model, rows))
    probs = torch.sigmoid(logits * model.platt_a + model.platt_b).numpy()
    keep = rows.shown if not rows.sampled else rows.cand >= 0
    r, c = np.nonzero(keep)
    return head_report(probs[r, c], rows.y[r, c], rows.user_row[r], rows.cand[r, c], rows.time[r], truth, store)

