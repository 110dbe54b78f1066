"""Trace logs: one JSON line per request (request id, user, step timings, sources, model versions)
and per write (the event and the counters it changed), to a rotating file."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import orjson


class _Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(record.msg, option=orjson.OPT_SERIALIZE_NUMPY).decode()


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
        self._handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)
        self._handler.setFormatter(_Line())
        self._logger.addHandler(self._handler)

    def write(self, entry: dict[str, Any]) -> None:
        self._logger.info(entry)

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()
