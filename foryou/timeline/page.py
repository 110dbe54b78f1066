"""Served pages. `PageBatch` is what the engine produces: users × page-size columns. A per-post
`TimelineItem` / `TimelineResponse` is built only at an edge that wants objects (`page(i)`,
`to_responses()`: the HTTP service, the CLI table); evaluation and simulation read the columns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from foryou.data.ids import IdMap
from foryou.mixer import BatchResult
from foryou.timeline import columns as c
from foryou.vocab import RANKER_HEADS


@dataclass
class TimelineItem:
    rank: int
    post_id: int
    author_id: int
    source: str
    score: float
    in_network: bool
    created_at: int
    predictions: dict[str, float]
    liked_by: list[int] = field(default_factory=list)
    explanation: dict[str, Any] | None = None
    network_reason: str = ""  # "in-network (you follow @42), found by simclusters": side, why, and the source


@dataclass
class TimelineResponse:
    user_id: int
    items: list[TimelineItem]
    cold_start: bool
    timings_ms: dict[str, float]
    sources: dict[str, int]  # candidates each source contributed (after its light ranker)
    errors: list[str]
    models: dict[str, str]
    trace: dict[str, Any] | None = None


    def shown(self, ids: IdMap) -> TimelineResponse:
        """A copy with the platform's own ids (the CLI's table, the agent API's Feed); itself for int ids. The
        fields then hold strings: nothing downstream may compute with them."""
        if ids.users.identity and ids.posts.identity:
            return self
        posts = ids.posts.json([it.post_id for it in self.items])
        authors = ids.users.json([it.author_id for it in self.items])
        items = [dataclasses.replace(it, post_id=cast(int, p), author_id=cast(int, a),
                                     liked_by=cast(list[int], ids.users.json(it.liked_by)))
                 for it, p, a in zip(self.items, posts, authors, strict=True)]
        return dataclasses.replace(self, user_id=cast(int, ids.users.show(self.user_id)), items=items)


@dataclass
class PageBatch:
    """Pages of many users as columns of shape (users, n); slot j of user i is empty when j ≥ lengths[i]
    (post_id / author_id −1, score and predictions NaN, source "", in_network False)."""

    user_id: np.ndarray  # (users,)
    post_id: np.ndarray  # (users, n) int64
    author_id: np.ndarray  # (users, n) int64
    score: np.ndarray  # (users, n) float32
    source: np.ndarray  # (users, n) object
    in_network: np.ndarray  # (users, n) bool
    created_at: np.ndarray  # (users, n) int64
    predictions: dict[str, np.ndarray]  # head → (users, n) float32
    lengths: np.ndarray  # (users,) posts on each page
    cold_start: np.ndarray  # (users,) bool: follows nobody
    timings_ms: list[dict[str, float]]  # per user (a step shared by the batch counts its share)
    sources: list[dict[str, int]]  # per user: candidates each source contributed
    errors: list[list[str]]
    models: dict[str, str]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # (users, n) object: liked_by, network_reason, ...
    traces: list[dict[str, Any] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.user_id)

    @property
    def n(self) -> int:
        return int(self.post_id.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """(users, n) bool: the slot holds a post."""
        return np.arange(self.n) < self.lengths[:, None]

    @property
    def rank(self) -> np.ndarray:
        """(users, n) 1-based position on the page, 0 in empty slots."""
        return np.where(self.valid, np.arange(1, self.n + 1), 0)

    def page(self, i: int) -> TimelineResponse:
        """User i's page as objects (the edge: HTTP, CLI)."""
        k = int(self.lengths[i])
        cols = {name: getattr(self, name)[i, :k].tolist()
                for name in ("post_id", "author_id", "source", "score", "in_network", "created_at")}
        preds = {h: np.round(self.predictions[h][i, :k], 5).tolist() for h in RANKER_HEADS}
        extra = {name: self.extras[name][i, :k] if name in self.extras else np.full(k, None, dtype=object)
                 for name in (c.LIKED_BY, c.EXPLANATION, c.NETWORK_REASON)}
        items = [TimelineItem(
            rank=j + 1, post_id=cols["post_id"][j], author_id=cols["author_id"][j], source=str(cols["source"][j]),
            score=cols["score"][j], in_network=cols["in_network"][j], created_at=cols["created_at"][j],
            predictions={h: preds[h][j] for h in RANKER_HEADS}, liked_by=list(extra[c.LIKED_BY][j] or []),
            explanation=extra[c.EXPLANATION][j], network_reason=str(extra[c.NETWORK_REASON][j] or ""))
            for j in range(k)]
        return TimelineResponse(
            user_id=int(self.user_id[i]), items=items, cold_start=bool(self.cold_start[i]),
            timings_ms=self.timings_ms[i], sources=self.sources[i], errors=self.errors[i],
            models=self.models, trace=self.traces[i] if self.traces else None)

    def to_responses(self) -> list[TimelineResponse]:
        return [self.page(i) for i in range(len(self))]

    @classmethod
    def from_responses(cls, responses: Sequence[TimelineResponse], n: int) -> PageBatch:
        """Pages that arrived as objects (an HTTP client's) as columns; items past `n` are dropped."""
        users = len(responses)
        batch = cls.concat([], n)
        lengths = np.array([min(len(r.items), n) for r in responses], np.int64)
        batch.user_id, batch.lengths = np.array([r.user_id for r in responses], np.int64), lengths
        batch.post_id, batch.author_id = np.full((users, n), -1, np.int64), np.full((users, n), -1, np.int64)
        batch.score, batch.source = np.full((users, n), np.nan, np.float32), np.full((users, n), "", object)
        batch.in_network, batch.created_at = np.zeros((users, n), bool), np.full((users, n), -1, np.int64)
        batch.predictions = {h: np.full((users, n), np.nan, np.float32) for h in RANKER_HEADS}
        for i, r in enumerate(responses):
            for j, it in enumerate(r.items[:n]):
                batch.post_id[i, j], batch.author_id[i, j], batch.score[i, j] = it.post_id, it.author_id, it.score
                batch.source[i, j], batch.in_network[i, j], batch.created_at[i, j] = (it.source, it.in_network,
                                                                                     it.created_at)
                for h, p in it.predictions.items():
                    if h in batch.predictions:
                        batch.predictions[h][i, j] = p
        batch.cold_start = np.array([r.cold_start for r in responses], bool)
        batch.timings_ms, batch.sources = [r.timings_ms for r in responses], [r.sources for r in responses]
        batch.errors = [r.errors for r in responses]
        batch.models = responses[-1].models if responses else {}
        return batch

    @classmethod
    def concat(cls, parts: Sequence[PageBatch], n: int) -> PageBatch:
        """Pages of several batches (same n) stacked user-wise."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            def none(dtype: Any) -> np.ndarray:
                return np.empty((0, n), dtype)

            return cls(np.empty(0, np.int64), none(np.int64), none(np.int64), none(np.float32), none(object),
                       none(bool), none(np.int64), {h: none(np.float32) for h in RANKER_HEADS}, np.empty(0, np.int64),
                       np.empty(0, bool), [], [], [], {})

        def stack(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        extras = {name: np.concatenate([p.extras[name] for p in parts])
                  for name in parts[0].extras if all(name in p.extras for p in parts)}
        return cls(stack("user_id"), stack("post_id"), stack("author_id"), stack("score"), stack("source"),
                   stack("in_network"), stack("created_at"),
                   {h: np.concatenate([p.predictions[h] for p in parts]) for h in RANKER_HEADS}, stack("lengths"),
                   stack("cold_start"), [t for p in parts for t in p.timings_ms], [x for p in parts for x in p.sources],
                   [e for p in parts for e in p.errors], parts[0].models, extras,
                   [t for p in parts for t in p.traces])


def page_batch(out: BatchResult, user_ids: np.ndarray, author_ids: np.ndarray, created_at: np.ndarray, n: int,
               cold_start: np.ndarray, models: dict[str, str], extras: tuple[str, ...] = ()) -> PageBatch:
    """Scatter a pipeline's selected candidates (query i's rows = segment i) into users × n columns.
    `author_ids` and `created_at` are the batch's per-row values, looked up by the caller."""
    b, seg = out.batch, out.segments
    users = len(user_ids)
    lengths = np.minimum(seg.lengths, n)
    if users == 1:  # one page: its first n rows
        k = int(lengths[0])

        def grid(values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
            out_ = np.full((1, n), fill, dtype=dtype)
            out_[0, :k] = values[:k]
            return out_
    else:
        slot = np.arange(len(b)) - np.repeat(seg.offsets[:-1], seg.lengths)  # position within each page
        take = slot < n
        r, s = seg.ids[take], slot[take]

        def grid(values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
            out_ = np.full((users, n), fill, dtype=dtype)
            out_[r, s] = values[take]
            return out_

    has = len(b) > 0
    empty_f = np.empty(0, np.float32)
    return PageBatch(
        user_id=np.asarray(user_ids, np.int64),
        post_id=grid(b[c.POST_ID] if has else np.empty(0, np.int64), -1, np.int64),
        author_id=grid(author_ids, -1, np.int64),
        score=grid(b[c.SCORE] if has else empty_f, np.nan, np.float32),
        source=grid(b[c.SOURCE] if has else np.empty(0, object), "", object),
        in_network=grid(b[c.IN_NETWORK] if has else np.empty(0, bool), False, bool),
        created_at=grid(created_at, -1, np.int64),
        predictions={h: grid(b[c.PREDICTIONS[h]] if has else empty_f, np.nan, np.float32) for h in RANKER_HEADS},
        lengths=lengths.astype(np.int64),
        cold_start=np.asarray(cold_start, bool),
        timings_ms=[res.timings_ms for res in out.results],
        sources=[{k.split(":", 1)[1]: v for k, v in res.counts.items() if k.startswith("candidate_pipeline:")}
                 for res in out.results],
        errors=[res.errors for res in out.results],
        models=models,
        extras={name: grid(b[name], None, object) for name in extras if has and name in b},
        traces=[res.trace.to_dict() if res.trace is not None else None for res in out.results],
    )
