"""Self-contained page cursors: the post ids already served in this scroll session.

A cursor must work on whichever worker process serves the next page, and after a restart, so it
carries the served ids itself: sorted, delta-encoded as unsigned varints, base64url. A page of
35 posts costs ~50 characters. A forged cursor can only change its holder's own next page.
A v2 cursor also carries the scroll session's id (the first varint), so every page of one session
is logged as one session in the experiment exposures whichever worker serves it.
"""

from __future__ import annotations

import base64
import binascii

MAX_CURSOR_CHARS = 8192
CURSOR_PATTERN = r"^(v[12]\.[A-Za-z0-9_-]*)?$"  # empty: the first page
PREFIX = "v1."
PREFIX_V2 = "v2."
# The largest id the API takes: the largest integer a JSON number carries exactly everywhere
# (JavaScript's Number.MAX_SAFE_INTEGER); far from int64 overflow in any arithmetic on ids.
ID_MAX = 2**53 - 1


class BadCursor(ValueError):
    pass


def encode(post_ids: set[int] | frozenset[int], session: int | None = None) -> str:
    out = bytearray()
    if session is not None:
        _varint(out, session)
    prev = 0
    for pid in sorted(post_ids):
        _varint(out, pid - prev)
        prev = pid
    return (PREFIX if session is None else PREFIX_V2) + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def _varint(out: bytearray, d: int) -> None:
    while True:
        b = d & 0x7F
        d >>= 7
        out.append(b | (0x80 if d else 0))
        if not d:
            break


def decode(cursor: str | None) -> frozenset[int]:
    return decode_session(cursor)[0]


def decode_session(cursor: str | None) -> tuple[frozenset[int], int | None]:
    """(served post ids, the session id: None for no cursor or a v1 cursor)."""
    if not cursor:
        return frozenset(), None
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.startswith((PREFIX, PREFIX_V2)):
        raise BadCursor("malformed cursor")
    with_session = cursor.startswith(PREFIX_V2)
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
            if prev > ID_MAX:  # a forged cursor: its running sum would overflow int64 downstream
                raise BadCursor("malformed cursor")
            ids.append(prev)
            cur, shift = 0, 0
    if shift or (with_session and not ids):
        raise BadCursor("malformed cursor")
    if with_session:
        session = ids[0]
        ids = [b - session for b in ids[1:]]  # the deltas ran on from the session varint
        return frozenset(ids), session
    return frozenset(ids), None
