"""`RecommendationEngine`: the Python API agent simulations call (sync and async).

    engine = RecommendationEngine.open("runs/default")
    page = engine.recommend(user_id)                      # TimelineResponse (the configured page size)
    engine.record_interaction(user_id, post_id, "like")   # changes the very next page
    pages = engine.recommend_many(user_ids)               # PageBatch: users × n columns, one pass
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ForYouConfig, apply_overrides
from foryou.data import snapshot
from foryou.data.dataset import Dataset
from foryou.data.ids import ExternalId, IdConflict, IdMap
from foryou.data.lookup import member
from foryou.data.manifest import read_manifest
from foryou.data.split import History, history
from foryou.data.state import models_dir, serving_dir, state_dir
from foryou.data.timescale import time_scale
from foryou.embeddings.simclusters import SimClusters
from foryou.features import FeatureStore
from foryou.graph.index import KIND_CODE, ServingIndex
from foryou.graph.overlay import RealtimeOverlay
from foryou.graph.realgraph import KINDS as REALGRAPH_KINDS
from foryou.graph.realgraph import RealGraph, RealGraphCoefficients
from foryou.logs import Timer
from foryou.mixer import BatchResult, StageObserver
from foryou.timeline import columns as c
from foryou.timeline.loading import TrainedHeavyRanker, load_models
from foryou.timeline.page import PageBatch, TimelineItem, TimelineResponse, page_batch
from foryou.timeline.pipeline import ForYouPipeline, for_you_pipeline
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState
from foryou.timeline.views import EngineViews, UnknownPost, UnknownUser
from foryou.timeline.windows import apply_learned, heuristic_status, resolve_windows, scale_of, small_catalog_note
from foryou.vocab import HOUR, POST_KINDS, RELATIONS

__all__ = ["IdConflict", "RecommendationEngine", "TimelineItem", "TimelineResponse", "UnknownPost", "UnknownUser"]

log = logging.getLogger("foryou.timeline")
SNAPSHOT_VERSION = "2"  # the tag also hashes the modules' source; bump for changes it cannot see
INTERACTIONS = ("impression", *KIND_CODE)
MAX_OVERRIDE_PIPELINES = 32  # override sets (experiment arms, explorer views) with a pipeline kept built
PAGE_EXTRAS = (c.LIKED_BY, c.NETWORK_REASON, c.EXPLANATION)


class RecommendationEngine(EngineViews):
    """Serving index + real-time overlay + the For You pipeline, built once from a dataset."""

    def __init__(self, dataset: Dataset, config: ForYouConfig | None = None, as_of: int | None = None,
                 state: Path | None = None):
        as_of = dataset.manifest.time_range[1] + 1 if as_of is None else as_of
        scale = dataset.manifest.time_scale or time_scale(  # an older manifest: measured on the train side
            dataset.tables["posts"], dataset.tables["engagements"], until=dataset.manifest.split.train_end)
        state = state_dir(dataset.path, state) if dataset.path is not None else None
        config = resolve_windows(apply_learned(config or ForYouConfig(), state), scale)  # learned, then derived
        with Timer() as t:
            h = history(dataset, as_of)
            index = ServingIndex(h, uteg_window_s=int(config.timeline.sources.uteg_hours * HOUR))
            realgraph, simclusters = _graph_models(h, config)
            store = FeatureStore(h)
        self._assemble(index, realgraph, simclusters, store, state, config, as_of, t.seconds)
        self.ids = IdMap.load(dataset.path)
        self.loaded_from: Path | None = None

    def _assemble(self, index: ServingIndex, realgraph: RealGraph | None, simclusters: SimClusters | None,
                  store: FeatureStore, state: Path | None, config: ForYouConfig | None, as_of: int,
                  seconds: float) -> None:
        self.config = config or ForYouConfig()
        self.state = TimelineState(index=index, overlay=RealtimeOverlay(index), config=self.config,
                                   realgraph=realgraph, simclusters=simclusters, features=store)
        self.state_dir = state
        if state is not None:
            self.state.models, self.model_status = load_models(models_dir(state), store)
            self.model_status["heuristic"] = heuristic_status(state)
            coefficients = self.state.models.pop("realgraph", None)
            if realgraph is not None:  # the learned RealGraph weighs follows from now on; else the decayed counts
                # (reset: a snapshot may carry the coefficients of a RealGraph that was promoted when it was saved)
                learned = coefficients if isinstance(coefficients, RealGraphCoefficients) else None
                realgraph.coefficients = learned or RealGraphCoefficients()
        else:
            self.model_status = {"heavy_ranker": "missing: no dataset directory; heuristic fallback",
                                 "two_tower": "missing: no dataset directory"}
        ranker = self.state.models.get("heavy_ranker")
        if isinstance(ranker, TrainedHeavyRanker):
            ranker.rows_per_call = self.config.timeline.batch.ranker_rows
        for slot in ("two_tower", "phoenix_retrieval"):  # embedding sources serve the (derived) age window too
            retriever = self.state.models.get(slot)
            if hasattr(retriever, "window_s"):
                retriever.window_s = int(self.config.timeline.sources.max_age_hours * HOUR)
        self.now = as_of
        self.build_seconds = seconds
        self.pipeline = for_you_pipeline(self.state)
        self._arm_pipelines: OrderedDict[str, ForYouPipeline] = OrderedDict()
        self._lock = threading.RLock()
        log.info("engine ready", extra={"as_of": as_of, "seconds": round(seconds, 3),
                                        "users": len(index.user_ids), "posts": len(index.post_id)})

    @classmethod
    def open(cls, path: str | Path, config: ForYouConfig | None = None, as_of: int | None = None,
             cache: bool = True, state: str | Path | None = None) -> RecommendationEngine:
        """Open a dataset directory. Models come from its state directory (`state`, default
        `data.state.state_dir`), where the built serving structures are also snapshotted (memory-mapped on
        the next open) unless `cache` is off; nothing is written into the dataset directory."""
        path = Path(path)
        state = state_dir(path, state)
        manifest = read_manifest(path)
        as_of = manifest.time_range[1] + 1 if as_of is None else as_of
        config = resolve_windows(apply_learned(config or ForYouConfig(), state), scale_of(manifest, path))
        snap, tag = serving_dir(state) / f"as_of-{as_of}", _fingerprint(path, as_of, config)
        if cache:
            try:
                with Timer() as t:
                    parts = snapshot.load(snap, tag, compose={
                        "index": ServingIndex.from_arrays, "realgraph": RealGraph.from_arrays,
                        "simclusters": SimClusters.from_arrays, "features": FeatureStore.from_arrays})
                engine = object.__new__(cls)
                engine._assemble(parts["index"], parts["realgraph"], parts["simclusters"], parts["features"], state,
                                 config, as_of, t.seconds)
                engine.loaded_from, engine.ids = snap, IdMap.load(path)
                return engine
            except snapshot.SnapshotError as exc:
                log.info("no usable serving snapshot; building", extra={"reason": str(exc)})
        engine = cls(Dataset.load(path), config, as_of, state)
        if cache:
            try:
                snapshot.save({"index": engine.state.index, "realgraph": engine.state.realgraph,
                               "simclusters": engine.state.simclusters, "features": engine.state.features},
                              snap, tag)
            except OSError as exc:  # a read-only state directory: serve without a snapshot
                log.warning("could not write serving snapshot", extra={"path": str(snap), "error": str(exc)})
        return engine

    def reload_models(self) -> dict[str, str]:
        """Serve the state directory's promoted models from the next request on (after training); the
        real-time overlay (every interaction recorded so far) stays. Returns `model_versions()`."""
        if self.state_dir is None:
            return self.model_versions()
        models, status = load_models(models_dir(self.state_dir), self.state.store)
        coefficients = models.pop("realgraph", None)
        with self._lock:
            if isinstance(coefficients, RealGraphCoefficients) and self.state.realgraph is not None:
                self.state.realgraph.coefficients = coefficients
            ranker = models.get("heavy_ranker")
            if isinstance(ranker, TrainedHeavyRanker):
                ranker.rows_per_call = self.config.timeline.batch.ranker_rows
            self.state.models, self.model_status = models, status
            old = [self.pipeline, *self._arm_pipelines.values()]
            self.pipeline, self._arm_pipelines = for_you_pipeline(self.state), OrderedDict()
        for pipeline in old:
            pipeline.close()
        return self.model_versions()

    # -- reads ------------------------------------------------------------------------------------

    def recommend(self, user_id: ExternalId, n: int | None = None, context: dict[str, Any] | None = None,
                  explain: bool = False, trace: bool = False, now: int | None = None,
                  overrides: dict[str, Any] | None = None,
                  exclude: Iterable[ExternalId] | None = None) -> TimelineResponse:
        """One page (`n` posts, the configured page size by default) as objects.

        `overrides`: a config override tree (an experiment arm's) served by its own cached pipeline.
        `exclude`: post ids already served to this client (the next page of a scroll: the caller keeps
        them — the HTTP service in its self-contained cursors, a simulation per session).
        Ids may be the platform's own (strings, see data.ids); the response carries internal ids
        (`ids.posts.external` shows them as the platform's)."""
        uid = self.user_id_of(user_id)
        query = self._query(self.user_row(uid), uid, n, now, exclude, explain, context)
        with self._lock:  # writes mutate the overlay and counters: a request reads one consistent state
            out = self.pipeline_for(overrides).run_many([query], trace=trace)
        return self._pages(out, [query], query.n).page(0)

    def recommend_each(self, user_ids: Sequence[ExternalId], n: int, now: int, overrides: dict[str, Any] | None = None,
                       exclude: Sequence[Iterable[ExternalId] | None] | None = None) -> list[TimelineResponse]:
        """`recommend(user_ids[i], n, now=now, overrides=overrides, exclude=exclude[i])` for every i, as objects,
        in one pipeline pass (the service's micro-batches: concurrent requests ranked together). Raises
        UnknownUser for the first unknown id."""
        queries = [self._query(self.user_row(uid), uid, n, now, exclude[i] if exclude is not None else None)
                   for i, uid in enumerate(self.user_id_of(u) for u in user_ids)]
        with self._lock:
            out = self.pipeline_for(overrides).run_many(queries)
        return self._pages(out, queries, n).to_responses()

    def recommend_many(self, user_ids: Sequence[ExternalId] | np.ndarray, n: int | None = None, now: int | None = None,
                       overrides: dict[str, Any] | None = None,
                       exclude: Sequence[Iterable[ExternalId] | None] | None = None) -> PageBatch:
        """Pages of many users at the same instant, as users × n columns (see PageBatch): the same pages as
        `recommend` per user, served faster by running every step after retrieval once over all their
        candidates (`timeline.batch.users_per_pass` users at a time). `exclude[i]`: post ids user i was
        already served. Raises UnknownUser for the first unknown id."""
        ids, rows = self._rows(user_ids)
        pipeline, step = self.pipeline_for(overrides), self.config.timeline.batch.users_per_pass
        size = int(n or self.config.timeline.mixing.page_size)
        pages = []
        for lo in range(0, len(ids), step):
            queries = [self._query(r, u, size, now, exclude[lo + i] if exclude is not None else None)
                       for i, (r, u) in enumerate(zip(rows[lo:lo + step].tolist(), ids[lo:lo + step].tolist(),
                                                      strict=True))]
            with self._lock:
                out = pipeline.run_many(queries)
            pages.append(self._pages(out, queries, size))
        return PageBatch.concat(pages, size)

    def funnel(self, user_ids: Sequence[int] | np.ndarray, until: str, observe: StageObserver | None = None,
               n: int | None = None, now: int | None = None, overrides: dict[str, Any] | None = None) -> BatchResult:
        """The For You pipeline for these users up to a stage (foryou.mixer.STAGES), in one pass: what
        evaluation measures per stage (each source's candidates, the merged set, what the ranker scores)."""
        ids, rows = self._rows(user_ids)
        queries = [self._query(r, u, n, now, None) for r, u in zip(rows.tolist(), ids.tolist(), strict=True)]
        with self._lock:
            return self.pipeline_for(overrides).run_many(queries, until=until, observe=observe)

    def _rows(self, user_ids: Sequence[ExternalId] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(internal ids, user rows); UnknownUser for the first unknown id."""
        mapped, ids = self.ids.users.internal(user_ids)
        found, rows = member(self.state.index.user_ids, ids)
        found &= mapped
        if not found.all():
            raise UnknownUser(list(user_ids)[int(np.argmax(~found))])
        return ids, rows

    def _query(self, row: int, user_id: int, n: int | None, now: int | None, exclude: Iterable[ExternalId] | None,
               explain: bool = False, context: dict[str, Any] | None = None) -> TimelineQuery:
        return TimelineQuery(user_id=int(user_id), user_row=int(row), now=int(now or self.now),
                             n=int(n or self.config.timeline.mixing.page_size), explain=explain,
                             served=self._served_rows(exclude), params=dict(context or {}))

    def _served_rows(self, exclude: Iterable[ExternalId] | None) -> np.ndarray:
        """Rows of the known post ids among `exclude` (unknown ids are ignored)."""
        if exclude is None:
            return np.empty(0, np.int64)
        if self.ids.posts.identity or isinstance(exclude, np.ndarray):
            ids = np.fromiter(exclude, np.int64)
        else:
            mapped, ids = self.ids.posts.internal(list(exclude))
            ids = ids[mapped]
        ids = np.unique(ids)
        if len(ids) == 0:
            return ids
        found, pos = member(self.state.index.post_id, ids)
        return np.asarray(pos[found], np.int64)

    def _pages(self, out: BatchResult, queries: Sequence[TimelineQuery], n: int) -> PageBatch:
        """The pipeline's output as users × n columns, with what a page shows beyond the pipeline's columns."""
        idx, b = self.state.index, out.batch
        authors = idx.user_ids[b[c.AUTHOR_ROW]] if len(b) else np.empty(0, np.int64)
        created = idx.created_at[b[c.POST_ROW]] if len(b) else np.empty(0, np.int64)
        cold = np.array([len(q.features[c.FOLLOWS]) == 0 if c.FOLLOWS in q.features
                         else len(self.state.overlay.following_rows(q.user_row)) == 0 for q in queries], bool)
        return page_batch(out, np.array([q.user_id for q in queries], np.int64), authors, created, n, cold,
                          self.model_versions(), PAGE_EXTRAS)

    def pipeline_for(self, overrides: dict[str, Any] | None) -> ForYouPipeline:
        """The pipeline for a config override set: same index, overlay and models, its own config
        (experiment arms: exploration strategy, weights, diversity ...); built once per set."""
        if not overrides:
            return self.pipeline
        key = json.dumps(overrides, sort_keys=True)
        evicted = None
        with self._lock:
            if key not in self._arm_pipelines:
                config = apply_overrides(self.config, overrides)
                self._arm_pipelines[key] = for_you_pipeline(dataclasses.replace(self.state, config=config))
                # bounded: the web explorer's ad-hoc overrides must not grow this without end (a closed
                # pipeline still in use restarts its side-effect worker on its next run)
                if len(self._arm_pipelines) > MAX_OVERRIDE_PIPELINES:
                    evicted = self._arm_pipelines.popitem(last=False)[1]
            self._arm_pipelines.move_to_end(key)
            pipeline = self._arm_pipelines[key]
        if evicted is not None:
            evicted.close()
        return pipeline

    def catalog_note(self, n: int | None = None, now: int | None = None) -> str | None:
        """One line when fewer than 10 pages (`n` posts, the configured page size by default) of posts are
        young enough to serve at `now` (the TooOldFilter's window), with the cause; None otherwise."""
        t, max_age = int(now or self.now), self.config.timeline.sources.max_age_hours
        created = self.state.index.created_at
        servable = int(np.count_nonzero((created >= t - int(max_age * HOUR)) & (created <= t)))
        return small_catalog_note(servable, int(n or self.config.timeline.mixing.page_size), max_age)

    def model_versions(self) -> dict[str, str]:
        """What each model slot is serving right now (shown by `foryou timeline`, /readyz, responses and
        `foryou eval`). A model that is there but cannot be served says "corrupt: <reason>, serving the
        fallback (...)" (or unreadable / incompatible), never "not trained"."""
        s = self.state
        status = self.model_status
        ranker = s.heavy_ranker()
        if ranker is not None and ranker is s.models.get("phoenix"):
            heavy = f"phoenix {status.get('phoenix')}"
        elif ranker is None and s.config.timeline.ranking.model == "phoenix":
            heavy = "heuristic (timeline.ranking.model = phoenix, none promoted)"
        else:
            heavy = status.get("heavy_ranker", "missing: heuristic fallback")
        versions = {"heavy_ranker": heavy, "phoenix": status.get("phoenix", "missing"),
                    "phoenix_retrieval": status.get("phoenix_retrieval", "missing"),
                    "light_ranker": self.light_ranker_status()}
        versions["realgraph"] = ("absent (uniform follows)" if s.realgraph is None
                                 else status.get("realgraph", "decayed-count heuristic"))
        versions["simclusters"] = "absent" if s.simclusters is None else (
            "snapshot" if getattr(self, "loaded_from", None) else "built at startup")
        two_tower = status.get("two_tower", "missing")
        versions["embedding_ann"] = ("not trained: source skipped (fallback)" if two_tower.startswith("missing")
                                     else two_tower)
        versions["heuristic"] = status.get("heuristic", "derived (not learned)")
        return versions

    def light_ranker_status(self, batches: dict[str, int] | None = None) -> str:
        """Both light rankers, each side named: the registry stores them as `light_ranker_in_network` and
        `light_ranker_out_of_network`, and either may be promoted alone. `batches` (side → source batches its
        trained model ordered, e.g. over an evaluation) adds whether it actually ran: below
        `light_ranker_keep` candidates per source the cut does not bind and the model is not called."""
        status = self.model_status
        sides = {side: status.get(f"light_ranker_{side}", "missing: heuristic fallback")
                 for side in ("in_network", "out_of_network")}
        if all(line == "missing: heuristic fallback" for line in sides.values()):  # not "none promoted"
            return "heuristic (no trained model)"
        parts = []
        for side, line in sides.items():
            if batches is not None and self.state.light_ranker(side) is not None:
                k = batches.get(side, 0)
                keep = self.config.timeline.ranking.light_ranker_keep
                line += (f", ordered {k:,} source batches" if k else
                         f", never ran (no {side.replace('_', '-')} source returned more than "
                         f"light_ranker_keep = {keep} candidates, so nothing was cut)")
            parts.append(f"{side.replace('_', '-')} {line}")
        return "; ".join(parts)

    # -- writes -----------------------------------------------------------------------------------

    def record_interaction(self, user_id: ExternalId, post_id: ExternalId, kind: str, t: int | None = None,
                           **details: Any) -> None:
        """Apply one interaction to the real-time overlay (seen, counters, UTEG, blocks, fatigue,
        RealGraph, SimClusters). `details` (e.g. dwell_time) are kept for the event log."""
        if kind not in INTERACTIONS:
            raise ValueError(f"unknown interaction {kind!r}; one of {', '.join(INTERACTIONS)}")
        self.record_interactions([user_id], [post_id], [kind], [self.now if t is None else t])

    def record_interactions(self, user_ids: Sequence[ExternalId] | np.ndarray,
                            post_ids: Sequence[ExternalId] | np.ndarray,
                            kinds: Sequence[str], times: Sequence[int] | np.ndarray) -> None:
        """Many interactions at once (the service's batches): ids resolved in one vectorised pass,
        the lock taken once; the same effects as `record_interaction` for each, in order."""
        bad = set(kinds) - set(INTERACTIONS)
        if bad:
            raise ValueError(f"unknown interaction {sorted(bad)[0]!r}; one of {', '.join(INTERACTIONS)}")
        idx = self.state.index
        (mapped_u, users), (mapped_p, posts) = self.ids.users.internal(user_ids), self.ids.posts.internal(post_ids)
        known_u, u = member(idx.user_ids, users)
        known_p, p = member(idx.post_id, posts)
        if not (known_u & mapped_u).all():
            raise UnknownUser(list(user_ids)[int(np.argmax(~(known_u & mapped_u)))])
        if not (known_p & mapped_p).all():
            raise UnknownPost(list(post_ids)[int(np.argmax(~(known_p & mapped_p)))])
        authors = idx.author_row[p].tolist()
        s = self.state
        ov, fs, rg, sc = s.overlay, s.store, s.realgraph, s.simclusters
        with self._lock:
            for ur, pr, a, kind, t in zip(u.tolist(), p.tolist(), authors, kinds, np.asarray(times).tolist(),
                                          strict=True):
                ov.record(ur, pr, kind, int(t))
                fs.record(ur, pr, kind, int(t))
                if rg is not None and kind in REALGRAPH_KINDS:
                    rg.record(ur, a, kind, int(t))
                if sc is not None and kind == "like":
                    sc.add_like(ur, pr, int(t))

    def relate(self, user_id: ExternalId, target_id: ExternalId, action: str, t: int | None = None) -> None:
        """A follow-graph action of `user_id` on the account `target_id`, in effect on the next
        request: follow, unfollow, block, mute (both remove the account's posts), unblock, unmute."""
        if action not in RELATIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(RELATIONS)}")
        u, v = self.user_row(user_id), self.user_row(target_id)
        t = int(t if t is not None else self.now)
        s = self.state
        with self._lock:
            if action == "follow":
                s.overlay.follow(u, v)
                if s.realgraph is not None:
                    s.realgraph.record(u, v, "follow", t)
                s.store.relate(u, v, "follow", t)
            elif action == "unfollow":
                s.overlay.unfollow(u, v)
                s.store.relate(u, v, "unfollow", t)
            elif action in ("block", "mute"):
                s.overlay.block(u, v)
            else:
                s.overlay.unblock(u, v)

    def add_post(self, post_id: ExternalId | None, author_id: ExternalId, t: int | None = None,
                 kind: str = "original", parent_id: ExternalId | None = None, topic: int = -1,
                 has_media: bool = False, has_link: bool = False,
                 length: int = 0, labels: dict[str, bool] | None = None) -> int:
        """A post created now: a candidate on the next request (in-network for the author's
        followers, UTEG and trending once engaged with). Returns the post row.

        `post_id`: an int id (they must increase), or the platform's own id (a string: it gets the next
        internal id, `last_post_id + 1`, and is mapped to it), or None (the next internal id)."""
        if kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {kind!r}; one of {', '.join(POST_KINDS)}")
        a = self.user_row(author_id)
        parent = self.post_row(parent_id) if parent_id is not None else -1
        t = int(t if t is not None else self.now)
        s = self.state
        with self._lock:
            external, post_id = self._new_post_id(post_id)
            row: int = s.overlay.add_post(post_id, a, t, POST_KINDS.index(kind), parent, int(topic), has_media,
                                          has_link, int(length), labels)
            f, g = s.store, s.overlay.grower
            source = parent if kind == "repost" and parent >= 0 else row  # a repost shows its source
            if source != row:
                topic = int(f.topic[source])
            for column, v in (("post_id", post_id), ("author_row", a), ("created_at", t), ("topic", int(topic)),
                              ("content_row", source)):
                g.append(f, column, v)
            static: dict[str, float | bool] = {"has_media": has_media, "has_link": has_link,
                                               "length_log": float(np.log1p(length)), "is_reply": kind == "reply",
                                               **(labels or {})}
            for name in f.static:
                value = float(kind == "repost") if name == "is_repost" else (
                    float(f.static[name][source]) if source != row else float(static.get(name, False)))
                g.append(f.static, name, value)
            if s.simclusters is not None:
                s.simclusters.add_post(t)
            if external is not None:
                self.ids.posts.add(external, post_id)
        return row

    def _new_post_id(self, post_id: ExternalId | None) -> tuple[str | None, int]:
        """(external id to map or None, internal id) of a new post; IdConflict for an id already taken."""
        posts = self.ids.posts
        if post_id is not None and posts.takes_as_is(post_id):
            return None, int(post_id)
        if post_id is not None and not posts.is_new(str(post_id)):
            raise IdConflict(f"post {post_id} already exists")
        return (None if post_id is None else str(post_id)), self.last_post_id + 1

    # -- async twins --------------------------------------------------------------------------------

    async def arecommend(self, user_id: ExternalId, n: int | None = None, context: dict[str, Any] | None = None,
                         **kwargs: Any) -> TimelineResponse:
        return await asyncio.to_thread(self.recommend, user_id, n, context, **kwargs)

    async def arecord_interaction(self, user_id: ExternalId, post_id: ExternalId, kind: str, **details: Any) -> None:
        await asyncio.to_thread(self.record_interaction, user_id, post_id, kind, **details)

    async def arecommend_many(self, user_ids: Sequence[ExternalId] | np.ndarray, n: int | None = None,
                              **kwargs: Any) -> PageBatch:
        return await asyncio.to_thread(self.recommend_many, user_ids, n, **kwargs)

    async def arelate(self, user_id: ExternalId, target_id: ExternalId, action: str, t: int | None = None) -> None:
        await asyncio.to_thread(self.relate, user_id, target_id, action, t)

    async def aadd_post(self, post_id: ExternalId | None, author_id: ExternalId, **kwargs: Any) -> int:
        return await asyncio.to_thread(self.add_post, post_id, author_id, **kwargs)

    def close(self) -> None:
        self.pipeline.close()
        for pipeline in self._arm_pipelines.values():
            pipeline.close()


def _fingerprint(path: Path, as_of: int, config: ForYouConfig) -> str:
    """What a snapshot was built from: the manifest, every table file's size and mtime, the cut, the
    SimClusters settings, and the source of the modules that build and store its parts (a code change
    invalidates it)."""
    from foryou.data import split
    from foryou.embeddings import simclusters
    from foryou.features import counter, sequences, store
    from foryou.graph import index, realgraph, related

    uteg = config.timeline.sources.uteg_hours
    h = hashlib.sha256(f"{SNAPSHOT_VERSION}|{as_of}|{config.simclusters.model_dump_json()}|{uteg}|".encode())
    for module in (index, realgraph, related, simclusters, counter, sequences, store, split, snapshot):
        h.update(Path(str(module.__file__)).read_bytes())
    h.update((path / "manifest.json").read_bytes())
    for name in sorted(p.name for p in path.glob("*.parquet")):
        st = (path / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _graph_models(h: History, config: ForYouConfig) -> tuple[RealGraph, SimClusters]:
    """RealGraph and SimClusters built from the same History as the index."""
    return RealGraph.build(h), SimClusters.build(h, config.simclusters)
