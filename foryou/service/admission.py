"""Admission control for expensive work (cache misses, writes): a bounded queue and a deadline.

Without it a worker under overload queues every request in its threadpool and each one waits for all
before it: latency grows without bound and most answers arrive after their clients gave up. Here a
request is admitted only while the expected wait of the work already admitted stays within
`service.max_queue_ms` (admitted count × the recent mean service time, an EWMA) and fewer than
`service.max_pending` are in flight; otherwise it is answered 503 with Retry-After at once, without
work. An admitted request whose work has not started within its deadline (2 × `max_queue_ms` after
admission) is shed too: nobody should pay for an answer that is already late. Per worker process:
each worker protects its own core.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from foryou.service import metrics

T = TypeVar("T")
EWMA = 0.1  # weight of the newest service time in the running mean


class Overloaded(Exception):
    """Not admitted or shed past its deadline: answer 503 with Retry-After, nothing was done."""

    def __init__(self, reason: str, retry_after_s: int):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Admission:
    def __init__(self, max_pending: int, max_queue_ms: float, retry_after_s: int = 1,
                 clock: Callable[[], float] = time.perf_counter):
        self.max_pending = max_pending
        self.max_queue_s = max_queue_ms / 1000
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self.pending = 0
        self.service_s = 0.0  # EWMA of a unit of work's time (0 until the first one finishes)

    def admit(self) -> float:
        """Admit one unit of work (returns its admission instant) or raise `Overloaded`."""
        with self._lock:
            if self.pending >= self.max_pending or self.pending * self.service_s > self.max_queue_s:
                metrics.SHED.labels("queue").inc()
                raise Overloaded(f"overloaded: {self.pending} requests already queued on this worker; retry "
                                 f"in {self.retry_after_s} s", self.retry_after_s)
            self.pending += 1
            return self._clock()

    def start(self, admitted_at: float) -> float:
        """The work is about to start: raise `Overloaded` (and release) when it waited past its deadline."""
        now = self._clock()
        if now - admitted_at > 2 * self.max_queue_s:
            self.release(None)
            metrics.SHED.labels("deadline").inc()
            raise Overloaded(f"overloaded: queued {1000 * (now - admitted_at):.0f} ms on this worker, past its "
                             f"deadline; retry in {self.retry_after_s} s", self.retry_after_s)
        return now

    def release(self, started_at: float | None) -> None:
        """The work is done (`started_at` from `start`, or None when it never ran)."""
        with self._lock:
            self.pending -= 1
            if started_at is not None:
                took = self._clock() - started_at
                self.service_s = took if self.service_s == 0 else (1 - EWMA) * self.service_s + EWMA * took

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`fn(*args, **kwargs)` in the threadpool if admitted (else `Overloaded`), shed if it starts late."""
        admitted_at = self.admit()
        ran = False

        def work() -> T:
            nonlocal ran
            ran = True
            started_at = self.start(admitted_at)
            try:
                return fn(*args, **kwargs)
            finally:
                self.release(started_at)

        try:
            return await run_in_threadpool(work)
        finally:
            if not ran:  # cancelled before a thread picked it up (the client went away): release it here
                self.release(None)
