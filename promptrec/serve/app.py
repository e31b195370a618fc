"""The HTTP API (FastAPI): POST /events, GET /recommendations/{user_id}, GET /users/{user_id}/history, GET /health."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from promptrec import __version__
from promptrec.serve.schemas import (MAX_EVENTS_PER_REQUEST, EventIn, EventsAck, EventsBody, Health, HistoryEvent,
                                     Recommendations)
from promptrec.serve.service import Overloaded, RecommendationService, UnknownItems

EVENT_LIST = TypeAdapter(list[EventIn])
BODY_SCHEMA = EventsBody.json_schema(ref_template="#/components/schemas/{model}")
BODY_DEFS = BODY_SCHEMA.pop("$defs", {})
HINTS = {"timezone_aware": " (give an ISO time with a zone, e.g. 2024-05-01T18:00:00Z)",
         "extra_forbidden": " (allowed fields: " + ", ".join(EventIn.model_fields) + ")"}


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


def create_app(service: RecommendationService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()  # graceful shutdown: LLM batch finished, engine stopped, store checkpointed

    app = FastAPI(title="promptrec", version=__version__, lifespan=lifespan,
                  description="Time-aware recommendations: each posted event counts in the next recommendation.")
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problems_response(_problems(exc))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.post("/events", response_model=EventsAck, openapi_extra={"requestBody": {
        "required": True, "description": f"One event, or a list of 1 to {MAX_EVENTS_PER_REQUEST} events.",
        "content": {"application/json": {"schema": BODY_SCHEMA}}}})
    async def post_events(request: Request):
        """Store events durably (acknowledged only once on disk) and apply them to the next recommendation."""
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            return problems_response([{"field": "body", "message": f"not valid JSON ({exc})"}], 400)
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

    @app.get("/recommendations/{user_id}", response_model=Recommendations)
    async def recommendations(user_id: str, k: int = Query(10, ge=1, le=100),
                              now: AwareDatetime | None = Query(None, description="ISO time with zone; default: now."),
                              rerank: bool = Query(True, description="Let the LLM order the candidates, if one is configured."),
                              device: str | None = Query(None, min_length=1, max_length=64,
                                                         description="The device the request comes from (e.g. tv, mobile)."),
                              lat: float | None = Query(None, ge=-90, le=90, description="Latitude of the user now."),
                              lon: float | None = Query(None, ge=-180, le=180, description="Longitude of the user now.")):
        """Top-k items for the user in a context (``now``, device, location): retrieved, then ordered by the
        LLM within its deadline. Without a location, place-aware signals use the user's last place."""
        if (lat is None) != (lon is None):
            return problems_response([{"field": "query parameter lat" if lat is None else "query parameter lon",
                                       "message": "give both lat and lon, or neither"}])
        return await service.recommend(user_id, k, now, rerank, device=device,
                                       location=None if lat is None else (lat, lon))

    @app.get("/users/{user_id}/history", response_model=list[HistoryEvent])
    async def history(user_id: str, limit: int = Query(50, ge=1, le=10_000)):
        """The user's most recent events (fitted log and posted), oldest first."""
        return await asyncio.to_thread(service.history, user_id, limit)

    @app.get("/health", response_model=Health)
    async def health():
        return await asyncio.to_thread(service.health)

    def openapi() -> dict[str, Any]:  # the /events body schema refers to EventIn: put it in the components
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(BODY_DEFS)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
    return app

