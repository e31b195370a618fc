"""Limits of `promptrec serve`: per-key request rate (429; failed authentication per client address),
request body size (413), request time (504)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Limits:
    """What one request and one client may use. Rates are per API key (per client address without keys)."""

    rate_per_s: float = 200.0  # sustained requests per second per key; 0: no rate limit
    burst: int = 400  # requests a key may make at once before the rate applies
    max_body_bytes: int = 4 * 1024 * 1024  # 1,000 events with modest context fit comfortably
    request_timeout_s: float = 30.0  # past it, HTTP 504 (must exceed the LLM deadline)
    max_k: int = 100  # items per recommendation
    failed_auth_per_s: float = 2.0  # requests with a missing or wrong key, per client address; 0: no limit
    failed_auth_burst: int = 20


class RateLimiter:
    """Token buckets, one per client: ``burst`` tokens, refilled at ``rate_per_s``."""

    MAX_CLIENTS = 100_000  # beyond it, full (idle) buckets are forgotten

    def __init__(self, rate_per_s: float, burst: int):
        self.rate, self.burst = rate_per_s, max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, client: str, rate_per_s: float | None = None) -> float:
        """Take one token for ``client``: 0.0 if allowed, else the seconds until one is available."""
        rate = self.rate if rate_per_s is None else rate_per_s
        if rate <= 0:
            return 0.0
        burst, now = self.burst, time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(client, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                if len(self._buckets) > self.MAX_CLIENTS:
                    self._forget_idle(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / rate

    def _forget_idle(self, now: float) -> None:
        idle = [c for c, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for c in idle:
            del self._buckets[c]


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodySizeLimit:
    """ASGI middleware: HTTP 413 for bodies over ``max_bytes``, by Content-Length or as they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes:,} bytes; send fewer events per request"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self._too_large()}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._too_large())  # turned into a response by the app
            return message

        await self.app(scope, counted, send)


class RequestTimeout:
    """ASGI middleware: HTTP 504 when the app has not started its response within ``seconds``.

    Work already handed to a thread (e.g. an event batch being committed) still finishes; an event
    request that timed out may therefore be stored: retry it with the same ``event_id``.
    """

    def __init__(self, app: ASGIApp, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.seconds)
        except asyncio.TimeoutError:
            if not started:
                await JSONResponse({"detail": f"the request took longer than {self.seconds:g} s; retry later "
                                    "(events: with the same event_id)"}, status_code=504)(scope, receive, send)
