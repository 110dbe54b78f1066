"""`RecommendationEngine`: the Python API agent simulations call (sync and async).

    engine = RecommendationEngine.open("runs/default")
    page = engine.recommend(user_id, n=35)
    engine.record_interaction(user_id, post_id, "like")   # changes the very next page
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ForYouConfig, apply_overrides
from foryou.data import snapshot
from foryou.data.dataset import Dataset, read_manifest
from foryou.data.split import history
from foryou.features import FeatureStore
from foryou.graph.index import KIND_CODE, ServingIndex
from foryou.graph.overlay import RealtimeOverlay
from foryou.graph.realgraph import KINDS as REALGRAPH_KINDS
from foryou.logs import Timer
from foryou.timeline.loading import load_models
from foryou.timeline.pipeline import for_you_pipeline
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState
from foryou.vocab import POST_KINDS, RANKER_HEADS

log = logging.getLogger("foryou.timeline")
SNAPSHOT_VERSION = "2"  # the tag also hashes the modules' source; bump for changes it cannot see
INTERACTIONS = ("impression", *KIND_CODE)
RELATIONS = ("follow", "unfollow", "block", "mute", "unblock", "unmute")


class UnknownUser(KeyError):
    def __str__(self) -> str:
        return f"unknown user {self.args[0]}"


class UnknownPost(KeyError):
    def __str__(self) -> str:
        return f"unknown post {self.args[0]}"


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
    cursor: str | None
    timings_ms: dict[str, float]
    sources: dict[str, int]  # candidates each source contributed (after its light ranker)
    errors: list[str]
    models: dict[str, str]
    trace: dict[str, Any] | None = None


class RecommendationEngine:
    """Serving index + real-time overlay + the For You pipeline, built once from a dataset."""

    def __init__(self, dataset: Dataset, config: ForYouConfig | None = None, as_of: int | None = None):
        as_of = dataset.manifest.time_range[1] + 1 if as_of is None else as_of
        with Timer() as t:
            h = history(dataset, as_of)
            index = ServingIndex(h)
            realgraph, simclusters = _graph_models(h)
            store = FeatureStore(h)
        self._assemble(index, realgraph, simclusters, store, dataset.path, config, as_of, t.seconds)

    def _assemble(self, index: ServingIndex, realgraph: Any, simclusters: Any, store: FeatureStore,
                  path: Path | None, config: ForYouConfig | None, as_of: int, seconds: float) -> None:
        self.config = config or ForYouConfig()
        self.state = TimelineState(index=index, overlay=RealtimeOverlay(index), config=self.config,
                                   realgraph=realgraph, simclusters=simclusters, features=store)
        if path is not None:
            self.state.models, self.model_status = load_models(path, store)
            coefficients = self.state.models.pop("realgraph", None)
            if coefficients is not None and realgraph is not None:
                realgraph.coefficients = coefficients  # the learned RealGraph weighs follows from now on
        else:
            self.model_status = {"heavy_ranker": "missing: no dataset directory; heuristic fallback",
                                 "two_tower": "missing: no dataset directory"}
        self.now = as_of
        self.build_seconds = seconds
        self.pipeline = for_you_pipeline(self.state)
        self._arm_pipelines: dict[str, Any] = {}
        self._served: OrderedDict[str, frozenset[int]] = OrderedDict()
        self._cursor_ids = itertools.count(1)
        self._lock = threading.RLock()
        log.info("engine ready", extra={"as_of": as_of, "seconds": round(seconds, 3),
                                        "users": len(index.user_ids), "posts": len(index.post_id)})

    @classmethod
    def open(cls, path: str | Path, config: ForYouConfig | None = None, as_of: int | None = None,
             cache: bool = True) -> RecommendationEngine:
        """Open a dataset directory. The built serving structures are snapshotted beside it
        (`DATASET/.serving/`, memory-mapped on the next open) unless `cache` is off."""
        path = Path(path)
        manifest = read_manifest(path)
        as_of = manifest.time_range[1] + 1 if as_of is None else as_of
        snap, tag = path / ".serving" / f"as_of-{as_of}", _fingerprint(path, as_of)
        if cache:
            try:
                with Timer() as t:
                    parts = snapshot.load(snap, tag)
                engine = object.__new__(cls)
                engine._assemble(parts["index"], parts["realgraph"], parts["simclusters"], parts["features"], path,
                                 config, as_of, t.seconds)
                engine.loaded_from = snap
                return engine
            except snapshot.SnapshotError as exc:
                log.info("no usable serving snapshot; building", extra={"reason": str(exc)})
        engine = cls(Dataset.load(path), config, as_of)
        engine.loaded_from = None
        if cache:
            try:
                snapshot.save({"index": engine.state.index, "realgraph": engine.state.realgraph,
                               "simclusters": engine.state.simclusters, "features": engine.state.features},
                              snap, tag)
            except OSError as exc:  # a read-only dataset directory: serve without a snapshot
                log.warning("could not write serving snapshot", extra={"path": str(snap), "error": str(exc)})
        return engine

    # -- reads ------------------------------------------------------------------------------------

    def recommend(self, user_id: int, n: int = 35, context: dict[str, Any] | None = None, cursor: str | None = None,
                  explain: bool = False, trace: bool = False, now: int | None = None,
                  overrides: dict[str, Any] | None = None, exclude: Any = None) -> TimelineResponse:
        """`overrides`: a config override tree (an experiment arm's) served by its own cached pipeline.
        `exclude`: post ids already served to this client (the HTTP service's self-contained
        cursors), an alternative to the engine-held `cursor`."""
        idx = self.state.index
        row = idx.user_row(int(user_id))
        if row is None:
            raise UnknownUser(user_id)
        served = self._served.get(cursor, frozenset()) if cursor else frozenset()
        if exclude is not None and len(exclude):
            ids = np.unique(np.fromiter(exclude, np.int64))
            pos = np.minimum(np.searchsorted(idx.post_id, ids), len(idx.post_id) - 1)
            served = served | frozenset(pos[idx.post_id[pos] == ids].tolist())
        query = TimelineQuery(user_id=int(user_id), user_row=row, now=int(now or self.now), n=int(n),
                              explain=explain, served=served, params=dict(context or {}))
        with self._lock:  # writes mutate the overlay and counters: a request reads one consistent state
            result = self.pipeline_for(overrides).run(query, trace=trace)
        b = result.batch
        items = []
        if len(b):  # the returned page only: columns → Python lists once, then zip
            cols = {c: b[c].tolist() for c in ("post_id", "source", "score", "in_network", "post_row")}
            preds = {h: np.round(b[f"p_{h}"], 5).tolist() for h in RANKER_HEADS}
            authors = idx.user_ids[b["author_row"]].tolist()
            created = idx.created_at[b["post_row"]].tolist()
            liked_by = b.get("liked_by", np.full(len(b), None, dtype=object))
            expl = b.get("explanation", np.full(len(b), None, dtype=object))
            reasons = b.get("network_reason", np.full(len(b), "", dtype=object))
            for i in range(len(b)):
                items.append(TimelineItem(
                    rank=i + 1, post_id=cols["post_id"][i], author_id=authors[i], source=str(cols["source"][i]),
                    score=cols["score"][i], in_network=cols["in_network"][i], created_at=created[i],
                    predictions={h: preds[h][i] for h in RANKER_HEADS}, liked_by=list(liked_by[i] or []),
                    explanation=expl[i], network_reason=str(reasons[i] or "")))
        next_cursor = self._remember(served | frozenset(b["post_row"].tolist()) if len(b) else served)
        sources = {k.split(":", 1)[1]: n for k, n in result.counts.items() if k.startswith("candidate_pipeline:")}
        return TimelineResponse(
            user_id=int(user_id), items=items, cold_start=len(self.state.overlay.following_rows(row)) == 0,
            cursor=next_cursor,
            timings_ms=result.timings_ms, sources=sources, errors=result.errors, models=self.model_versions(),
            trace=result.trace.to_dict() if result.trace is not None else None)

    def pipeline_for(self, overrides: dict[str, Any] | None):
        """The pipeline for a config override set: same index, overlay and models, its own config
        (experiment arms: exploration strategy, weights, diversity ...); built once per set."""
        if not overrides:
            return self.pipeline
        key = json.dumps(overrides, sort_keys=True)
        with self._lock:
            if key not in self._arm_pipelines:
                config = apply_overrides(self.config, overrides)
                self._arm_pipelines[key] = for_you_pipeline(dataclasses.replace(self.state, config=config))
            return self._arm_pipelines[key]

    def model_versions(self) -> dict[str, str]:
        """What each model slot is serving right now (shown by `foryou timeline`, /readyz, responses and
        `foryou eval`). A model that is there but cannot be served says "corrupt: <reason>, serving the
        fallback (...)" (or unreadable / incompatible), never "not trained"."""
        s = self.state
        status = self.model_status
        versions = {"heavy_ranker": status.get("heavy_ranker", "missing: heuristic fallback"),
                    "light_ranker": self.light_ranker_status()}
        versions["realgraph"] = ("absent (uniform follows)" if s.realgraph is None
                                 else status.get("realgraph", "decayed-count heuristic"))
        versions["simclusters"] = "absent" if s.simclusters is None else (
            "snapshot" if getattr(self, "loaded_from", None) else "built at startup")
        two_tower = status.get("two_tower", "missing")
        versions["embedding_ann"] = ("not trained: source skipped (fallback)" if two_tower.startswith("missing")
                                     else two_tower)
        return versions

    def light_ranker_status(self, batches: dict[str, int] | None = None) -> str:
        """Both light rankers, each side named: the registry stores them as `light_ranker_in_network` and
        `light_ranker_out_of_network`, and either may be promoted alone. `batches` (side → source batches its
        trained model ordered, e.g. over an evaluation) adds whether it actually ran: below
        `light_ranker_keep` candidates per source the cut does not bind and the model is not called."""
        status = self.model_status
        sides = {side: status.get(f"light_ranker_{side}", "missing: heuristic fallback")
                 for side in ("in_network", "out_of_network")}
        if all(line.startswith("missing:") for line in sides.values()):
            return "heuristic (no trained model)"
        parts = []
        for side, line in sides.items():
            if batches is not None and f"light_ranker_{side}" in self.state.models:
                n = batches.get(side, 0)
                keep = self.config.timeline.ranking.light_ranker_keep
                line += (f", ordered {n:,} source batches" if n else
                         f", never ran (no {side.replace('_', '-')} source returned more than "
                         f"light_ranker_keep = {keep} candidates, so nothing was cut)")
            parts.append(f"{side.replace('_', '-')} {line}")
        return "; ".join(parts)

    def _remember(self, served: frozenset[int]) -> str:
        with self._lock:
            token = f"c{next(self._cursor_ids):x}"
            self._served[token] = served
            while len(self._served) > 10_000:
                self._served.popitem(last=False)
        return token

    # -- writes -----------------------------------------------------------------------------------

    def record_interaction(self, user_id: int, post_id: int, kind: str, t: int | None = None, **details: Any) -> None:
        """Apply one interaction to the real-time overlay (seen, counters, UTEG, blocks, fatigue,
        RealGraph, SimClusters). `details` (e.g. dwell_time) are kept for the event log."""
        if kind not in INTERACTIONS:
            raise ValueError(f"unknown interaction {kind!r}; one of {', '.join(INTERACTIONS)}")
        idx = self.state.index
        u = idx.user_row(int(user_id))
        if u is None:
            raise UnknownUser(user_id)
        p = int(np.searchsorted(idx.post_id, int(post_id)))
        if p >= len(idx.post_id) or idx.post_id[p] != int(post_id):
            raise UnknownPost(post_id)
        t = int(t if t is not None else self.now)
        with self._lock:
            self.state.overlay.record(u, p, kind, t)
            self.state.features.record(u, p, kind, t)
            if self.state.realgraph is not None and kind in REALGRAPH_KINDS:
                self.state.realgraph.record(u, int(idx.author_row[p]), kind, t)
            if self.state.simclusters is not None and kind == "like":
                self.state.simclusters.add_like(u, p, t)

    def record_interactions(self, user_ids: Any, post_ids: Any, kinds: list[str], times: Any) -> None:
        """Many interactions at once (the service's batches): ids resolved in one vectorised pass,
        the lock taken once; the same effects as `record_interaction` for each, in order."""
        bad = set(kinds) - set(INTERACTIONS)
        if bad:
            raise ValueError(f"unknown interaction {sorted(bad)[0]!r}; one of {', '.join(INTERACTIONS)}")
        idx = self.state.index
        users, posts = np.asarray(user_ids, np.int64), np.asarray(post_ids, np.int64)
        u = np.minimum(np.searchsorted(idx.user_ids, users), len(idx.user_ids) - 1)
        p = np.minimum(np.searchsorted(idx.post_id, posts), len(idx.post_id) - 1)
        if (idx.user_ids[u] != users).any():
            raise UnknownUser(int(users[np.argmax(idx.user_ids[u] != users)]))
        if (idx.post_id[p] != posts).any():
            raise UnknownPost(int(posts[np.argmax(idx.post_id[p] != posts)]))
        authors = idx.author_row[p].tolist()
        s = self.state
        ov, fs, rg, sc = s.overlay, s.features, s.realgraph, s.simclusters
        with self._lock:
            for ur, pr, a, kind, t in zip(u.tolist(), p.tolist(), authors, kinds, np.asarray(times).tolist(),
                                          strict=True):
                ov.record(ur, pr, kind, t)
                fs.record(ur, pr, kind, t)
                if rg is not None and kind in REALGRAPH_KINDS:
                    rg.record(ur, a, kind, t)
                if sc is not None and kind == "like":
                    sc.add_like(ur, pr, t)

    def post_row(self, post_id: int) -> int:
        idx = self.state.index
        p = int(np.searchsorted(idx.post_id, int(post_id)))
        if p >= len(idx.post_id) or idx.post_id[p] != int(post_id):
            raise UnknownPost(post_id)
        return p

    def _user_row(self, user_id: int) -> int:
        u = self.state.index.user_row(int(user_id))
        if u is None:
            raise UnknownUser(user_id)
        return u

    def relate(self, user_id: int, target_id: int, action: str, t: int | None = None) -> None:
        """A follow-graph action of `user_id` on the account `target_id`, in effect on the next
        request: follow, unfollow, block, mute (both remove the account's posts), unblock, unmute."""
        if action not in RELATIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(RELATIONS)}")
        u, v = self._user_row(user_id), self._user_row(target_id)
        t = int(t if t is not None else self.now)
        s = self.state
        with self._lock:
            if action == "follow":
                s.overlay.follow(u, v)
                if s.realgraph is not None:
                    s.realgraph.record(u, v, "follow", t)
                s.features.relate(u, v, "follow", t)
            elif action == "unfollow":
                s.overlay.unfollow(u, v)
                s.features.relate(u, v, "unfollow", t)
            elif action in ("block", "mute"):
                s.overlay.block(u, v)
            else:
                s.overlay.unblock(u, v)

    def add_post(self, post_id: int, author_id: int, t: int | None = None, kind: str = "original",
                 parent_id: int | None = None, topic: int = -1, has_media: bool = False, has_link: bool = False,
                 length: int = 0, labels: dict[str, bool] | None = None) -> int:
        """A post created now: a candidate on the next request (in-network for the author's
        followers, UTEG and trending once engaged with). Ids must increase; returns the post row."""


        if kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {kind!r}; one of {', '.join(POST_KINDS)}")
        a = self._user_row(author_id)
        parent = self.post_row(parent_id) if parent_id is not None else -1
        t = int(t if t is not None else self.now)
        s = self.state
        with self._lock:
            row = s.overlay.add_post(int(post_id), a, t, POST_KINDS.index(kind), parent, int(topic), has_media,
                                     has_link, int(length), labels)
            f, g = s.features, s.overlay.grower
            source = parent if kind == "repost" and parent >= 0 else row  # a repost shows its source
            if source != row:
                topic = int(f.topic[source])
            for name, value in (("post_id", post_id), ("author_row", a), ("created_at", t), ("topic", int(topic)),
                                ("content_row", source)):
                g.append(f, name, value)
            static = {"has_media": has_media, "has_link": has_link, "length_log": np.log1p(length),
                      "is_reply": kind == "reply", **(labels or {})}
            for name in f.static:
                value = float(kind == "repost") if name == "is_repost" else (
                    float(f.static[name][source]) if source != row else float(static.get(name, False)))
                g.append(f.static, name, value)
            if s.simclusters is not None:
                s.simclusters.add_post(t)
        return row

    # -- async twins --------------------------------------------------------------------------------

    async def arecommend(self, user_id: int, n: int = 35, context: dict[str, Any] | None = None,
                         **kwargs: Any) -> TimelineResponse:
        return await asyncio.to_thread(self.recommend, user_id, n, context, **kwargs)

    async def arecord_interaction(self, user_id: int, post_id: int, kind: str, **details: Any) -> None:
        await asyncio.to_thread(self.record_interaction, user_id, post_id, kind, **details)

    def close(self) -> None:
        self.pipeline.close()
        for pipeline in self._arm_pipelines.values():
            pipeline.close()


def _fingerprint(path: Path, as_of: int) -> str:
    """What a snapshot was built from: the manifest, every table file's size and mtime, the cut,
    and the source of the modules whose objects it holds (a code change invalidates it)."""
    from foryou.embeddings import simclusters
    from foryou.features import counter, store
    from foryou.graph import index, realgraph

    h = hashlib.sha256(f"{SNAPSHOT_VERSION}|{as_of}|".encode())
    for module in (index, realgraph, simclusters, counter, store):
        h.update(Path(module.__file__).read_bytes())
    h.update((path / "manifest.json").read_bytes())
    for name in sorted(p.name for p in path.glob("*.parquet")):
        st = (path / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _graph_models(h):
    """RealGraph and SimClusters built from the same History as the index."""
    from foryou.embeddings.simclusters import SimClusters, SimClustersConfig
    from foryou.graph.realgraph import RealGraph

    return RealGraph.build(h), SimClusters.build(h, SimClustersConfig())
