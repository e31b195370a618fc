"""The console's routes: an HTML shell and static files (no data, no key), and JSON under /ui/api that the
page fetches with the user's key (the API's own guard, scope recommendations:read).

Times cross the boundary as local wall-clock times of the data's time zone (``retriever.events.timezone``),
which is what the page's controls show.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from promptrec import __version__
from promptrec.context import Context
from promptrec.reranker.types import RerankRequest
from promptrec.serve.auth import RECOMMENDATIONS_READ
from promptrec.serve.ui.results import ResultsFolder

HERE = Path(__file__).parent
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in (".js", ".css")}
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
HOURS = (8, 12, 18, 22)
MAX_PLACES = 20_000  # catalogue places drawn on the map (more: an even sample)
DEFAULT_RESULTS = Path("eval/results")
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class CatalogView:
    """Per-item facts the page shows (title, first category, coordinates), computed once per catalogue."""

    def __init__(self, catalog: Any):
        frame = catalog.frame
        self.ids = catalog.ids
        self.title = dict(zip(frame.index, frame["title"]))
        self.category = {i: (c[0] if len(c) else "") for i, c in zip(frame.index, frame["categories"])}
        coords = catalog.coordinates()
        self.coords: dict[str, tuple[float, float]] = {}
        self.map: dict[str, Any] | None = None
        if coords is not None:
            ok = np.isfinite(coords).all(axis=1)
            self.coords = {str(i): (float(a), float(b)) for i, (a, b), keep in zip(frame.index, coords, ok) if keep}
            located = coords[ok]
            if len(located):
                self.map = self._map(located)

    @staticmethod
    def _map(located: np.ndarray) -> dict[str, Any]:
        """The map's extent (the middle 99% of places, so a few far-off ones do not shrink the city to a dot)
        and the places drawn under the user's (an even sample of at most MAX_PLACES)."""
        q = (0.5, 99.5) if len(located) >= 200 else (0, 100)
        lat, lon = np.percentile(located[:, 0], q), np.percentile(located[:, 1], q)
        sample = located[np.linspace(0, len(located) - 1, min(len(located), MAX_PLACES)).astype(int)]
        return {"lat": [float(lat[0]), float(lat[1])], "lon": [float(lon[0]), float(lon[1])],
                "places": len(located), "sample": np.round(sample, 5).tolist()}

    def item(self, item_id: str) -> dict[str, Any]:
        lat_lon = self.coords.get(item_id)
        return {"item_id": item_id, "title": self.title.get(item_id, item_id),
                "category": self.category.get(item_id, ""), "coords": list(lat_lon) if lat_lon else None}


class Views:
    """What the JSON endpoints compute, over the service's current retriever (it may be swapped)."""

    def __init__(self, service: Any):
        self.service = service
        self._catalog: tuple[int, CatalogView] | None = None
        self._fitted: tuple[int, list[str], list[str]] | None = None  # retriever id, users, devices

    @property
    def retriever(self) -> Any:
        return self.service.retriever

    @property
    def tz(self) -> str:
        return self.retriever.events.timezone

    def catalog(self) -> CatalogView:
        cat = self.retriever.catalog
        if self._catalog is None or self._catalog[0] != id(cat):
            self._catalog = (id(cat), CatalogView(cat))
        return self._catalog[1]

    def fitted(self) -> tuple[list[str], list[str]]:
        r = self.retriever
        if self._fitted is None or self._fitted[0] != id(r):
            frame = r.events.frame
            devices = sorted(map(str, frame["device"].dropna().unique())) if "device" in frame else []
            self._fitted = (id(r), sorted(map(str, r.events.users)), devices)
        return self._fitted[1], self._fitted[2]

    def local(self, ts: pd.Timestamp) -> pd.Timestamp:
        return pd.Timestamp(ts).tz_convert(self.tz)

    def parse_now(self, value: str | None) -> pd.Timestamp:
        """A local wall-clock time ('2024-05-01T18:00') or an ISO time with a zone; None: after the last event."""
        if not value:
            end = self.retriever.events.time_range()
            return (end[1] if end else pd.Timestamp.now(tz="UTC")).ceil("h") + pd.Timedelta(hours=1)
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise HTTPException(422, f"now: {value!r} is not a time (e.g. 2024-05-01T18:00)") from None
        if ts.tzinfo is None:
            ts = ts.tz_localize(self.tz, ambiguous=True, nonexistent="shift_forward")
        if not pd.Timestamp("1678-01-02", tz="UTC") < ts < pd.Timestamp("2261-12-31", tz="UTC"):
            raise HTTPException(422, "now: out of range")
        return ts.tz_convert("UTC")

    def meta(self) -> dict[str, Any]:
        users, devices = self.fitted()
        cat = self.catalog()
        r, svc = self.retriever, self.service
        span = r.events.time_range()
        llm = None if svc.reranker is None else {"backend": svc.reranker.backend.name,
                                                 "strategy": svc.reranker.strategy}
        default_now = self.local(self.parse_now(None))
        weeks = pd.date_range(span[0], span[1], periods=min(2000, 2 + (span[1] - span[0]).days // 7)) if span else []
        offsets = {_offset(self.local(t)) for t in (*weeks, default_now)}
        return {"version": __version__, "timezone": self.tz,
                "utc_offset": offsets.pop() if len(offsets) == 1 and self.tz != "UTC" else None,  # one offset throughout
                "users": len(users), "items": len(cat.ids),
                "devices": devices, "llm": llm, "candidates": svc.config.candidates,
                "data_from": self.local(span[0]).strftime("%Y-%m-%dT%H:%M") if span else None,
                "data_until": self.local(span[1]).strftime("%Y-%m-%dT%H:%M") if span else None,
                "default_now": default_now.strftime("%Y-%m-%dT%H:%M"),
                "map": None if cat.map is None else {k: cat.map[k] for k in ("lat", "lon", "places")},
                "first_user": users[0] if users else None}

    def users(self, q: str, limit: int) -> list[str]:
        fitted, _ = self.fitted()
        with self.service._lock:
            live = [u for u in self.retriever.live.users if not self.retriever.events.has_user(u)]
        q = q.strip().lower()
        out = []
        for u in (*sorted(map(str, live)), *fitted):
            if q in u.lower():
                out.append(u)
                if len(out) >= limit:
                    break
        return out

    def timeline(self, user: str, limit: int) -> dict[str, Any]:
        events = self.service.history(user, limit)
        cat = self.catalog()
        rows = []
        for e in events:
            local = self.local(pd.Timestamp(e.timestamp))
            ctx = e.context
            lat = ctx.get("latitude", ctx.get("lat"))
            lon = ctx.get("longitude", ctx.get("lon"))
            item = cat.item(e.item_id)
            rows.append({**item, "ts_ms": int(local.value // 1_000_000), "local": local.strftime("%a %Y-%m-%d %H:%M"),
                         "event_type": e.event_type, "device": ctx.get("device"),
                         "place": [lat, lon] if lat is not None and lon is not None else item["coords"],
                         "posted": e.event_id is not None})
        return {"user_id": user, "timezone": self.tz, "known": self.retriever.has_user(user), "events": rows}

    async def recommend(self, user: str, now: pd.Timestamp, k: int, device: str | None,
                        location: tuple[float, float] | None, rerank: bool) -> dict[str, Any]:
        svc = self.service
        wide = max(k, svc.config.candidates)  # all the candidates the LLM saw: their retriever ranks
        recs = await svc.recommend(user, wide, now, rerank, device=device, location=location)
        by_retriever = sorted(recs.items, key=lambda i: -i.retriever_score)
        retriever_rank = {i.item_id: r + 1 for r, i in enumerate(by_retriever)}
        cat = self.catalog()
        items = [{**cat.item(i.item_id), "rank": i.rank, "score": i.score, "retriever_score": i.retriever_score,
                  "retriever_rank": retriever_rank[i.item_id], "llm_score": i.llm_score,
                  "moved": retriever_rank[i.item_id] - i.rank if recs.reranked else None,
                  "components": i.components} for i in recs.items[:k]]
        local = self.local(now)
        return {"user_id": user, "now_local": local.strftime("%Y-%m-%dT%H:%M"), "now_ms": int(now.value // 1_000_000),
                "weekday": local.strftime("%A"), "hour": local.hour, "device": device,
                "location": list(location) if location else None, "history_events": recs.history_events,
                "reranked": recs.reranked, "fallback_reason": recs.fallback_reason, "llm": recs.llm,
                "model_version": recs.model_version, "timings_ms": recs.timings_ms, "items": items}

    async def other_times(self, user: str, now: pd.Timestamp, device: str | None,
                          location: tuple[float, float] | None, k: int = 5) -> dict[str, Any]:
        day = self.local(now).normalize()
        weekday = day - pd.Timedelta(days=max(0, day.dayofweek - 4))  # Saturday/Sunday: the Friday before
        sunday = weekday + pd.Timedelta(days=6 - weekday.dayofweek)
        slots = [(d, h) for d in (weekday, sunday) for h in HOURS]
        answers = await asyncio.gather(*(self.service.recommend(
            user, k, (d + pd.Timedelta(hours=h)).tz_convert("UTC"), False, device=device, location=location)
            for d, h in slots))
        cat = self.catalog()
        columns = [{"day": d.strftime("%A %Y-%m-%d"), "hour": h,
                    "items": [{**cat.item(i.item_id), "score": i.retriever_score} for i in a.items]}
                   for (d, h), a in zip(slots, answers)]
        return {"user_id": user, "hours": list(HOURS), "days": [weekday.strftime("%A %Y-%m-%d"),
                                                                sunday.strftime("%A %Y-%m-%d")], "slots": columns}

    async def prompt(self, user: str, now: pd.Timestamp, device: str | None,
                     location: tuple[float, float] | None) -> dict[str, Any]:
        """The prompt(s) the LLM sees for this request, with its tokens, output and label scores."""
        svc = self.service
        if svc.reranker is None or svc.queue is None:
            return {"llm": None, "message": "No LLM is configured (promptrec serve --llm none): the retriever's "
                                            "order is the answer and there is no prompt."}
        ctx = Context(now, device=device, location=location)
        cands, history, facts, _ = await asyncio.wrap_future(svc.retrievals.submit((user, ctx, svc.config.candidates)))
        if not cands:
            return {"llm": {"backend": svc.reranker.backend.name}, "message": "No candidates for this user.",
                    "calls": []}
        request = RerankRequest(history, cands[:svc.config.candidates], ctx.now, user, ctx,
                                {e.item_id: e for e in facts} if facts else None)
        deadline = svc.config.llm_deadline_s
        try:
            ranked = await asyncio.wait_for(asyncio.wrap_future(svc.queue.submit(request, deadline_s=deadline)),
                                            deadline)
        except Exception as exc:  # noqa: BLE001 - shown on the page, like the API's fallback reason
            return {"llm": {"backend": svc.reranker.backend.name}, "message": f"The LLM did not answer: "
                    f"{type(exc).__name__}: {str(exc)[:200]}", "calls": []}
        return {"llm": {"backend": ranked.backend, "strategy": ranked.strategy, "model": ranked.meta.get("model")},
                "prompt_tokens": ranked.prompt_tokens, "message": None,
                "calls": [{"prompt": c.prompt, "output": c.output, "prompt_tokens": c.prompt_tokens,
                           "output_tokens": c.output_tokens, "label_logprobs": c.label_logprobs}
                          for c in ranked.calls]}


def _offset(ts: pd.Timestamp) -> str:
    """'UTC-05:00' for a local time (a zone named Etc/GMT+5 is five hours behind UTC: the page says so)."""
    minutes = int(ts.utcoffset().total_seconds() // 60)
    return f"UTC{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _place(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if (lat is None) != (lon is None):
        raise HTTPException(422, "give both lat and lon, or neither")
    return None if lat is None else (lat, lon)


def ui_router(service: Any, guard: Callable[[str | None], Any], results: str | Path | None = None) -> APIRouter:
    """Routes of the console: ``/ui`` (page), ``/ui/static/*`` and ``/ui/api/*`` (JSON, checked by
    ``guard(RECOMMENDATIONS_READ)``, the API's own key check). ``results``: the folder the Results view lists
    (default: ``app.state.results_dir`` if set, else ./eval/results if it exists)."""
    views = Views(service)
    page = APIRouter(prefix="/ui", include_in_schema=False)
    api = APIRouter(prefix="/api", dependencies=[guard(RECOMMENDATIONS_READ)])

    def results_folder(request: Request) -> ResultsFolder:
        return ResultsFolder(results or getattr(request.app.state, "results_dir", None) or DEFAULT_RESULTS)

    @page.get("", response_class=HTMLResponse)
    @page.get("/", response_class=HTMLResponse)
    async def console() -> HTMLResponse:
        html = TEMPLATES.get_template("console.html").render(version=__version__, hours=HOURS)
        return HTMLResponse(html, headers={**HEADERS, "Content-Security-Policy":
                                           "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
                                           "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"})

    @page.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        path = STATIC.get(name)
        if path is None:
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})

    @api.get("/meta")
    async def meta() -> dict[str, Any]:
        return await asyncio.to_thread(views.meta)

    @api.get("/places")
    async def places() -> Response:
        """The catalogue's places for the map's background: {"places": n, "sample": [[lat, lon], ...]}."""
        cat = await asyncio.to_thread(views.catalog)
        return _json({"places": 0, "sample": []} if cat.map is None else
                     {"places": cat.map["places"], "sample": cat.map["sample"]})

    @api.get("/users")
    async def users(q: str = Query("", max_length=256), limit: int = Query(20, ge=1, le=200)) -> list[str]:
        return await asyncio.to_thread(views.users, q, limit)

    @api.get("/timeline")
    async def timeline(user: str = Query(..., min_length=1, max_length=256),
                       limit: int = Query(100, ge=1, le=2000)) -> Response:
        t0 = time.perf_counter()
        return _json(await asyncio.to_thread(views.timeline, user, limit), t0)

    @api.get("/recommend")
    async def recommend(user: str = Query(..., min_length=1, max_length=256), now: str | None = Query(None, max_length=64),
                        k: int = Query(20, ge=1, le=100), device: str | None = Query(None, max_length=64),
                        lat: float | None = Query(None, ge=-90, le=90), lon: float | None = Query(None, ge=-180, le=180),
                        rerank: bool = Query(True)) -> Response:
        t0 = time.perf_counter()
        out = await views.recommend(user, views.parse_now(now), k, device or None, _place(lat, lon), rerank)
        out["server_ms"] = round(1e3 * (time.perf_counter() - t0), 2)
        return _json(out, t0)

    @api.get("/times")
    async def other_times(user: str = Query(..., min_length=1, max_length=256), now: str | None = Query(None, max_length=64),
                          device: str | None = Query(None, max_length=64),
                          lat: float | None = Query(None, ge=-90, le=90),
                          lon: float | None = Query(None, ge=-180, le=180)) -> Response:
        t0 = time.perf_counter()
        return _json(await views.other_times(user, views.parse_now(now), device or None, _place(lat, lon)), t0)

    @api.get("/prompt")
    async def prompt(user: str = Query(..., min_length=1, max_length=256), now: str | None = Query(None, max_length=64),
                     device: str | None = Query(None, max_length=64), lat: float | None = Query(None, ge=-90, le=90),
                     lon: float | None = Query(None, ge=-180, le=180)) -> Response:
        return _json(await views.prompt(user, views.parse_now(now), device or None, _place(lat, lon)))

    @api.get("/results")
    async def results_list(request: Request) -> dict[str, Any]:
        folder = results_folder(request)
        files = await asyncio.to_thread(folder.files)
        return {"folder": None if folder.root is None else folder.root.name,
                "files": [{"path": f.path, "kind": f.kind, "size": f.size} for f in files]}

    @api.get("/results/file")
    async def results_file(request: Request, path: str = Query(..., min_length=1, max_length=512)) -> Response:
        found = await asyncio.to_thread(results_folder(request).read, path)
        if found is None:
            raise HTTPException(404, "not a report or figure of the results folder")
        body, media = found
        return Response(body, media_type=media, headers=HEADERS)

    page.include_router(api)
    return page


def _json(out: dict[str, Any], t0: float | None = None) -> Response:
    """JSON, with the time spent in the handler as a Server-Timing header (the benchmark reads it)."""
    response = JSONResponse(out, headers=HEADERS)
    if t0 is not None:
        response.headers["Server-Timing"] = f"app;dur={1e3 * (time.perf_counter() - t0):.2f}"
    return response
