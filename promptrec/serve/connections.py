"""Connections that cannot lock clients out: uvicorn's HTTP/1.1 protocol with a header-read timeout and a
connection cap answered in JSON.

uvicorn times out idle keep-alive connections between requests, but not a connection that never finishes
sending its request headers, and its concurrency limit counts such connections: a few hundred idle sockets
then make every real client get a plain-text 503 until they go away. Here a connection has
``header_timeout_s`` to send each request's headers (from its first byte, or from the connection's start),
and a connection beyond ``max_connections`` gets a JSON 503 with Retry-After and is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


async def busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer on a connection beyond the cap."""
    body = json.dumps({"detail": "too many connections; retry later"}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", b"1"), (b"connection", b"close"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class GuardedH11Protocol(H11Protocol):
    """H11Protocol plus a header-read timeout and a JSON connection cap (set by :func:`guarded_protocol`)."""

    header_timeout_s: float = 10.0
    max_connections: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self.app = busy  # this connection's request is answered 503 (JSON, Retry-After), then closed
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # request headers not complete yet: they must come in time
            self._arm_header_timer()
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()  # it sent no complete request in time: nothing to answer


def guarded_protocol(header_timeout_s: float, max_connections: int | None) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.run(..., http=...)`` with these limits."""
    settings: dict[str, Any] = {"header_timeout_s": float(header_timeout_s), "max_connections": max_connections}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), settings)
