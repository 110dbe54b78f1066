"""Drive a running `foryou serve` instead of an in-process engine (`foryou simulate --url`).

The service keeps its own clock and assigns its own post ids, so over HTTP the simulation cannot
fast-forward time or publish posts whose ids the ground truth knows: it serves the world's users
from the service's current state, sends every impression and action in batches, and scores what
it is served against the ground truth at the simulated time. Experiment arms are applied by the
service (the simulation attributes users to arms with the same deterministic hash, and counts the
users the service placed in another arm: `served_arms`).

`HttpEngine` satisfies `foryou.timeline.protocol.Engine` (checked by mypy, below) with the same
signatures and page types as `RecommendationEngine`, so either can be handed to a Simulation; the
service assigns ids and times itself, so `add_post` returns the id it assigned and `t` is not sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from foryou.timeline.engine import TimelineItem, TimelineResponse
from foryou.timeline.page import PageBatch

log = logging.getLogger("foryou.simulation")
RATE_LIMIT_RETRIES = 100  # waits for the service's rate limit before a read gives up


class HttpEngine:
    assigns_post_ids = True  # the service numbers posts: the simulation cannot publish the world's

    def __init__(self, url: str, token: str | None = None, batch: int = 2000, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.batch = batch
        self._pending: list[dict[str, Any]] = []
        self.served_arms: dict[int, dict[str, str]] = {}  # user id → {experiment: arm} as the service applied
        self._models: dict[str, str] = {}
        self._cursors: dict[int, str] = {}  # user id → the service's cursor of the user's last page
        self.rate_limited = 0  # reads the service answered 429 (each waited out)
        self.client.get("/healthz").raise_for_status()

    def recommend(self, user_id: int, n: int | None = None, context: dict[str, Any] | None = None,
                  explain: bool = False, trace: bool = False, now: int | None = None,
                  overrides: dict[str, Any] | None = None, exclude: Iterable[int] | None = None) -> TimelineResponse:
        """The service's page for the user (`n` None: the service's page size). `exclude`:
        the posts of the user's earlier pages in this scroll — the service keeps those in its own
        cursor, so the one it gave with the user's last page is sent. `now`, `overrides`, `context`
        and `trace` are not sent: the service keeps its own clock and applies the user's experiment arm."""
        self.flush()  # the page must see every action sent so far
        uid = int(user_id)
        params: dict[str, Any] = {"n": n} if n else {}
        if exclude and uid in self._cursors:
            params["cursor"] = self._cursors[uid]
        if explain:
            params["explain"] = True
        body = self._get(f"/v1/users/{uid}/timeline", params)
        self.served_arms[uid] = dict(body.get("experiments") or {})
        self._models = dict(body.get("models") or {})
        if body.get("cursor"):
            self._cursors[uid] = str(body["cursor"])
        items = [TimelineItem(rank=int(it.get("rank", i + 1)), post_id=int(it["post_id"]),
                              author_id=int(it.get("author_id", -1)), source=str(it.get("source", "")),
                              score=float(it.get("score", 0.0)), in_network=bool(it.get("in_network", False)),
                              created_at=int(it.get("created_at", 0)), predictions=dict(it.get("predictions") or {}),
                              liked_by=list(it.get("liked_by") or []), explanation=it.get("explanation"),
                              network_reason=str(it.get("network_reason", "")))
                 for i, it in enumerate(body.get("items", []))]
        return TimelineResponse(user_id=uid, items=items, cold_start=bool(body.get("cold_start", False)),
                                timings_ms={}, sources=dict(body.get("sources") or {}), errors=[],
                                models=self._models)

    def recommend_many(self, user_ids: Sequence[int] | np.ndarray, n: int | None = None, now: int | None = None,
                       overrides: dict[str, Any] | None = None,
                       exclude: Sequence[Iterable[int] | None] | None = None) -> PageBatch:
        """One request per user (the service has no batch route), as users × n columns."""
        pages = [self.recommend(int(u), n, exclude=exclude[i] if exclude is not None else None)
                 for i, u in enumerate(np.asarray(user_ids).tolist())]
        return PageBatch.from_responses(pages, n or max((len(p.items) for p in pages), default=0))

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET with the service's rate limit waited out (Retry-After), as a polite client does."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            r = self.client.get(path, params=params)
            if r.status_code != 429 or attempt == RATE_LIMIT_RETRIES:
                break
            if not self.rate_limited:
                log.warning("the service rate-limits this client: the simulation runs at its pace "
                            "(serve with --set service.rate_limit_per_minute=0 to lift it)")
            self.rate_limited += 1
            time.sleep(_seconds(r.headers.get("retry-after")))
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def model_versions(self) -> dict[str, str]:
        """What the service served the last page with."""
        return self._models

    def record_interaction(self, user_id: int, post_id: int, kind: str, t: int | None = None, **details: Any) -> None:
        """Queued and sent in batches (`flush`); `t` is the service's to set, `value` (dwell seconds) is sent."""
        self._pending.append({"user_id": int(user_id), "post_id": int(post_id), "kind": kind,
                              "value": float(details.get("value", 1.0))})
        if len(self._pending) >= self.batch:
            self.flush()

    def record_interactions(self, user_ids: Sequence[int] | np.ndarray, post_ids: Sequence[int] | np.ndarray,
                            kinds: Sequence[str], times: Sequence[int] | np.ndarray) -> None:
        for u, p, k in zip(np.asarray(user_ids).tolist(), np.asarray(post_ids).tolist(), kinds, strict=True):
            self.record_interaction(u, p, k)

    def relate(self, user_id: int, target_id: int, action: str, t: int | None = None) -> None:
        self.flush()  # in order with the engagements sent before it
        self._post("/v1/follows", {"user_id": int(user_id), "target_id": int(target_id), "action": action})

    def add_post(self, post_id: int, author_id: int, t: int | None = None, kind: str = "original",
                 parent_id: int | None = None, topic: int = -1, has_media: bool = False, has_link: bool = False,
                 length: int = 0, labels: dict[str, bool] | None = None) -> int:
        """Creates the post on the service; returns the id the service assigned (`post_id` is not sent)."""
        body: dict[str, Any] = {"author_id": int(author_id), "kind": kind, "topic": int(topic),
                                "has_media": has_media, "has_link": has_link, "length": int(length),
                                **{k: bool(v) for k, v in (labels or {}).items()}}
        if parent_id is not None:
            body["parent_id"] = int(parent_id)
        return int(self._post("/v1/posts", body)["post_id"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, json=body)
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    def flush(self) -> None:
        if self._pending:
            self._post("/v1/engagements", {"events": self._pending})
            self._pending = []

    def close(self) -> None:
        self.flush()
        self.client.close()


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (the service sends seconds; an HTTP date or none: a second)."""
    try:
        return max(float(retry_after or 1.0), 0.0)
    except ValueError:
        return 1.0


if TYPE_CHECKING:  # the HTTP client satisfies the engine protocol (checked by mypy)
    from foryou.timeline.protocol import Engine

    def _over_http(engine: HttpEngine) -> Engine:
        return engine
