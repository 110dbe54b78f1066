"""Rate limiting at the HTTP edge: at most `service.rate_limit_per_minute` timeline reads per client
address (600 by default), answered 429 with `Retry-After` and the one error shape past that.

The limiter is GCRA (the generic cell rate algorithm, a token bucket kept as one number per client):
a client may send a burst of `per_minute` requests, then one every `60 / per_minute` seconds. Its
one number, the "theoretical arrival time", is in the past once the client's bucket is full again,
and then it says nothing: such entries are dropped, so the state holds only clients seen within
about the last minute, and never more than `rate_limit_clients` of them (past that the least
recently seen client is forgotten, which can only give it a fresh budget, never refuse anyone).

State is per worker process: with `foryou serve --workers N` a client gets up to N times the budget
(a shared store would cost every request a round trip; the limit bounds load, not billing).

The key is the client's address, not a bearer token: reads need no token, so a key a client can
choose would be a fresh budget per request. Behind a proxy, uvicorn's `--proxy-headers` (with
`--forwarded-allow-ips`) makes the address the real client's.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, Request

from foryou.config import ServiceConfig
from foryou.service import metrics

WINDOW_S = 60.0


class RateLimiter:
    """Per-client GCRA over a sliding `window_s`; thread-safe; bounded, expiring state."""

    def __init__(self, per_window: int, max_clients: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        if per_window < 1 or max_clients < 1:
            raise ValueError("per_window and max_clients must be at least 1")
        self.per_window = per_window
        self.window_s = window_s
        self.max_clients = max_clients
        self._interval = window_s / per_window
        self._slack = self._interval * 1e-6  # float sums: the `per_window`-th request of a burst must pass
        self._clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()  # client → theoretical arrival time, least recent first
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """0.0 when `client` may go ahead (the request is counted), else the seconds until it may
        (nothing is counted: a refused request costs the client nothing more)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            tat = max(self._tat.get(client, now), now) + self._interval
            if tat - now > self.window_s + self._slack:
                return tat - self.window_s - now
            self._tat[client] = tat
            self._tat.move_to_end(client)
            while len(self._tat) > self.max_clients:
                self._tat.popitem(last=False)
            return 0.0

    def __len__(self) -> int:
        return len(self._tat)

    def _expire(self, now: float) -> None:
        """Drop full buckets from the least recently seen end. A client's time is at most one window
        past its last request, so every entry goes within two windows of it (amortised O(1))."""
        while self._tat:
            client, tat = next(iter(self._tat.items()))
            if tat > now:
                return
            del self._tat[client]


def limiter_for(config: ServiceConfig) -> RateLimiter | None:
    """The timeline-read limiter `config` asks for, None when it is off (0 a minute)."""
    if config.rate_limit_per_minute == 0:
        return None
    return RateLimiter(config.rate_limit_per_minute, config.rate_limit_clients)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def limit_timeline_reads(request: Request) -> None:
    """Route dependency: 429 (with Retry-After, whole seconds) past the client's budget. The app
    keeps the limiter in `app.state.rate_limiter` (None: no limit)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    wait = limiter.acquire(client_address(request))
    if wait > 0:
        metrics.ERRORS.labels("rate_limited").inc()
        retry = max(1, math.ceil(wait))
        raise HTTPException(429, f"rate limit: at most {limiter.per_window} timeline requests per "
                                 f"{limiter.window_s:g} s per client; retry in {retry} s",
                            headers={"Retry-After": str(retry)})
