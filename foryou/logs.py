"""Structured logs: JSON lines to a file. Library code logs; only the CLI writes to the terminal.

Long work (generation, training, evaluation, simulation) reports through a `Progress` callback instead;
the CLI turns it into progress bars."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path

# (stage description, fraction of that stage done in [0, 1])
Progress = Callable[[str, float], None]

DEFAULT_LOG = Path(os.environ.get("FORYOU_LOG", "runs/logs/foryou.jsonl"))
_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(path: Path = DEFAULT_LOG, level: int = logging.INFO) -> Path:
    """Send the `foryou` loggers to a rotating JSON-lines file (idempotent)."""
    logger = logging.getLogger("foryou")
    if any(isinstance(h, RotatingFileHandler) for h in logger.handlers):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=20 * 2**20, backupCount=3)
    handler.setFormatter(JsonLines())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return path


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
