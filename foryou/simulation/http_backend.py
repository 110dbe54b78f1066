"""Drive a running `foryou serve` instead of an in-process engine (`foryou simulate --url`).

The service keeps its own clock and assigns its own post ids, so over HTTP the simulation cannot
fast-forward time or publish posts whose ids the ground truth knows: it serves the world's users
from the service's current state, sends every impression and action in batches, and scores what
it is served against the ground truth at the simulated time. Experiment arms are applied by the
service (the simulation attributes users to arms with the same deterministic hash, and counts the
users the service placed in another arm: `served_arms`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class _Item:
    post_id: int
    in_network: bool
    predictions: dict[str, float] = field(default_factory=dict)


@dataclass
class _Page:
    items: list[_Item]
    cursor: str | None


class HttpEngine:
    def __init__(self, url: str, token: str | None = None, batch: int = 2000, timeout: float = 30.0):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.batch = batch
        self._pending: list[dict[str, Any]] = []
        self.served_arms: dict[int, dict[str, str]] = {}  # user id → {experiment: arm} as the service applied
        self._models: dict[str, str] = {}
        self.client.get("/healthz").raise_for_status()

    def recommend(self, user_id: int, n: int = 35, now: int | None = None, cursor: str | None = None,
                  overrides: dict | None = None) -> _Page:
        self.flush()  # the page must see every action sent so far
        params: dict[str, Any] = {"n": n, **({"cursor": cursor} if cursor else {})}
        r = self.client.get(f"/v1/users/{int(user_id)}/timeline", params=params)
        r.raise_for_status()
        body = r.json()
        self.served_arms[int(user_id)] = dict(body.get("experiments") or {})
        self._models = dict(body.get("models") or {})
        items = [_Item(int(it["post_id"]), bool(it.get("in_network", False)), dict(it.get("predictions") or {}))
                 for it in body.get("items", [])]
        return _Page(items, body.get("cursor"))

    def model_versions(self) -> dict[str, str]:
        """What the service served the last page with."""
        return self._models

    def record_interaction(self, user_id: int, post_id: int, kind: str, t: int | None = None, value: float = 1.0,
                           **_: Any) -> None:
        self._pending.append({"user_id": int(user_id), "post_id": int(post_id), "kind": kind, "value": float(value)})
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.client.post("/v1/engagements", json={"events": self._pending}).raise_for_status()
            self._pending = []

    def close(self) -> None:
        self.flush()
        self.client.close()
