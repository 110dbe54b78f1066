"""Self-contained page cursors: the post ids already served in this scroll session.

A cursor must work on whichever worker process serves the next page, and after a restart, so it
carries the served ids itself: sorted, delta-encoded as unsigned varints, base64url. A page of
35 posts costs ~50 characters. A forged cursor can only change its holder's own next page.
"""

from __future__ import annotations

import base64
import binascii

MAX_CURSOR_CHARS = 8192
PREFIX = "v1."


class BadCursor(ValueError):
    pass


def encode(post_ids: set[int] | frozenset[int]) -> str:
    out = bytearray()
    prev = 0
    for pid in sorted(post_ids):
        d = pid - prev
        prev = pid
        while True:
            b = d & 0x7F
            d >>= 7
            out.append(b | (0x80 if d else 0))
            if not d:
                break
    return PREFIX + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def decode(cursor: str | None) -> frozenset[int]:
    if not cursor:
        return frozenset()
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.startswith(PREFIX):
        raise BadCursor("malformed cursor")
    raw = cursor[len(PREFIX):]
    try:
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("malformed cursor") from exc
    ids, prev, cur, shift = [], 0, 0, 0
    for b in data:
        cur |= (b & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise BadCursor("malformed cursor")
        if not b & 0x80:
            prev += cur
            ids.append(prev)
            cur, shift = 0, 0
    if shift:
        raise BadCursor("malformed cursor")
    return frozenset(ids)
