"""The recommendation service: durable events that count at once, retrieval, and LLM reranking with a deadline."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from promptrec.context import Context
from promptrec.reranker.types import RankedList, RerankRequest, final_order
from promptrec.data.candidate import Candidate
from promptrec.serve.batching import BatchQueue, QueueFull
from promptrec.serve.memory import HeapTrimmer
from promptrec.serve.schemas import EventIn, EventsAck, HistoryEvent, RecommendedItem, Recommendations
from promptrec.serve.event_rows import Store, StoreUnavailable, to_event_rows
from promptrec.serve.event_rules import stored_row_problem
from promptrec.serve.versions import VersionManifest

log = logging.getLogger(__name__)
CORE = ("user_id", "item_id", "timestamp", "event_type", "weight", "event_id")


@dataclass
class ServeConfig:
    candidates: int = 20  # retrieved candidates the LLM orders
    llm_deadline_s: float = 10.0  # past it, the answer comes from the retriever
    max_batch: int = 16  # rerank requests per LLM call
    max_wait_s: float = 0.01  # how long the LLM worker waits to fill a batch
    max_pending: int = 64  # rerank requests allowed to wait; more are answered by the retriever
    retrieval_batch: int = 64  # concurrent retrievals scored together
    retrieval_pending: int = 1024  # retrievals allowed to wait; more get HTTP 503
    # after LLM batches, give the heap's freed memory back to the OS at most this often (None: never); an
    # in-process LLM on CPU otherwise keeps what each new batch shape freed (lab/results/soak_heap)
    trim_heap_every_s: float | None = 5.0


class UnknownItems(ValueError):
    """Events name items that are not in the catalogue; ``problems`` names each one."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


class Overloaded(RuntimeError):
    """Too many requests wait for retrieval; the client should retry later (HTTP 503)."""


class RecommendationService:
    """A fitted retriever (plus live events), an event store and, optionally, an LLM reranker.

    Every change to the retriever's state happens under one lock, after the store has committed
    the events, so memory never holds an event the disk lacks and a restart replays them all. With a
    shared store (PostgreSQL, several replicas), each retrieval batch and history read first applies the
    events other replicas committed: an event acknowledged by any replica counts in every replica's next
    answer (staleness bound: zero, at one indexed query per batch).
    """

    def __init__(self, retriever: Any, store: Store, reranker: Any = None, config: ServeConfig | None = None,
                 model: VersionManifest | None = None):
        self.retriever, self.store, self.reranker = retriever, store, reranker
        self.model = model  # the model version served (None: a retriever folder without versions)
        self.config = config or ServeConfig()
        self.catalog = retriever.catalog
        # declared context columns (weather...): query parameters of /recommendations, lines of the prompt
        self.context_columns = tuple(getattr(retriever, "context_columns", ()))
        if reranker is not None and hasattr(getattr(reranker, "builder", None), "context_columns"):
            reranker.builder.context_columns = self.context_columns
        self._lock = threading.RLock()
        self.started = time.monotonic()
        self.fallbacks: dict[str, int] = {}
        # every stored event up to here is applied (or names an unknown item); a model version fitted on the
        # store already holds the events up to its store_seq
        self._applied_seq = model.store_seq if model is not None else 0
        self._own_seqs: set[int] = set()  # this replica's events above _applied_seq, applied when posted
        self.not_applied = 0
        self.quarantined = 0  # stored rows set aside since start (promptrec events quarantine lists them all)
        self._replay()
        self.retrievals = BatchQueue(self._retrieve_batch, name="retrieval", max_batch=self.config.retrieval_batch,
                                     max_wait_s=0.0, max_pending=self.config.retrieval_pending)
        every = self.config.trim_heap_every_s
        self.heap_trimmer = None if reranker is None or every is None else HeapTrimmer(every)
        self.queue = None if reranker is None else BatchQueue(
            reranker.rerank_many, name="LLM", max_batch=self.config.max_batch, max_wait_s=self.config.max_wait_s,
            max_pending=self.config.max_pending, after_batch=self.heap_trimmer)

    # -- events -------------------------------------------------------------------------
    def _replay(self) -> None:
        """Apply every stored event to the retriever (startup); rows that cannot be applied are quarantined."""
        applied = self._apply_stored()
        log.info("replayed %d stored events from %s", applied, self.store.path)

    def _apply_stored(self) -> int:
        """Apply the stored events after ``_applied_seq`` that this replica has not applied yet (other
        replicas' events; at startup, all); returns how many. A row that breaks the event rules, or that the
        retriever refuses, is quarantined with its reason (never silently dropped, never fatal); the applied
        sequence number moves only past rows applied or quarantined. Call under the lock."""
        rows = self.store.load(self._applied_seq)
        if not len(rows):
            return 0
        last = int(rows["seq"].max())
        if self._own_seqs:
            rows = rows[~rows["seq"].isin(self._own_seqs)]
            self._own_seqs = {s for s in self._own_seqs if s > last}
        applied = self._apply_rows(self.retriever, rows)
        self._applied_seq = last
        return applied

    def _apply_rows(self, retriever: Any, rows: pd.DataFrame) -> int:
        """Apply stored ``rows`` to ``retriever``: rule breakers are quarantined first (if the store fails
        there, nothing was applied), unknown items counted, rows the retriever refuses quarantined after."""
        reasons = {int(r["seq"]): p for r in rows.to_dict("records") if (p := stored_row_problem(r))}
        self._quarantine(reasons)
        frame = to_event_rows(rows[~rows["seq"].isin(reasons)])
        known = frame["item_id"].isin(self.catalog.frame.index)
        if not known.all():
            log.warning("%d stored events name items not in this catalogue; they stay stored but are not used.",
                        int((~known).sum()))
            self.not_applied += int((~known).sum())
        refused: dict[int, str] = {}
        applied = self._apply(retriever, frame[known].sort_values("timestamp", kind="stable"), refused)
        try:
            self._quarantine(refused)
        except StoreUnavailable:  # applied rows are not applied again; the refused ones are retried at start
            log.error("could not quarantine %d refused stored event(s) (seq %s); they stay stored", len(refused),
                      sorted(refused)[:5])
        return applied

    def swap(self, retriever: Any, model: VersionManifest) -> dict[str, Any]:
        """Serve ``retriever`` (model version ``model``) from now on: the stored events newer than its data are
        applied to it beside the serving one, then requests move over at once; requests already scoring finish
        on the old one, which is dropped with its last reference. Returns what the swap did."""
        t0 = time.perf_counter()
        if retriever.catalog.ids.tolist() != self.catalog.ids.tolist():
            raise ValueError(f"model version {model.version} has another catalogue; restart the server to serve it")
        rows = self.store.load(model.store_seq)  # the bulk, while the old version keeps answering
        seen = int(rows["seq"].max()) if len(rows) else model.store_seq
        applied = self._apply_rows(retriever, rows)
        with self._lock:  # what arrived meanwhile, then the switch
            rows = self.store.load(seen)
            applied += self._apply_rows(retriever, rows)
            seen = int(rows["seq"].max()) if len(rows) else seen
            previous, self.retriever, self.model = self.model, retriever, model
            self._applied_seq = max(self._applied_seq, seen)
            self._own_seqs = {s for s in self._own_seqs if s > self._applied_seq}
        return {"version": model.version, "previous": previous.version if previous else None,
                "events_applied": applied, "swap_ms": round(1e3 * (time.perf_counter() - t0), 1)}

    def _quarantine(self, reasons: dict[int, str]) -> None:
        if not reasons:
            return
        self.store.quarantine(reasons)
        self.quarantined += len(reasons)
        first = min(reasons)
        log.error("QUARANTINED %d stored event(s) that cannot be applied (e.g. seq %d: %s); the server goes on "
                  "without them. List them with `promptrec events quarantine --db ...`.", len(reasons), first,
                  reasons[first])

    @staticmethod
    def _apply(retriever: Any, frame: pd.DataFrame, reasons: dict[int, str]) -> int:
        """Add ``frame`` (indexed by seq) to ``retriever``; if it refuses the batch, each row alone, adding the
        refused rows to ``reasons``. Returns how many were applied."""
        try:
            retriever.add_events(frame)
            return len(frame)
        except Exception:  # noqa: BLE001 - a row the rules let through but the retriever refuses
            applied = 0
            for seq in frame.index:
                try:
                    retriever.add_events(frame.loc[[seq]])
                    applied += 1
                except Exception as exc:  # noqa: BLE001
                    reasons[int(seq)] = f"the retriever refused it ({type(exc).__name__}: {str(exc)[:200]})"
            return applied

    def _catch_up(self) -> None:
        """With a shared store, apply what other replicas committed since the last look."""
        if self.store.shared:
            self._apply_stored()

    def add_events(self, events: list[EventIn]) -> EventsAck:
        """Validate, store durably, then apply; the whole request or nothing."""
        problems = [{"field": f"events[{i}].item_id", "message": f"'{e.item_id}' is not in the catalogue; "
                     "only catalogue items can be recommended or recorded"}
                    for i, e in enumerate(events) if e.item_id not in self.catalog]
        if problems:
            raise UnknownItems(problems)
        received = pd.Timestamp.now(tz="UTC")
        rows = [{"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id,
                 "ts_ns": pd.Timestamp(e.timestamp).tz_convert("UTC").value if e.timestamp else received.value,
                 "event_type": e.event_type, "weight": e.weight, "context": e.context, "received_ns": received.value}
                for e in events]
        with self._lock:
            seqs = self.store.append(rows)
            fresh = [r for r, seq in zip(rows, seqs) if seq is not None]
            if self.store.shared:  # other replicas may commit below these: skip them when catching up
                self._own_seqs.update(s for s in seqs if s is not None and s > self._applied_seq)
            if fresh:
                self.retriever.add_events(pd.DataFrame(
                    [{"user_id": r["user_id"], "item_id": r["item_id"],
                      "timestamp": pd.Timestamp(r["ts_ns"], tz="UTC"), "event_type": r["event_type"],
                      "weight": r["weight"], "event_id": r["event_id"], **r["context"]} for r in fresh]))
        return EventsAck(stored=len(fresh), duplicates=len(rows) - len(fresh), events_stored_total=len(self.store))

    def history(self, user_id: str, limit: int) -> list[HistoryEvent]:
        with self._lock:
            self._catch_up()
            frame = self.retriever.history(user_id).tail(limit)
        return [HistoryEvent(item_id=r["item_id"], event_id=_plain(r.get("event_id")), timestamp=r["timestamp"],
                             event_type=r["event_type"], weight=r["weight"],
                             context={c: _plain(v) for c, v in r.items() if c not in CORE and _plain(v) is not None})
                for r in frame.to_dict("records")]

    # -- recommendations ------------------------------------------------------------------
    def _retrieve_batch(self, requests: list[tuple[str, Context, int]]
                        ) -> list[tuple[list[Candidate], pd.DataFrame, list | None, str | None]]:
        """Candidates, histories and (with an LLM) the evidence for the candidates it will see, for
        (user, context, n) requests scored together (``retrieve_many``)."""
        shown = self.config.candidates
        with self._lock:
            self._catch_up()
            cands = self.retriever.retrieve_many([(u, ctx) for u, ctx, _ in requests], k=max(n for *_, n in requests))
            histories = [self.retriever.history(u, before=ctx.now) for u, ctx, _ in requests]
            facts = [self.retriever.explain(u, ctx, [x.item_id for x in c[:shown]]) if self.queue is not None and c
                     else None for c, (u, ctx, _) in zip(cands, requests)]
            version = None if self.model is None else self.model.version
        return [(c[:n], h, f, version) for c, h, f, (_, _, n) in zip(cands, histories, facts, requests)]

    async def recommend(self, user_id: str, k: int, now: Any = None, rerank: bool = True, *, device: str | None = None,
                        location: tuple[float, float] | None = None, extras: dict[str, str] | None = None,
                        ) -> Recommendations:
        """Retrieve in the request's context (time, device, location), then (if an LLM is configured and
        ``rerank``) let it order the candidates within the deadline; otherwise, or if it fails or is late, the
        retriever's order, with the reason. ``extras``: the request's values of declared context columns."""
        t0 = time.perf_counter()
        now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
        context = Context(now_ts, device=device, location=location, extras=dict(extras or {}))
        try:
            fut = self.retrievals.submit((user_id, context, max(k, self.config.candidates)))
        except QueueFull as exc:
            raise Overloaded(f"{exc}; retry later") from None
        cands, history, facts, version = await asyncio.wrap_future(fut)
        t1 = time.perf_counter()
        ranked, reason = None, None
        if not cands:
            reason = "no candidates"
        elif self.queue is None:
            reason = "no LLM configured (promptrec serve --llm none)"
        elif not rerank:
            reason = "rerank=false was asked"
        else:
            evidence = {e.item_id: e for e in facts} if facts else None
            ranked, reason = await self._rerank(RerankRequest(history, cands[:self.config.candidates], now_ts, user_id,
                                                              context, evidence))
        if reason:
            kind = reason.split(" (")[0]  # e.g. "LLM busy", without the numbers
            self.fallbacks[kind] = self.fallbacks.get(kind, 0) + 1
        t2 = time.perf_counter()
        return Recommendations(
            user_id=user_id, now=now_ts.to_pydatetime(), device=device, location=None if location is None else list(location),
            context=dict(extras or {}),
            history_events=len(history), reranked=ranked is not None, model_version=version,
            fallback_reason=reason, llm=None if ranked is None else
            {"strategy": ranked.strategy, "backend": ranked.backend, "model": ranked.meta.get("model"),
             "adapter": ranked.meta.get("adapter"), "prompt_tokens": ranked.prompt_tokens},
            items=self._items(cands, ranked)[:k],
            timings_ms={"retrieve": round(1e3 * (t1 - t0), 2), "rerank": round(1e3 * (t2 - t1), 2),
                        "total": round(1e3 * (t2 - t0), 2)})

    async def _rerank(self, request: RerankRequest) -> tuple[RankedList | None, str | None]:
        try:
            fut = self.queue.submit(request, deadline_s=self.config.llm_deadline_s)
        except QueueFull as exc:
            return None, str(exc)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.config.llm_deadline_s), None
        except asyncio.TimeoutError:
            return None, f"LLM deadline passed ({self.config.llm_deadline_s:g} s)"
        except QueueFull as exc:  # its batch would have ended after the deadline
            return None, str(exc)
        except Exception as exc:
            return None, f"LLM error ({type(exc).__name__}: {str(exc)[:200]})"

    def _items(self, cands: list[Candidate], ranked: RankedList | None) -> list[RecommendedItem]:
        return [RecommendedItem(item_id=c.item_id, title=self.catalog[c.item_id].title, rank=r + 1, score=score,
                                retriever_score=c.score, llm_score=llm, components=c.components)
                for r, (c, llm, score) in enumerate(final_order(cands, ranked))]

    # -- status -------------------------------------------------------------------------
    def health(self, details: bool = False) -> dict[str, Any]:
        """Counts and states; with ``details`` (a caller holding a valid key) also where the events are kept."""
        llm: dict[str, Any] = {"mode": "none"}
        if self.reranker is not None:
            llm = {"mode": self.reranker.backend.name, "strategy": self.reranker.strategy,
                   **({"model": self.reranker.model, "adapter": self.reranker.adapter} if details else {}),
                   "deadline_s": self.config.llm_deadline_s,
                   "kv_cache_prefaulted_bytes": getattr(self.reranker.backend, "kv_cache_prefaulted_bytes", None),
                   "pending": self.queue.pending, **self.queue.stats,
                   "heap_trims": None if self.heap_trimmer is None else dict(self.heap_trimmer.stats)}
        llm["fallbacks"] = dict(self.fallbacks)
        retrieval = {"pending": self.retrievals.pending, **{k: self.retrievals.stats[k] for k in
                                                             ("batches", "processed", "largest_batch", "errors")}}
        with self._lock:
            users = len(set(self.retriever.events.users) | set(self.retriever.live.users))
            live = len(self.retriever.live)
        model = None if self.model is None else {
            "version": self.model.version, "created_at": self.model.created_at,
            "age_s": round((pd.Timestamp.now(tz="UTC") - self.model.created).total_seconds(), 1),
            "data_until": self.model.data_window.get("last"), "store_seq": self.model.store_seq}
        return {"status": "ok", "model": model, "items": len(self.catalog), "users": users,
                "events_stored": len(self.store),
                "event_store": {"kind": type(self.store).__name__, "shared": self.store.shared,
                                "applied_seq": self._applied_seq, **({"where": str(self.store.path)} if details else {})},
                "live_events": live, "stored_events_not_applied": self.not_applied,
                "stored_events_quarantined": self.quarantined, "retrieval": retrieval, "llm": llm,
                "uptime_s": round(time.monotonic() - self.started, 1), "config": asdict(self.config)}

    def close(self) -> None:
        """Graceful shutdown: finish the LLM batch in progress, stop the engine, checkpoint the store."""
        self.retrievals.close()
        if self.queue is not None:
            self.queue.close()
        if self.reranker is not None:
            self.reranker.close()
        self.store.close()


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
