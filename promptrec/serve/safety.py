"""What keeps a hostile or careless request from hurting the server: bounded JSON parsing, internal errors
answered as JSON on a connection that stays open, and secrets kept out of the access log."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptrec.serve.event_rules import MAX_JSON_DIGITS

log = logging.getLogger("promptrec.serve")
SECRET_PARAMS = re.compile(r"(?i)([?&](?:[^=&]*(?:token|key|secret|password|auth|bearer|credential)[^=&]*)=)[^&\s]*")


class BodyError(ValueError):
    """A request body that is not acceptable JSON (HTTP 400)."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise BodyError(f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_JSON_DIGITS}")
    return int(text)


def parse_json(body: bytes) -> Any:
    """The body as JSON (``null`` when empty); BodyError for invalid UTF-8 or JSON, integers longer than
    ``MAX_JSON_DIGITS`` digits, or nesting deeper than Python's parser takes."""
    try:
        return json.loads(body or b"null", parse_int=_bounded_int)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError("JSON nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:  # JSON must be UTF-8 text
        raise BodyError(f"not valid JSON ({exc})") from None


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a JSON 500 with a reference (the log has the trace),
    and the keep-alive connection stays usable. (Starlette's own handler re-raises, and uvicorn then closes
    the connection, so the client's next request on it fails.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the point: nothing escapes to the server
            ref = uuid.uuid4().hex[:12]
            log.error("internal error %s on %s %s", ref, scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise
            await JSONResponse({"detail": f"internal error (reference {ref}; the server log has the details)"},
                               status_code=500)(scope, receive, send)


def redact(text: str) -> str:
    """``text`` with the values of secret-looking query parameters (token, key, secret, ...) replaced."""
    return SECRET_PARAMS.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """A logging filter that removes query-string secrets from access-log lines (uvicorn passes the path
    with its query string as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    """Install :class:`RedactSecrets` on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
