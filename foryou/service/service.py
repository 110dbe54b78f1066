"""The service core, independent of HTTP: engine + durable event store + cache + clock + traces.

Every write goes through the store first (committed, fsynced) and is then applied to the engine
by `catch_up`, which applies every stored event this process has not applied yet, in commit order.
Reads call `catch_up` too (one `PRAGMA data_version` when nothing changed), so with several worker
processes each one sees the others' writes on its next request, and a restart rebuilds the
real-time overlay by replaying the store.

The world clock (the `t` of new events and the `now` pages are ranked at) starts at the dataset's
end and runs with wall time while events arrive, but an idle gap (no event stored) counts as at most
`service.clock_idle_cap_s` (1 h by default): a server left idle for days resumes where its world left off
instead of finding every post older than the recency windows (48 h in-network, 24 h velocity).
It is derived from the newest stored event, so every worker and every restart agree on it.
`--set service.clock_idle_cap_s=0` freezes the clock at the newest event (reproducible pages).

A/B experiments (`foryou experiments create`) apply here: a page is ranked with the merged config
overrides of the user's arms, the exposure (experiment, arm, user, time, scroll session, posts) is
logged, and engagements written through the service go to the experiment log as outcome events, so
`foryou experiments results` analyses live traffic.

What the service reads of the engine (id checks, a post's live counters, a user's numbers, pages)
it asks of engine methods (`foryou.timeline.views.EngineViews`, `recommend`), never of `engine.state`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ForYouConfig
from foryou.data.ids import ExternalId, IdConflict
from foryou.data.state import models_dir, state_dir
from foryou.monitoring.live import LiveMonitor
from foryou.service import cursor as cursors
from foryou.service import metrics
from foryou.service.admission import Admission
from foryou.service.batcher import MicroBatcher
from foryou.service.cache import RedisCandidateCache, ScoredCandidateCache
from foryou.service.experiments import ServedExperiments
from foryou.service.files import FOLDED_RELATIONS, compacted_seq, server_lock, store_path
from foryou.service.promotions import PromotionWatch
from foryou.service.redis_store import RedisEventStore
from foryou.service.store import Event, EventStore, GroupCommitStore, StoreError, check_writable
from foryou.service.tracelog import TraceLog
from foryou.timeline.engine import RecommendationEngine, TimelineItem, TimelineResponse, UnknownPost, UnknownUser
from foryou.vocab import POST_KINDS, RELATIONS, SAFETY_LABELS

log = logging.getLogger("foryou.service")
UNFOLDED_RELATIONS = tuple(r for r in RELATIONS if r not in FOLDED_RELATIONS)  # always replayed


class InvalidEvent(ValueError):
    """A write naming something that does not exist (→ 404 / 422); nothing was stored."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class StoreUnavailable(InvalidEvent, StoreError):
    """The event store cannot write (disk full, I/O error, read-only) → 503; nothing was stored.
    The service keeps serving reads, and writes succeed again once the cause is fixed."""

    def __init__(self, message: str):
        super().__init__(message, 503)


@dataclass
class ServiceOptions:
    trace_log: Path = Path("runs/logs/trace.jsonl")
    store: Path | None = None  # default: the state directory's event store (data.state)
    state: Path | None = None  # --state-dir: models, snapshots, events, experiments (default data.state.state_dir)
    redis: str | None = None  # --state redis://…: the event log in Redis (shared by machines), not in `store`


class Service:
    def __init__(self, dataset: str | Path, config: ForYouConfig | None = None,
                 options: ServiceOptions | None = None, engine: RecommendationEngine | None = None):
        self.dataset = Path(dataset)
        self.config = config or ForYouConfig()
        options = options or ServiceOptions()
        self.state_override = options.state
        self.ready = False
        t0 = time.perf_counter()
        store_file = store_path(self.dataset, options.store, options.state)
        if options.redis is None:
            check_writable(store_file)  # a read-only store fails here, before the index is loaded
        self._server_lock = server_lock(self.dataset)
        try:
            self._open(store_file, options, engine)
        except BaseException:  # e.g. a store that is not the compacted one: release what was opened
            for part in ("store", "experiments", "trace") + (("engine",) if engine is None else ()):
                if hasattr(self, part):
                    getattr(self, part).close()
            self._server_lock.close()
            raise
        self.startup_seconds = time.perf_counter() - t0
        self.ready = True
        log.info("service ready", extra={"dataset": str(self.dataset), "replayed": self._replayed,
                                         "seconds": round(self.startup_seconds, 3), "store": str(self.store.path)})

    def _open(self, store_file: Path, options: ServiceOptions, engine: RecommendationEngine | None) -> None:
        self.engine = engine or RecommendationEngine.open(self.dataset, self.config, state=options.state)
        self.as_of = int(self.engine.now)
        self.store: GroupCommitStore = EventStore(store_file, base_post_id=self.engine.last_post_id) \
            if options.redis is None else RedisEventStore(options.redis, state_dir(self.dataset, options.state).name,
                                                          base_post_id=self.engine.last_post_id)
        # The world clock runs from the newest stored event (or the store's creation), see the module doc.
        self._idle_cap_s = self.config.service.clock_idle_cap_s
        self._last_wall = float(self.store.init_meta("epoch_wall", repr(time.time())))
        self._last_world = int(self.store.init_meta("epoch_world", str(self.as_of)))
        self.experiments = ServedExperiments(self.dataset, options.state)
        self.promotions = PromotionWatch(models_dir(state_dir(self.dataset, options.state)))
        cfg = self.config.service
        self.cache: ScoredCandidateCache | RedisCandidateCache = (  # in Redis: shared by every worker
            RedisCandidateCache(self.store.r, self.store.prefix, cfg.cache_ttl_s)
            if isinstance(self.store, RedisEventStore) else ScoredCandidateCache(cfg.cache_ttl_s, cfg.cache_users))
        self.admission = Admission(cfg.max_pending, cfg.max_queue_ms)  # cache misses and writes (routes)
        # concurrent misses ranked in one pass (explained pages go alone: their traces are per request)
        self.batcher: MicroBatcher[TimelineResponse] | None = MicroBatcher(
            self._rank_batch, cfg.batch_wait_ms / 1000, cfg.batch_max, lambda: self.admission.pending) \
            if cfg.batch_max > 1 else None
        self.monitor = LiveMonitor(self.engine.user_ids, self.engine.author_followers,  # gauges for /metrics
                                   config=self.config.monitoring)
        self.trace = TraceLog(options.trace_log, cfg.trace_log_bytes, cfg.trace_log_backups)
        self._apply_lock = threading.Lock()
        self.applied_seq = 0
        self._folded = compacted_seq(self.dataset, self.store)  # this store's events already in the tables
        self._data_version = -1
        self._replayed = self.catch_up(force=True)
        self.experiments.backfill(self.store)  # outcomes a crash lost between commit and experiment log
        self.store.on_commit = self._on_commit  # this worker's group commits are applied without a read-back

    # -- time ---------------------------------------------------------------------------------------

    def clock(self) -> int:
        idle = min(max(time.time() - self._last_wall, 0.0), self._idle_cap_s)
        return max(self.as_of, self._last_world + int(idle))

    # -- applying the log -------------------------------------------------------------------------

    def catch_up(self, force: bool = False) -> int:
        """Apply every stored event not applied yet, in commit order; returns how many. (And serve what the
        registry promotes now, if another process promoted or rolled back a model.)"""
        if self.promotions.pending():
            self.reload_models()
        version = self.store.data_version()
        if version == self._data_version and not force:
            return 0
        n = 0
        with self._apply_lock:
            while True:
                batch = self.store.since(self.applied_seq)
                if not batch:
                    break
                self._apply_batch(batch)
                n += len(batch)
            self._data_version = version
        return n

    def _apply_batch(self, batch: Sequence[Event]) -> None:
        """Apply stored events in order (caller holds the apply lock): runs of engagements go to the
        engine in one vectorised call, the rest one by one."""
        now = time.time()
        run: list[Event] = []
        for e in batch:
            if e.seq <= self._folded and not (e.type == "relation" and e.kind in UNFOLDED_RELATIONS):
                self._map_folded(e)
                continue  # already in the dataset the engine was built from
            if e.type == "engagement":
                run.append(e)
                continue
            self._apply_engagements(run)
            run = []
            self._apply(e)
        self._apply_engagements(run)
        self.applied_seq = batch[-1].seq
        last = max(batch, key=lambda e: e.t)
        if last.t >= self._last_world:  # the clock runs on from the newest event
            self._last_world, self._last_wall = int(last.t), float(batch[-1].accepted_at)
        metrics.INGESTION_LAG.observe(max(now - batch[0].accepted_at, 0.0))  # the oldest of the batch

    def _apply_engagements(self, run: list[Event]) -> None:
        if not run:
            return
        try:
            self.engine.record_interactions([e.user_id for e in run], [_given(e.post_id) for e in run],
                                            [e.kind for e in run], [e.t for e in run])
        except (UnknownUser, UnknownPost, ValueError):  # one bad stored event: fall back to one by one
            for e in run:
                self._apply(e)
            return
        metrics.EVENTS.labels("engagement").inc(len(run))
        self.cache.applied({e.user_id: e.seq for e in run})

    def _map_folded(self, e: Event) -> None:
        """A compacted post keeps its platform id: the tables hold the post, the event its id."""
        external = (e.body or {}).get("external_id") if e.type == "post" else None
        if external is not None and e.post_id is not None:
            try:
                self.engine.ids.posts.add(str(external), e.post_id)
            except IdConflict as exc:
                log.warning("stored post id not applicable; skipped", extra={"seq": e.seq, "error": str(exc)})

    def _apply(self, e: Event) -> None:
        engine = self.engine
        try:
            if e.type == "engagement":
                engine.record_interaction(e.user_id, _given(e.post_id), e.kind, t=e.t)
            elif e.type == "post":
                b = e.body or {}
                if b.get("external_id") is not None and engine.ids.posts.one(str(b["external_id"])) is not None:
                    raise IdConflict(f"post {b['external_id']} already exists")
                engine.add_post(_given(e.post_id), e.user_id, t=e.t, kind=e.kind, parent_id=b.get("parent_id"),
                                topic=b.get("topic", -1), has_media=b.get("has_media", False),
                                has_link=b.get("has_link", False), length=b.get("length", 0),
                                labels={k: b.get(k, False) for k in SAFETY_LABELS})
                self._map_folded(e)
            elif e.type == "relation":
                engine.relate(e.user_id, _given(e.target_id), e.kind, t=e.t)
        except (UnknownUser, UnknownPost, ValueError) as exc:  # e.g. a dataset rebuilt without that id
            metrics.ERRORS.labels("replay_skipped").inc()
            log.warning("stored event not applicable; skipped", extra={"seq": e.seq, "error": str(exc)})
            return
        metrics.EVENTS.labels(e.type).inc()
        self.cache.applied({e.user_id: e.seq})

    # -- writes -------------------------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> list[tuple[Event, bool]]:
        """Validate, commit durably (group commit), apply. Raises InvalidEvent (nothing stored) for
        unknown ids. Returns once the events are fsynced and applied to this worker's overlay."""
        self.catch_up()  # posts created on another worker must be known before validating
        if all(e.type == "engagement" for e in events):
            self._validate_engagements(events)
        else:
            for i, e in enumerate(events):
                self._validate(e, i if len(events) > 1 else None)
        try:
            acks = self.store.append(events)
        except StoreError as exc:  # disk full, I/O error, read-only: nothing stored, nothing acknowledged
            metrics.ERRORS.labels("store_unavailable").inc()
            raise StoreUnavailable(str(exc)) from exc
        self.catch_up()  # normally nothing left: the committer applied the group (see _on_commit)
        self.experiments.record([e for e, duplicate in acks if not duplicate and e.type == "engagement"])
        return acks

    def _on_commit(self, fresh: list[Event]) -> None:
        """Called by the store's committer after each group commit: when nobody else committed in
        between, apply what was written without reading it back (otherwise catch_up reads it)."""
        with self._apply_lock:
            if fresh[0].seq == self.applied_seq + 1 and fresh[-1].seq == fresh[0].seq + len(fresh) - 1:
                self._apply_batch(fresh)

    def _validate_engagements(self, events: Sequence[Event]) -> None:
        """Vectorised id checks for a batch of engagements (the common case)."""
        users = np.fromiter((e.user_id for e in events), np.int64, len(events))
        posts = np.fromiter((e.post_id for e in events), np.int64, len(events))
        unknown = ~self.engine.known(users, posts)
        if unknown.any():
            i = int(np.argmax(unknown))
            self._validate(events[i], i if len(events) > 1 else None)

    def _validate(self, e: Event, position: int | None) -> None:
        where = f"events[{position}]: " if position is not None else ""
        users = [e.user_id] + ([_given(e.target_id)] if e.type == "relation" else [])
        for u in users:
            if not self.engine.user_exists(u):
                raise InvalidEvent(f"{where}unknown user {u}", 404)
        external = (e.body or {}).get("external_id") if e.type == "post" else None
        if external is not None and not self.engine.ids.posts.is_new(str(external)):
            raise InvalidEvent(f"{where}post {external} already exists", 409)
        post = e.post_id if e.type == "engagement" else (e.body or {}).get("parent_id") if e.type == "post" else None
        if post is not None:
            try:
                self.engine.post_row(post)
            except UnknownPost:
                raise InvalidEvent(f"{where}unknown post {post}", 404) from None

    def engagement(self, user_id: ExternalId, post_id: ExternalId, kind: str, value: float = 1.0,
                   event_id: str | None = None, t: int | None = None) -> Event:
        return self.engagements([user_id], [post_id], [kind], [value], [event_id], t)[0]

    def engagements(self, user_ids: Sequence[ExternalId], post_ids: Sequence[ExternalId], kinds: Sequence[str],
                    values: Sequence[float], event_ids: Sequence[str | None], t: int | None = None) -> list[Event]:
        """Engagement events, ids (the platform's own or int) resolved in one vectorised pass each.
        Raises InvalidEvent (404) naming the first unknown external id."""
        users, posts = self._internal("user", user_ids), self._internal("post", post_ids)
        t = self.clock() if t is None else t
        return [Event("engagement", k, u, t, post_id=p, value=float(v), event_id=i or self.store.new_event_id())
                for u, p, k, v, i in zip(users, posts, kinds, values, event_ids, strict=True)]

    def _internal(self, what: str, ids: Sequence[ExternalId]) -> list[int]:
        space = self.engine.ids.users if what == "user" else self.engine.ids.posts
        if space.identity and all(type(x) is int for x in ids):
            return list(ids)  # type: ignore[arg-type]  # int datasets: nothing to translate
        found, internal = space.internal(ids)
        if not found.all():
            i = int(np.argmax(~found))
            raise InvalidEvent(f"{f'events[{i}]: ' if len(ids) > 1 else ''}unknown {what} {ids[i]}", 404)
        return [int(x) for x in internal.tolist()]

    def post_event(self, author_id: ExternalId, kind: str = "original", event_id: str | None = None,
                   post_id: str | None = None, **columns: Any) -> Event:
        """A new post; `post_id`: the platform's own id for it (kept in the event, so it survives restarts),
        else the server numbers it."""
        if kind not in POST_KINDS:
            raise InvalidEvent(f"unknown post kind {kind!r}")
        if post_id is not None:
            if self.engine.ids.posts.takes_as_is(post_id):
                raise InvalidEvent("post_id: this dataset has int ids, the server numbers new posts", 409)
            columns["external_id"] = str(post_id)
        if columns.get("parent_id") is not None:
            columns["parent_id"] = self._internal("post", [columns["parent_id"]])[0]
        return Event("post", kind, self._internal("user", [author_id])[0], self.clock(), body=columns,
                     event_id=event_id or self.store.new_event_id())

    def relation(self, user_id: ExternalId, target_id: ExternalId, action: str, event_id: str | None = None) -> Event:
        user, target = self._internal("user", [user_id, target_id])
        return Event("relation", action, user, self.clock(), target_id=target,
                     event_id=event_id or self.store.new_event_id())

    # -- reads --------------------------------------------------------------------------------------

    def timeline(self, user_id: ExternalId, n: int | None = None, cursor: str | None = None, explain: bool = False,
                 request_id: str | None = None) -> dict[str, Any]:
        """One page (`n` posts, default `timeline.mixing.page_size`) as a JSON-ready dict, from the
        cache or the whole funnel. Raises UnknownUser, cursors.BadCursor."""
        page = self._timeline(user_id, n, cursor, explain, request_id, cached_only=False)
        assert page is not None  # only a cached_only read can miss
        return page

    def timeline_cached(self, user_id: ExternalId, n: int | None = None, cursor: str | None = None,
                        explain: bool = False, request_id: str | None = None) -> dict[str, Any] | None:
        """The page when the scored-candidate cache can serve it without touching the engine, else
        None (then call `timeline`, off the event loop: a miss runs the funnel). Cheap: the HTTP
        route calls it on the event loop so hits never wait behind a worker's misses."""
        if (explain or self._apply_lock.locked() or self.store.data_version() != self._data_version
                or self.promotions.pending()):
            return None  # events to apply (or being applied), models to reload: the slow path catches up
        return self._timeline(user_id, n, cursor, explain, request_id, cached_only=True)

    def _timeline(self, given: ExternalId, n: int | None, cursor: str | None, explain: bool, request_id: str | None,
                  cached_only: bool) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        n = self.config.timeline.mixing.page_size if n is None else n
        request_id = request_id or uuid.uuid4().hex
        if not cached_only:
            self.catch_up()
        user_id = self.engine.ids.users.one(given)
        if user_id is None or not self.engine.user_exists(user_id):
            raise UnknownUser(given)
        served, session = cursors.decode_session(cursor)
        overrides, arms = self.experiments.overrides_for(user_id)
        variant = json.dumps(arms, sort_keys=True) if arms else ""
        hit = None if explain else self._from_cache(user_id, served, n, variant)
        if hit is None and cached_only:
            return None
        metrics.CACHE.labels("miss" if hit is None else "hit").inc()
        now = self.clock()
        items, resp = hit or self._rank(user_id, n, explain, now, served, overrides, variant)
        if arms and session is None:
            session = random.getrandbits(52)  # a new scroll session (its id rides in the cursor)
        if arms:
            self.experiments.log_exposure(arms, user_id, now, len(items), session)
        self._observe(items)
        out = {"request_id": request_id, "user_id": self.engine.ids.users.show(user_id),
               "items": self._items(items, explain),
               "cursor": cursors.encode(served | {it.post_id for it in items}, session),
               "cold_start": resp.cold_start, "cached": hit is not None, "sources": resp.sources, "models": resp.models}
        if arms:
            out["experiments"] = arms
        self.trace.write({"ts": round(time.time(), 3), "request_id": request_id, "route": "timeline",
                          "user_id": user_id, "n": n, "cached": hit is not None,
                          "ms": round((time.perf_counter() - t0) * 1000, 3),
                          "steps_ms": None if hit else {k: round(v, 3) for k, v in resp.timings_ms.items()},
                          "sources": resp.sources, "models": resp.models, "errors": resp.errors,
                          "experiments": arms or None, "posts": [it.post_id for it in items]})
        return out

    def _from_cache(self, user_id: int, served: frozenset[int], n: int,
                    variant: str) -> tuple[list[TimelineItem], TimelineResponse] | None:
        """The next `n` unserved posts from the user's cached ranking, None when it cannot serve them
        (none cached, another experiment variant, a followee posted since, or too few left)."""
        entry = self.cache.get(user_id)
        if entry is None:
            return None
        if entry.variant != variant or self.engine.followee_posted_since(user_id, entry.new_posts_seen):
            self.cache.invalidate(user_id)
            return None
        remaining = [it for it in entry.items if it.post_id not in served] if served else entry.items
        if len(remaining) >= n or entry.complete:
            return remaining[:n], entry.response
        return None

    def _rank(self, user_id: int, n: int, explain: bool, now: int, served: frozenset[int], overrides: dict[str, Any],
              variant: str) -> tuple[list[TimelineItem], TimelineResponse]:
        """A cache miss: the whole funnel, ranked deep enough for the next pages, which are cached."""
        depth, seq = (n if explain else max(n, self.config.service.cache_depth)), self.applied_seq
        if explain or self.batcher is None:
            resp = self.engine.recommend(user_id, n=depth, explain=explain, now=now + 1, exclude=served,
                                         overrides=overrides or None)
        else:
            resp = self.batcher.submit((variant, depth), (user_id, served, now + 1, overrides or None))
        if not explain:
            self.cache.put(user_id, resp.items, len(resp.items) < depth, resp, self.engine.new_posts, variant, seq)
        for step, ms in resp.timings_ms.items():
            metrics.step(step).observe(ms / 1000.0)
        for src, k in resp.sources.items():
            metrics.source(src).observe(k)
        for _ in resp.errors:
            metrics.ERRORS.labels("source_failed").inc()
        return resp.items[:n], resp

    def _rank_batch(self, key: tuple[str, int], requests: Sequence[tuple[int, frozenset[int], int, dict | None]]
                    ) -> list[TimelineResponse]:
        """A micro-batch of misses of one arm set and depth, at the latest of their instants."""
        return self.engine.recommend_each([r[0] for r in requests], key[1], max(r[2] for r in requests),
                                          requests[0][3], [r[1] for r in requests])

    def _observe(self, items: list[TimelineItem]) -> None:
        """The page into the live drift and exposure gauges."""
        if not items:
            return
        heads = list(items[0].predictions)  # every item of a page has the same heads, in this order
        self.monitor.observe(np.fromiter((it.author_id for it in items), np.int64, len(items)),
                             np.fromiter((it.in_network for it in items), bool, len(items)), heads,
                             np.array([list(it.predictions.values()) for it in items], np.float64))

    def _items(self, items: list[TimelineItem], explain: bool) -> list[dict[str, Any]]:
        """A page's items as JSON, with the platform's own ids (nothing to translate for int datasets)."""
        out = [_item(i + 1, it, explain) for i, it in enumerate(items)]
        ids = self.engine.ids
        if not ids.posts.identity:
            for d, p in zip(out, ids.posts.json([it.post_id for it in items]), strict=True):
                d["post_id"] = p
        if not ids.users.identity:
            for d, a in zip(out, ids.users.json([it.author_id for it in items]), strict=True):
                d["author_id"], d["liked_by"] = a, ids.users.json(d["liked_by"])
        return out

    def reload_models(self) -> dict[str, str]:
        """Serve what the registry promotes now (pages cached from the previous models are dropped)."""
        self.promotions.acknowledge()
        versions = self.engine.reload_models()
        self.cache.clear()
        return versions

    def post(self, post_id: ExternalId) -> dict[str, Any]:
        """A post with its live counters. Raises UnknownPost."""
        self.catch_up()
        return self.engine.post_view(post_id)

    def user(self, user_id: ExternalId) -> dict[str, Any]:
        """An account with its live follow counts. Raises UnknownUser."""
        self.catch_up()
        return self.engine.user_view(user_id)

    def close(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
        self.store.close()  # first: its committer applies to the engine
        self.engine.close()
        self.experiments.close()
        self.trace.close()
        self._server_lock.close()


def _given(id_: int | None) -> int:
    """The id an event of its type carries (an engagement's post, a relation's target); a stored
    event without it cannot be applied (ValueError: skipped on replay, like any inapplicable one)."""
    if id_ is None:
        raise ValueError("event without the id its type needs")
    return id_


def _item(rank: int, it: TimelineItem, explain: bool) -> dict[str, Any]:
    d = {"rank": rank, "post_id": it.post_id, "author_id": it.author_id, "source": it.source, "score": it.score,
         "in_network": bool(it.in_network), "network_reason": it.network_reason, "created_at": it.created_at,
         "predictions": it.predictions, "liked_by": it.liked_by}
    if explain:
        d["explanation"] = it.explanation
    return d
