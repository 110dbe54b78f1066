"""Request limits at the HTTP edge: what one client can make a worker hold or do.

- the body: 413 past `max_body_bytes`, declared (Content-Length) or streamed (chunked);
- JSON nesting: 422 past `max_json_depth`, measured on the raw bytes before any parser recurses
  (a 1,000-deep body would otherwise reach Python's recursion limit in validation or rendering);
- slow headers: `HeaderTimeoutProtocol` closes a connection whose request header is not complete
  within `header_timeout_s` (see `foryou.service.server`).

Every value is a key of `ServiceConfig` with a safe default.
"""

from __future__ import annotations

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STEP = np.zeros(256, np.int8)
_STEP[[ord("{"), ord("[")]] = 1
_STEP[[ord("}"), ord("]")]] = -1


def json_depth(body: bytes) -> int:
    """The deepest nesting of objects/arrays in a JSON text, brackets inside strings ignored.

    Vectorised over the bytes (about 2 ms for a 10,000-event batch): a bracket is inside a string
    when an odd number of unescaped quotes precede it; a quote is escaped when an odd run of
    backslashes precedes it."""
    b = np.frombuffer(body, np.uint8)
    brackets = np.flatnonzero(_STEP[b])
    if not len(brackets):
        return 0
    quotes = np.flatnonzero(b == ord('"'))
    if len(quotes):
        if b"\\" in body:
            backslash = b == ord("\\")
            last_other = np.maximum.accumulate(np.where(backslash, -1, np.arange(len(b))))
            before = quotes - 1
            run = np.where(before >= 0, before - last_other[np.maximum(before, 0)], 0)
            quotes = quotes[run % 2 == 0]
        brackets = brackets[(np.searchsorted(quotes, brackets) & 1) == 0]
    return int(np.cumsum(_STEP[b[brackets]], dtype=np.int64).max(initial=0))


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestLimits:
    """ASGI middleware: reads the whole body first (it is bounded), answers 413 past the size limit
    and 422 past the depth limit, then hands the buffered body to the app."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_json_depth: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODILESS:  # no route reads a GET's body
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_body_bytes + 1
                if declared > self.max_body_bytes:
                    await _reply(send, 413, b'{"detail":"request body too large"}')
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # chunked: no Content-Length to refuse up front
                await _reply(send, 413, b'{"detail":"request body too large"}')
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and json_depth(body) > self.max_json_depth:
            detail = f'{{"detail":"JSON nested deeper than {self.max_json_depth} levels"}}'.encode()
            await _reply(send, 422, detail)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as the app expects

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
