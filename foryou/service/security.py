"""Security basics: the bearer token on every write, host checks (request limits: `limits.py`)."""

from __future__ import annotations

import hmac
import ipaddress
import socket

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from foryou.errors import ForYouError


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


class BindRefused(ForYouError, ValueError):
    pass


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve writes to the network without a token."""
    if not is_loopback(host) and not token:
        raise BindRefused(f"refusing to listen on non-loopback host {host!r} without a write token "
                         "(pass --token or set FORYOU_TOKEN)")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteAuth:
    """The one authorization check: ASGI middleware that asks every request able to change state
    (any method but GET/HEAD/OPTIONS) for `Authorization: Bearer <token>` when a token is configured
    (open without one, which only a loopback bind allows).

    Middleware rather than a per-route dependency, so that no route — one added later, a mounted
    app, a router that forgets — can skip it, and so that an unauthenticated body is refused before
    it is read or parsed. It answers only for requests that reach a route: a method the path does
    not support still gets the router's 405, an unknown path its 404.
    """

    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.token is None or scope["type"] != "http" or scope["method"] in SAFE_METHODS
                or self.authorised(scope) or not _routed(scope)):
            await self.app(scope, receive, send)
            return
        body = b'{"detail":"missing or wrong bearer token"}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def authorised(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False


def _routed(scope: Scope) -> bool:
    """Whether a route of the app takes this method on this path."""
    return any(route.matches(scope)[0] == Match.FULL for route in scope["app"].router.routes)
