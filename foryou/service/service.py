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
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from foryou.config import ForYouConfig
from foryou.experiments.assignment import assign
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentLog, ExperimentStore
from foryou.monitoring.live import LiveMonitor
from foryou.service import cursor as cursors
from foryou.service import metrics
from foryou.service.cache import ScoredCandidateCache
from foryou.service.store import Event, EventStore, StoreError, check_writable
from foryou.service.tracelog import TraceLog
from foryou.timeline.engine import RecommendationEngine, TimelineItem, UnknownPost, UnknownUser
from foryou.vocab import POSITIVE, POST_KINDS, SAFETY_LABELS

log = logging.getLogger("foryou.service")
# Relations the dataset schema cannot hold (account-level blocks and mutes): always replayed.
UNFOLDED_RELATIONS = ("block", "mute", "unblock", "unmute")


def store_path(dataset: str | Path, store: str | Path | None = None) -> Path:
    """The event store a server on `dataset` uses: `store` (`--store`), else DATASET/.service/events.sqlite."""
    return Path(store) if store is not None else Path(dataset) / ".service" / "events.sqlite"


def lock_path(dataset: str | Path) -> Path:
    """Servers hold a shared lock on it; `foryou compact` needs it exclusively."""
    return Path(dataset) / ".service" / "server.lock"


def compacted_path(dataset: str | Path) -> Path:
    return Path(dataset) / ".service" / "compacted.json"


def compacted_marks(dataset: str | Path) -> dict[str, dict[str, Any]]:
    """What `foryou compact` folded into the dataset's tables, per event store: {store_id: {"seq",
    "event_id", "store"}} (the last folded seq, that event's id, the path it was folded from). Kept in
    the dataset, not in the store, because the dataset is what holds the folded events (the swap
    writes both at once) and one dataset may be served from several stores (`--store`)."""
    p = compacted_path(dataset)
    if not p.exists():
        return {}
    return dict(json.loads(p.read_text()).get("stores", {}))


def compacted_seq(dataset: str | Path, store: EventStore) -> int:
    """Events of `store` up to this seq are already in the dataset's Parquet tables, so replay skips
    them; 0 for a store never folded into this dataset (a fresh `--store`). Raises StoreError when
    `store` carries the folded store's id but not its history (an older copy, or a copy that went
    its own way): skipping its events could drop acknowledged writes, applying them could count
    folded ones twice."""
    mark = compacted_marks(dataset).get(store.store_id)
    if mark is None:
        mark = _legacy_mark(dataset, store)
        if mark is None:
            return 0
    seq = int(mark["seq"])
    stored = store.event(seq)
    if stored is None or (mark.get("event_id") is not None and stored.event_id != mark["event_id"]):
        raise StoreError(f"event store {store.path} is not the one compacted into {dataset} (its event {seq} "
                         f"{'is missing' if stored is None else 'differs'}); serve with the store that was "
                         "compacted, or a new one (--store)")
    return seq


def _legacy_mark(dataset: str | Path, store: EventStore) -> dict[str, Any] | None:
    """`compacted.json` written before marks were kept per store ({"seq": N}): it was always the
    default store that was folded, so it applies to that store only."""
    p = compacted_path(dataset)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    if "seq" not in data or store.path.resolve() != store_path(dataset).resolve():
        return None
    return {"seq": int(data["seq"])}


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
    store: Path | None = None  # default: DATASET/.service/events.sqlite


class Service:
    def __init__(self, dataset: str | Path, config: ForYouConfig | None = None,
                 options: ServiceOptions | None = None, engine: RecommendationEngine | None = None):
        self.dataset = Path(dataset)
        self.config = config or ForYouConfig()
        options = options or ServiceOptions()
        self.ready = False
        t0 = time.perf_counter()
        store_file = store_path(self.dataset, options.store)
        check_writable(store_file)  # a read-only store fails here, before the index is loaded
        self._server_lock = _server_lock(self.dataset)
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
        self.engine = engine or RecommendationEngine.open(self.dataset, self.config)
        idx = self.engine.state.index
        self.as_of = int(self.engine.now)
        self.store = EventStore(store_file, base_post_id=int(idx.post_id[-1]) if len(idx.post_id) else 0)
        # The world clock runs from the newest stored event (or the store's creation), see the module doc.
        self._idle_cap_s = self.config.service.clock_idle_cap_s
        self._last_wall = float(self.store.init_meta("epoch_wall", repr(time.time())))
        self._last_world = int(self.store.init_meta("epoch_world", str(self.as_of)))
        self.experiments = _Experiments(self.dataset)
        cfg = self.config.service
        self.cache = ScoredCandidateCache(cfg.cache_ttl_s, cfg.cache_users)
        self.monitor = LiveMonitor(idx.user_ids, idx.author_followers)  # drift/exposure gauges for /metrics
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
        """Apply every stored event not applied yet, in commit order; returns how many."""
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
            self.engine.record_interactions([e.user_id for e in run], [e.post_id for e in run],
                                            [e.kind for e in run], [e.t for e in run])
        except (UnknownUser, UnknownPost, ValueError):  # one bad stored event: fall back to one by one
            for e in run:
                self._apply(e)
            return
        metrics.EVENTS.labels("engagement").inc(len(run))
        for user in {e.user_id for e in run}:
            self.cache.invalidate(user)

    def _apply(self, e: Event) -> None:
        engine = self.engine
        try:
            if e.type == "engagement":
                engine.record_interaction(e.user_id, e.post_id, e.kind, t=e.t)
            elif e.type == "post":
                b = e.body or {}
                engine.add_post(e.post_id, e.user_id, t=e.t, kind=e.kind, parent_id=b.get("parent_id"),
                                topic=b.get("topic", -1), has_media=b.get("has_media", False),
                                has_link=b.get("has_link", False), length=b.get("length", 0),
                                labels={k: b.get(k, False) for k in SAFETY_LABELS})
            elif e.type == "relation":
                engine.relate(e.user_id, e.target_id, e.kind, t=e.t)
        except (UnknownUser, UnknownPost, ValueError) as exc:  # e.g. a dataset rebuilt without that id
            metrics.ERRORS.labels("replay_skipped").inc()
            log.warning("stored event not applicable; skipped", extra={"seq": e.seq, "error": str(exc)})
            return
        metrics.EVENTS.labels(e.type).inc()
        self.cache.invalidate(e.user_id)

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
        idx = self.engine.state.index
        users = np.fromiter((e.user_id for e in events), np.int64, len(events))
        posts = np.fromiter((e.post_id for e in events), np.int64, len(events))
        u = np.minimum(np.searchsorted(idx.user_ids, users), len(idx.user_ids) - 1)
        p = np.minimum(np.searchsorted(idx.post_id, posts), len(idx.post_id) - 1)
        bad = (idx.user_ids[u] != users) | (idx.post_id[p] != posts)
        if bad.any():
            i = int(np.argmax(bad))
            self._validate(events[i], i if len(events) > 1 else None)

    def _validate(self, e: Event, position: int | None) -> None:
        where = f"events[{position}]: " if position is not None else ""
        idx = self.engine.state.index
        users = [e.user_id] + ([e.target_id] if e.type == "relation" else [])
        for u in users:
            if idx.user_row(int(u)) is None:
                raise InvalidEvent(f"{where}unknown user {u}", 404)
        post = e.post_id if e.type == "engagement" else (e.body or {}).get("parent_id") if e.type == "post" else None
        if post is not None:
            try:
                self.engine.post_row(post)
            except UnknownPost:
                raise InvalidEvent(f"{where}unknown post {post}", 404) from None

    def engagement(self, user_id: int, post_id: int, kind: str, value: float = 1.0,
                   event_id: str | None = None, t: int | None = None) -> Event:
        return Event("engagement", kind, int(user_id), self.clock() if t is None else t, post_id=int(post_id),
                     value=float(value), event_id=event_id or self.store.new_event_id())

    def post_event(self, author_id: int, kind: str = "original", event_id: str | None = None,
                   **columns: Any) -> Event:
        if kind not in POST_KINDS:
            raise InvalidEvent(f"unknown post kind {kind!r}")
        return Event("post", kind, int(author_id), self.clock(), body=columns,
                     event_id=event_id or self.store.new_event_id())

    def relation(self, user_id: int, target_id: int, action: str, event_id: str | None = None) -> Event:
        return Event("relation", action, int(user_id), self.clock(), target_id=int(target_id),
                     event_id=event_id or self.store.new_event_id())

    # -- reads --------------------------------------------------------------------------------------

    def timeline(self, user_id: int, n: int = 35, cursor: str | None = None, explain: bool = False,
                 request_id: str | None = None) -> dict[str, Any]:
        """One page as a JSON-ready dict, from the cache or the whole funnel. Raises UnknownUser,
        cursors.BadCursor."""
        return self._timeline(user_id, n, cursor, explain, request_id, cached_only=False)  # type: ignore[return-value]

    def timeline_cached(self, user_id: int, n: int = 35, cursor: str | None = None, explain: bool = False,
                        request_id: str | None = None) -> dict[str, Any] | None:
        """The page when the scored-candidate cache can serve it without touching the engine, else
        None (then call `timeline`, off the event loop: a miss runs the funnel). Cheap: the HTTP
        route calls it on the event loop so hits never wait behind a worker's misses."""
        if explain or self._apply_lock.locked() or self.store.data_version() != self._data_version:
            return None  # events to apply first (or being applied): the slow path catches up
        return self._timeline(user_id, n, cursor, explain, request_id, cached_only=True)

    def _timeline(self, user_id: int, n: int, cursor: str | None, explain: bool, request_id: str | None,
                  cached_only: bool) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        request_id = request_id or uuid.uuid4().hex
        if not cached_only:
            self.catch_up()
        engine = self.engine
        row = engine.state.index.user_row(int(user_id))
        if row is None:
            raise UnknownUser(user_id)
        served, session = cursors.decode_session(cursor)
        overrides, arms = self.experiments.overrides_for(int(user_id))
        variant = json.dumps(arms, sort_keys=True) if arms else ""
        items: list[TimelineItem] | None = None
        entry = None if explain else self.cache.get(int(user_id))
        if entry is not None and (entry.variant != variant or self._followee_posted_since(row, entry.new_posts_seen)):
            self.cache.invalidate(int(user_id))
            entry = None
        if entry is not None:
            remaining = [it for it in entry.items if it.post_id not in served] if served else entry.items
            if len(remaining) >= n or entry.complete:
                items, resp = remaining[:n], entry.response
        cached = items is not None
        if not cached and cached_only:
            return None
        metrics.CACHE.labels("hit" if cached else "miss").inc()
        now = self.clock()
        if items is None:
            depth = n if explain else max(n, self.config.service.cache_depth)
            resp = engine.recommend(int(user_id), n=depth, explain=explain, now=now + 1, exclude=served,
                                    overrides=overrides or None)
            if not explain:
                self.cache.put(int(user_id), resp.items, len(resp.items) < depth, resp,
                               engine.state.overlay.new_posts, variant)
            items = resp.items[:n]
            for step, ms in resp.timings_ms.items():
                metrics.step(step).observe(ms / 1000.0)
            for src, k in resp.sources.items():
                metrics.source(src).observe(k)
            for _ in resp.errors:
                metrics.ERRORS.labels("source_failed").inc()
        if arms and session is None:
            session = random.getrandbits(52)  # a new scroll session (its id rides in the cursor)
        if arms:
            self.experiments.log_exposure(arms, int(user_id), now, len(items), session)
        page = [_item(i + 1, it, explain) for i, it in enumerate(items)]
        if items:
            heads = list(items[0].predictions)  # every item of a page has the same heads, in this order
            self.monitor.observe(np.fromiter((it.author_id for it in items), np.int64, len(items)),
                                 np.fromiter((it.in_network for it in items), bool, len(items)), heads,
                                 np.array([list(it.predictions.values()) for it in items], np.float64))
        next_cursor = cursors.encode(served | {it.post_id for it in items}, session)
        out = {"request_id": request_id, "user_id": int(user_id), "items": page, "cursor": next_cursor,
               "cold_start": resp.cold_start, "cached": cached, "sources": resp.sources, "models": resp.models}
        if arms:
            out["experiments"] = arms
        self.trace.write({"ts": round(time.time(), 3), "request_id": request_id, "route": "timeline",
                          "user_id": int(user_id), "n": n, "cached": cached,
                          "ms": round((time.perf_counter() - t0) * 1000, 3),
                          "steps_ms": None if cached else {k: round(v, 3) for k, v in resp.timings_ms.items()},
                          "sources": resp.sources, "models": resp.models, "errors": resp.errors,
                          "experiments": arms or None, "posts": [it.post_id for it in items]})
        return out

    def _followee_posted_since(self, user_row: int, seen_new_posts: int) -> bool:
        ov = self.engine.state.overlay
        if ov.new_posts <= seen_new_posts:
            return False
        idx = self.engine.state.index
        total = len(idx.post_id)
        rows = np.arange(total - ov.new_posts + seen_new_posts, total)
        return bool(np.isin(idx.author_row[rows], ov.following_rows(user_row)).any())

    def post(self, post_id: int) -> dict[str, Any]:
        self.catch_up()
        engine = self.engine
        p = engine.post_row(post_id)
        idx, ov = engine.state.index, engine.state.overlay
        parent = int(idx.parent_row[p])
        counters = {k: int(v[p]) for k, v in ov.counts.items()}
        counters["impressions"] = int(ov.impressions_count[p])
        counters["positives_24h"] = int(ov.counts_24h[p])
        counters["positives"] = sum(counters[k] for k in POSITIVE)
        return {"post_id": int(post_id), "author_id": int(idx.user_ids[idx.author_row[p]]),
                "created_at": int(idx.created_at[p]), "kind": POST_KINDS[int(idx.kind[p])],
                "parent_id": int(idx.post_id[parent]) if parent >= 0 else None, "topic": int(idx.topic[p]),
                "has_media": bool(idx.has_media[p]), "has_link": bool(idx.has_link[p]), "length": int(idx.length[p]),
                "labels": {lb: bool(getattr(idx, lb)[p]) for lb in SAFETY_LABELS}, "counters": counters}

    def user(self, user_id: int) -> dict[str, Any]:
        self.catch_up()
        idx, ov = self.engine.state.index, self.engine.state.overlay
        row = idx.user_row(int(user_id))
        if row is None:
            raise UnknownUser(user_id)
        # Followers as of now: the dataset's follows plus live follows minus live unfollows.
        c, at = self.engine.state.features.counters, np.array([2**62])
        rows = np.array([row])
        followers = int(c["followers"].count_before(rows, at)[0] - c["unfollowers"].count_before(rows, at)[0])
        return {"user_id": int(user_id), "following": len(ov.following_rows(row)),
                "followers": max(followers, 0),
                "posts": int(np.count_nonzero(idx.author_row == row)),
                "blocked_or_muted": len(ov.blocked_authors(row))}

    def close(self) -> None:
        self.ready = False
        self.store.close()  # first: its committer applies to the engine
        self.engine.close()
        self.experiments.close()
        self.trace.close()
        self._server_lock.close()


def _server_lock(dataset: Path) -> IO[str]:
    """The shared server lock (held for the service's life). A read-only dataset can still be
    served from a writable `--store`: an existing lock file is then locked through a read-only handle."""
    p = lock_path(dataset)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        f = open(p, "a+")  # noqa: SIM115
    except OSError as exc:
        try:
            f = open(p)  # noqa: SIM115
        except OSError:
            raise StoreError(f"cannot create the server lock {p}: {exc.strerror}; "
                             "check the dataset directory's permissions") from None
    fcntl.flock(f, fcntl.LOCK_SH)
    return f


def _item(rank: int, it: TimelineItem, explain: bool) -> dict[str, Any]:
    d = {"rank": rank, "post_id": it.post_id, "author_id": it.author_id, "source": it.source, "score": it.score,
         "in_network": bool(it.in_network), "network_reason": it.network_reason, "created_at": it.created_at,
         "predictions": it.predictions, "liked_by": it.liked_by}
    if explain:
        d["explanation"] = it.explanation
    return d


class _Experiments:
    """The dataset's running experiments, re-read when `experiments.json` changes (an experiment
    created or stopped through the CLI or /v1/experiments applies from the next request on); the
    experiment log is opened once there is something to log."""

    def __init__(self, dataset: Path):
        self._store = ExperimentStore(dataset)
        self._stamp: tuple[int, int] | None = None
        self._active = ActiveExperiments([])
        self._log: ExperimentLog | None = None
        self._lock = threading.Lock()

    def active(self) -> ActiveExperiments:
        try:
            st = os.stat(self._store.definitions_path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    running = self._store.running() if stamp != (0, 0) else []
                    if running and self._log is None:
                        self._log = ExperimentLog(self._store.log_path)
                    self._active, self._stamp = ActiveExperiments(running, self._log), stamp
        return self._active

    def overrides_for(self, user_id: int) -> tuple[dict[str, Any], dict[str, str]]:
        active = self.active()
        return active.overrides_for(user_id) if active.experiments else ({}, {})

    def log_exposure(self, arms: dict[str, str], user_id: int, t: int, items: int, session: int | None) -> None:
        self.active().log_exposure(arms, user_id, t, items, session)

    def record(self, events: list[Event]) -> None:
        """Outcome events of users in a running experiment (one vectorised assignment per experiment)."""
        active = self.active()
        if not events or not active.experiments or active.log is None:
            return
        users = np.fromiter((e.user_id for e in events), np.int64, len(events))
        inside = np.zeros(len(events), bool)
        for experiment in active.experiments:
            inside |= assign(experiment, users) >= 0
        rows = [(e.user_id, e.post_id, e.kind, e.t, e.value, e.seq)
                for e, keep in zip(events, inside.tolist(), strict=True) if keep]
        if rows:
            active.log.log_outcomes(rows)

    def backfill(self, store: EventStore, chunk: int = 50_000) -> int:
        """Log the outcomes of engagements stored after the newest logged one: `record` runs after the
        event store's commit, so a crash in between loses the row, never the event. Returns the events
        looked at (0 when no experiment runs or none of its outcomes was logged yet)."""
        active = self.active()
        last = active.log.last_outcome_seq() if active.experiments and active.log is not None else None
        if last is None:
            return 0
        seen, batch = 0, []
        for e in store.iter_since(int(last)):
            seen += 1
            if e.type == "engagement":
                batch.append(e)
            if len(batch) >= chunk:
                self.record(batch)
                batch = []
        self.record(batch)
        return seen

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
