"""Promotions made elsewhere, noticed: `foryou models promote|rollback`, or another worker answering
`POST /v1/models/...`, replaces a model's `promoted.json` in the registry; every worker compares the files'
stamps at most once a second and reloads its models when they moved, so all workers serve one version."""

from __future__ import annotations

import time
from pathlib import Path

from foryou.registry import PROMOTED_FILE


class PromotionWatch:
    def __init__(self, models_root: Path, every_s: float = 1.0):
        self.root = models_root
        self.every_s = every_s
        self._seen = self._stamp()
        self._next = time.monotonic() + every_s
        self._pending = False

    def _stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for path in self.root.glob(f"*/{PROMOTED_FILE}"):
            try:
                st = path.stat()
            except OSError:  # replaced between the listing and the stat: the next look sees it
                continue
            out.append((path.parent.name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(out))

    def pending(self) -> bool:
        """Whether a promotion changed since the last `acknowledge` (looks at most every `every_s`)."""
        now = time.monotonic()
        if not self._pending and now >= self._next:
            self._next = now + self.every_s
            self._pending = self._stamp() != self._seen
        return self._pending

    def acknowledge(self) -> None:
        """The models were (re)loaded now: what is promoted now is what is served."""
        self._seen = self._stamp()
        self._pending = False
