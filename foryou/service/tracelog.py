"""Trace logs: one JSON line per request (request id, user, step timings, sources, model versions)
and per write (the event and the counters it changed), to a rotating file."""

from __future__ import annotations

import logging
import os
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import orjson


class _Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(record.msg, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class _BufferedRotating(RotatingFileHandler):
    """Rotation decided from the stream position (no stat per record) and writes flushed at most
    every `flush_s` seconds: a trace line costs microseconds on the request path. A crash can lose
    the last fraction of a second of traces, never an event (those are in the store)."""

    def __init__(self, path: Path, max_bytes: int, backups: int, flush_s: float = 0.5):
        super().__init__(path, maxBytes=max_bytes, backupCount=backups)
        self.flush_s = flush_s
        self._last_flush = time.monotonic()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        return self.stream is not None and self.maxBytes > 0 and self.stream.tell() >= self.maxBytes

    def flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self._last_flush = now
            super().flush()

    def close(self) -> None:
        self._last_flush = 0.0
        super().flush()
        super().close()


class TraceLog:
    def __init__(self, path: Path, max_bytes: int, backups: int):
        # Each worker process gets its own file: RotatingFileHandler is not safe across processes.
        if os.environ.get("FORYOU_WORKER_SUFFIX"):
            path = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._logger = logging.getLogger(f"foryou.trace.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handler = _BufferedRotating(path, max_bytes, backups)
        self._handler.setFormatter(_Line())
        self._logger.addHandler(self._handler)

    def write(self, entry: dict[str, Any]) -> None:
        self._logger.info(entry)

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()
