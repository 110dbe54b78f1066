"""Micro-batching of cache misses: concurrent requests ranked in one pipeline pass.

X's ranker servers batch requests dynamically. Here the whole funnel after retrieval is batch-first
(`RecommendationEngine.recommend_each` runs many users' queries through every step at once), so a worker
that has several misses at the same moment ranks them together: the first miss opens a batch, misses that
arrive within `service.batch_wait_ms` (≤ 2 ms) and can share its pipeline pass (same experiment arms, same
depth) join it, up to `service.batch_max` users; one thread runs the batch and hands each request its own
page — the page `recommend` would have served it alone (test). A batch waits only while more misses are
admitted than have joined it (a lone miss never waits), and misses that arrive while a batch runs form the
next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

R = TypeVar("R")
RunBatch = Callable[[Any, Sequence[Any]], Sequence[Any]]


@dataclass
class _Batch(Generic[R]):
    key: Hashable
    deadline: float
    items: list[Any] = field(default_factory=list)
    futures: list[Future[R]] = field(default_factory=list)


class MicroBatcher(Generic[R]):
    """`submit(key, item)` → the item's result from `run(key, items)`, batched with other items of the same key
    submitted within `wait_s` of the batch's first, at most `max_batch` per call. Thread-safe; one runner
    thread, started lazily."""

    def __init__(self, run: RunBatch, wait_s: float, max_batch: int, expected: Callable[[], int] = lambda: 0):
        """`expected()`: how many items are on their way (the worker's admitted misses): a batch waits for
        more only while fewer have joined it — a lone request never waits."""
        self._run, self.wait_s, self.max_batch, self._expected = run, wait_s, max_batch, expected
        self._cond = threading.Condition()
        self._open: list[_Batch[R]] = []  # in arrival order of their first item
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # calls of `run` so far, and the items they carried (metrics, tests)
        self.items = 0

    def submit(self, key: Hashable, item: Any) -> R:
        future: Future[R] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            batch = next((b for b in self._open if b.key == key and len(b.items) < self.max_batch), None)
            if batch is None:
                batch = _Batch(key, time.perf_counter() + self.wait_s)
                self._open.append(batch)
            batch.items.append(item)
            batch.futures.append(future)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="foryou-batcher", daemon=True)
                self._thread.start()
            self._cond.notify()
        return future.result()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._open and not self._closed:
                    self._cond.wait()
                if self._closed and not self._open:
                    return
                first = self._open[0]
                # wait out the first batch's window while it is not full and more requests are on their way
                while (len(first.items) < min(self.max_batch, self._expected())
                       and (left := first.deadline - time.perf_counter()) > 0):
                    self._cond.wait(left)
                self._open.pop(0)
            try:
                results = self._run(first.key, first.items)
                self.batches += 1
                self.items += len(first.items)
                for future, result in zip(first.futures, results, strict=True):
                    future.set_result(result)
            except BaseException as exc:  # every waiting request gets the batch's error
                for future in first.futures:
                    if not future.done():
                        future.set_exception(exc)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
