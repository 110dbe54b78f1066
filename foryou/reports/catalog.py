"""Which reports a dataset has: `foryou eval` and `foryou simulate` note each one they write in the dataset's
state directory (`reports.jsonl`, one JSON line per report, appended), so the web app can list and open them
wherever they were written. A report deleted since is not listed; a damaged line is skipped."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

CATALOG = "reports.jsonl"


@dataclass(frozen=True)
class ReportEntry:
    kind: str  # "eval" | "simulation"
    path: Path  # the HTML file
    title: str
    created: float  # unix seconds


def record(state: Path, kind: str, path: Path, title: str) -> None:
    """Note a written report (append-only: a crash mid-line loses at most that line)."""
    state.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"kind": kind, "path": str(Path(path).resolve()), "title": title, "created": time.time()})
    with (state / CATALOG).open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def entries(state: Path) -> list[ReportEntry]:
    """The reports that still exist, newest first, each path once (its latest note)."""
    try:
        lines = (state / CATALOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    latest: dict[str, ReportEntry] = {}
    for line in lines:
        try:
            d = json.loads(line)
            e = ReportEntry(str(d["kind"]), Path(d["path"]), str(d["title"]), float(d["created"]))
        except (ValueError, KeyError, TypeError):
            continue
        latest[str(e.path)] = e
    return sorted((e for e in latest.values() if e.path.is_file()), key=lambda e: -e.created)
