"""The HTTP API (FastAPI): POST /events, GET /recommendations/{user_id}, GET /users/{user_id}/history, GET /health,
POST /admin/reload and /admin/rollback (model versions).

With API keys configured, every route but /health (including /openapi.json) needs ``Authorization:
Bearer <token>`` with the route's scope; rates, body sizes and request times are bounded (``Limits``).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from starlette.convertors import Convertor, register_url_convertor

from promptrec import __version__
from promptrec.serve.auth import ADMIN, EVENTS_WRITE, RECOMMENDATIONS_READ, KeyRing
from promptrec.serve.limits import BodySizeLimit, Limits, RateLimiter, RequestTimeout, retry_after
from promptrec.serve.safety import BodyError, InternalErrors, parse_json, redact_access_log
from promptrec.serve.schemas import (MAX_EVENTS_PER_REQUEST, ErrorBody, EventIn, EventsAck, EventsBody, Health,
                                     HistoryEvent, Recommendations, SwapResult, Time)
from promptrec.serve.model_swap import ModelSwitcher, NothingToSwap
from promptrec.serve.service import Overloaded, RecommendationService, UnknownItems
from promptrec.serve.event_rows import StoreUnavailable
from promptrec.serve.ui import ui_router

log = logging.getLogger(__name__)

EVENT_LIST = TypeAdapter(list[EventIn])
BODY_SCHEMA = EventsBody.json_schema(ref_template="#/components/schemas/{model}")
BODY_DEFS = BODY_SCHEMA.pop("$defs", {})
HINTS = {"timezone_aware": " (give an ISO time with a zone, e.g. 2024-05-01T18:00:00Z)",
         "extra_forbidden": " (allowed fields: " + ", ".join(EventIn.model_fields) + ")"}


class AnyIdConvertor(Convertor):
    """Path ids of any characters: '/' (sent as %2F) and newlines too, unlike Starlette's str and path."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anyid", AnyIdConvertor())


def field_name(loc: tuple, prefix: str = "") -> str:
    """('body', 0, 'timestamp') -> 'events[0].timestamp'; ('query', 'k') -> 'query parameter k'."""
    if loc and loc[0] in ("query", "path"):
        return f"{loc[0]} parameter {'.'.join(map(str, loc[1:]))}"
    parts = [p for p in loc if p != "body"]
    out = prefix
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def problems_response(problems: list[dict[str, Any]], status: int = 422) -> JSONResponse:
    detail = f"{len(problems)} problem(s): " + "; ".join(f"{p['field']}: {p['message']}" for p in problems[:10])
    return JSONResponse({"detail": detail, "errors": jsonable_encoder(problems)}, status_code=status)


def _problems(exc: ValidationError | RequestValidationError, prefix: str = "") -> list[dict[str, Any]]:
    return [{"field": field_name(tuple(e["loc"]), prefix), "message": e["msg"] + HINTS.get(e["type"], "")}
            for e in exc.errors()]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


COMMON_ERRORS = {422: _error("Invalid input; `errors` names each field."),
                 429: _error("Rate limit of this key exceeded; see Retry-After."),
                 503: _error("Too many requests waiting, or the event store is unreachable; retry later (Retry-After)."),
                 504: _error("The request took longer than the server's request timeout.")}
AUTH_ERRORS = {401: _error("Missing or unknown API key."), 403: _error("The API key lacks this route's scope.")}


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not declare (a typo like ``devce=tv`` is not silently ignored)."""
    route = request.scope["route"]
    declared = {p.alias for p in route.dependant.query_params}
    declared |= {p["name"] for p in (route.openapi_extra or {}).get("parameters", []) if p.get("in") == "query"}
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise RequestValidationError([{"loc": ("query", name), "type": "unknown_parameter",
                                       "msg": f"unknown parameter (this route takes: {allowed})"} for name in unknown])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def access_guard(keys: KeyRing, limiter: RateLimiter, failures: RateLimiter) -> Callable[[str | None], Any]:
    """``guard(scope)``: a dependency that checks the bearer key's scope (when keys are configured) and
    the caller's rate (per key, else per client address). Failed authentication is rate-limited per client
    address (``failures``), so guessing keys costs time."""
    bearer = HTTPBearer(auto_error=False, description="An API key from `promptrec keys create`.")

    def limit(client: str, rate: float | None, bucket: RateLimiter = limiter) -> None:
        wait = bucket.acquire(client, rate)
        if wait:
            raise HTTPException(429, f"rate limit exceeded for {client}; retry after {wait:.2f} s",
                                headers={"Retry-After": retry_after(wait)})

    def refuse(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        limit(f"address {client_address(request)} (failed authentication)", None, failures)
        raise HTTPException(status, detail, headers=headers)

    def guard(scope: str | None) -> Any:
        if not keys:
            async def open_access(request: Request) -> None:
                limit(f"address {client_address(request)}", None)
            return Depends(open_access)

        async def key_access(request: Request,
                             credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
            if credentials is None:
                refuse(request, 401, "missing API key: send the header 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
            key = keys.lookup(credentials.credentials)
            if key is None:
                refuse(request, 401, "unknown API key", {"WWW-Authenticate": "Bearer"})
            if scope is not None and scope not in key.scopes:
                refuse(request, 403, f"API key '{key.name}' lacks the scope '{scope}' (it has: "
                       f"{', '.join(key.scopes)})")
            limit(f"key '{key.name}'", key.rate_per_s)
        return Security(key_access)

    return guard


def create_app(service: RecommendationService, keys: KeyRing | None = None, limits: Limits | None = None,
               switcher: ModelSwitcher | None = None) -> FastAPI:
    """The API over ``service``; ``keys`` empty or None: no authentication (loopback use); ``switcher``: model
    versions that /admin/reload and /admin/rollback move between."""
    keys, limits = keys or KeyRing(), limits or Limits()
    limiter = RateLimiter(limits.rate_per_s, limits.burst)
    guard = access_guard(keys, limiter, RateLimiter(limits.failed_auth_per_s, limits.failed_auth_burst))
    redact_access_log()
    strict = Depends(known_query_only)
    errors = {**COMMON_ERRORS, **(AUTH_ERRORS if keys else {})}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if switcher is not None:
            switcher.close()
        service.close()  # graceful shutdown: LLM batch finished, engine stopped, store checkpointed

    # with keys the spec needs a key too (served below), and the browser docs page, which cannot send one, is off
    app = FastAPI(title="promptrec", version=__version__, lifespan=lifespan,
                  openapi_url=None if keys else "/openapi.json", docs_url=None if keys else "/docs", redoc_url=None,
                  description="Time-aware recommendations: each posted event counts in the next recommendation.")
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(RequestTimeout, seconds=limits.request_timeout_s)
    app.add_middleware(InternalErrors)  # outermost of ours: an error answers 500 and the connection stays open

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problems_response(_problems(exc))

    @app.exception_handler(Overloaded)
    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            log.error("%s", exc)  # the URL is redacted; the body says only what the client can act on
            return JSONResponse({"detail": "event store unavailable; retry later"}, status_code=503,
                                headers={"Retry-After": "5"})
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.post("/events", response_model=EventsAck, dependencies=[guard(EVENTS_WRITE), strict],
              responses={**errors, 400: _error("The body is not JSON."), 413: _error("The body is too large.")},
              openapi_extra={"requestBody": {
        "required": True, "description": f"One event, or a list of 1 to {MAX_EVENTS_PER_REQUEST} events.",
        "content": {"application/json": {"schema": BODY_SCHEMA}}}})
    async def post_events(request: Request):
        """Store events durably (acknowledged only once on disk) and apply them to the next recommendation."""
        try:
            body = parse_json(await request.body())
        except BodyError as exc:
            return problems_response([{"field": "body", "message": str(exc)}], 400)
        try:
            if isinstance(body, list):
                if not 1 <= len(body) <= MAX_EVENTS_PER_REQUEST:
                    return problems_response([{"field": "events", "message":
                                               f"send 1 to {MAX_EVENTS_PER_REQUEST} events per request, not {len(body)}"}])
                events = EVENT_LIST.validate_python(body)
            elif isinstance(body, dict):
                events = [EventIn.model_validate(body)]
            else:
                return problems_response([{"field": "body", "message": "send an event object or a list of events"}])
        except ValidationError as exc:
            return problems_response(_problems(exc, "events" if isinstance(body, list) else "event"))
        try:
            return await asyncio.to_thread(service.add_events, events)
        except UnknownItems as exc:
            if not isinstance(body, list):
                for p in exc.problems:
                    p["field"] = p["field"].replace("events[0]", "event")
            return problems_response(exc.problems)

    user_path = Path(min_length=1, max_length=256, description="The user's id (any characters, '/' as %2F).")

    read = [guard(RECOMMENDATIONS_READ), strict]

    columns = tuple(getattr(service, "context_columns", ()))  # declared context columns: query parameters too
    declared = {"parameters": [{"name": c, "in": "query", "required": False, "schema": {
        "type": "string", "minLength": 1, "maxLength": 64}, "description": f"The request's {c} (a declared context "
        "column of the event log)."} for c in columns]} if columns else None

    @app.get("/recommendations/{user_id:anyid}", response_model=Recommendations, dependencies=read, responses=errors,
             openapi_extra=declared)
    async def recommendations(request: Request, user_id: str = user_path, k: int = Query(10, ge=1, le=limits.max_k),
                              now: Time | None = Query(None, description="ISO time with a zone, between 1678 and "
                                                                         "2261; default: now."),
                              rerank: bool = Query(True, description="Let the LLM order the candidates, if one is configured."),
                              device: str | None = Query(None, min_length=1, max_length=64,
                                                         description="The device the request comes from (e.g. tv, mobile)."),
                              lat: float | None = Query(None, ge=-90, le=90,
                                                        description="Latitude of the user now (with lon)."),
                              lon: float | None = Query(None, ge=-180, le=180,
                                                        description="Longitude of the user now (with lat).")):
        """Top-k items for the user in a context (``now``, device, location): retrieved, then ordered by the
        LLM within its deadline. Without a location, place-aware signals use the user's last place. Declared
        context columns (e.g. ``weather=rain``) are query parameters too."""
        if (lat is None) != (lon is None):
            return problems_response([{"field": "query parameter lat" if lat is None else "query parameter lon",
                                       "message": "give both lat and lon, or neither"}])
        extras = {c: request.query_params[c] for c in columns if c in request.query_params}
        wrong = [c for c, v in extras.items() if not 1 <= len(v) <= 64]
        if wrong:
            return problems_response([{"field": f"query parameter {c}", "message": "give 1 to 64 characters"}
                                      for c in wrong])
        return await service.recommend(user_id, k, now, rerank, device=device,
                                       location=None if lat is None else (lat, lon), extras=extras)

    @app.get("/users/{user_id:anyid}/history", response_model=list[HistoryEvent], dependencies=read, responses=errors)
    async def history(user_id: str = user_path, limit: int = Query(50, ge=1, le=10_000)):
        """The user's most recent events (fitted log and posted), oldest first."""
        return await asyncio.to_thread(service.history, user_id, limit)

    @app.get("/health", response_model=Health, responses={429: COMMON_ERRORS[429]})
    async def health(request: Request):
        """Liveness, counts and states; needs no key. Where the events are kept (a file path, a database user and
        host) is shown only to a request with a valid key."""
        wait = limiter.acquire(f"address {client_address(request)} (health)")
        if wait:
            raise HTTPException(429, f"rate limit exceeded; retry after {wait:.2f} s",
                                headers={"Retry-After": retry_after(wait)})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        trusted = bool(keys) and scheme.lower() == "bearer" and keys.lookup(token.strip()) is not None
        return await asyncio.to_thread(service.health, trusted)

    admin = [guard(ADMIN), strict]
    admin_errors = {**errors, 409: _error("No such model version, or nothing to move to.")}

    def model_versions() -> ModelSwitcher:
        if switcher is None:
            raise HTTPException(409, "this server serves one retriever folder, not model versions: start it with "
                                     "--retriever <model folder> (promptrec retriever fit --versions DIR)")
        return switcher

    @app.post("/admin/reload", response_model=SwapResult, dependencies=admin, responses=admin_errors)
    async def reload(version: str | None = Query(None, min_length=1, max_length=64,
                                                 description="A version to serve (default: the newest).")):
        """Serve the newest model version (or the one named): loaded beside the serving one, the live events
        newer than its data applied, then requests move over at once. Needs the admin scope."""
        try:
            return await asyncio.to_thread(model_versions().reload, version)
        except NothingToSwap as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/admin/rollback", response_model=SwapResult, dependencies=admin, responses=admin_errors)
    async def rollback():
        """Serve the version before the current one and mark the current one rolled back. Needs the admin scope."""
        try:
            return await asyncio.to_thread(model_versions().rollback)
        except NothingToSwap as exc:
            raise HTTPException(409, str(exc)) from None

    def openapi() -> dict[str, Any]:  # the /events body schema refers to EventIn: put it in the components
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(BODY_DEFS)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
    app.include_router(ui_router(service, guard))  # the web console under /ui, key-checked like the API

    if keys:
        @app.get("/openapi.json", include_in_schema=False, dependencies=[guard(None)])
        async def openapi_spec() -> JSONResponse:
            return JSONResponse(app.openapi())

    return app

