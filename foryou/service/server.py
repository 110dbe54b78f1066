"""Running the app under uvicorn with the connection-level limits uvicorn lacks.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends a
request's header slowly (or never finishes it) is held forever: 1,000 such sockets stay open. Our
protocol arms a timer when a connection opens and when each request starts, and closes the
connection if the header is not complete within `ServiceConfig.header_timeout_s`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_ENV = "FORYOU_HEADER_TIMEOUT_S"  # worker processes read it (spawned, they share no memory)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools' HTTP/1.1 protocol that drops a connection whose request header is late."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a keep-alive connection's next request gets a fresh allowance

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(float(os.environ.get(HEADER_TIMEOUT_ENV, "10")), self._late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def run(target: Any, host: str, port: int, header_timeout_s: float, **uvicorn_options: Any) -> None:
    """`uvicorn.run` with our protocol (workers, signals and supervision stay uvicorn's)."""
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout_s)
    uvicorn.run(target, host=host, port=port, http=HeaderTimeoutProtocol, log_level="warning", access_log=False,
                **uvicorn_options)
