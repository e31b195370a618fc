"""Batching across concurrent requests: one worker thread runs a batch function over whatever has queued up.

The service has two: retrieval (``retrieve_many`` is several times cheaper per user than one
retrieval at a time) and the LLM (one worker owns the engine; vLLM batches the users' prompts).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

log = logging.getLogger(__name__)
_STOP = object()


class QueueFull(RuntimeError):
    """The queue cannot take this request: it is full, or the work ahead of it would pass the deadline."""


class BatchQueue:
    """Bounded queue in front of ``process`` (a list of requests -> a list of results, in order).

    The worker takes the oldest request, waits up to ``max_wait_s`` for more (at most ``max_batch``;
    0 takes just what has queued up meanwhile), drops those whose caller gave up (cancelled futures)
    and processes the rest in one call. ``submit`` refuses work when ``max_pending`` requests wait, or
    when the work ahead (waiting and running requests times the measured seconds per request) would
    not finish within the caller's deadline: such callers get an answer at once, not after the deadline,
    and the worker spends its time on requests it can finish. For the same reason, a request taken
    into a batch that would end after its deadline fails at once with :class:`QueueFull` instead of
    being processed for nobody. The estimate comes only from batches that ran, so one that says
    "too slow for any deadline" would refuse everything forever; when the worker has been idle for
    ``probe_after_s`` while refusing, one request goes through without a deadline (its caller still
    gets its answer at the deadline, from the fallback) to measure again. ``after_batch`` runs on the worker
    after each batch's callers have their results (the LLM queue's gives freed memory back to the OS).
    """

    def __init__(self, process: Callable[[list], list], *, name: str = "batch", max_batch: int = 16,
                 max_wait_s: float = 0.01, max_pending: int = 64, probe_after_s: float = 30.0,
                 after_batch: Callable[[], Any] | None = None):
        self.process, self.name = process, name
        self.after_batch = after_batch  # called by the worker once a batch's callers have their results
        self.probe_after_s = probe_after_s
        self._idle_since = time.monotonic()  # when the last batch ended (or the queue started)
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.stats = {"batches": 0, "processed": 0, "abandoned": 0, "errors": 0, "last_error": None,
                      "largest_batch": 0, "seconds_per_request": None, "refused_busy": 0, "expired": 0,
                      "probes": 0}
        self._running = 0
        self._thread = threading.Thread(target=self._work, name=f"promptrec-{name}", daemon=True)
        self._thread.start()

    def estimated_wait(self) -> float:
        """Seconds until a request submitted now would be done (0 until a batch has been timed)."""
        per = self.stats["seconds_per_request"]
        return 0.0 if per is None else (self._queue.qsize() + self._running + 1) * per

    def submit(self, request: Any, deadline_s: float | None = None) -> Future:
        expires = None if deadline_s is None else time.monotonic() + deadline_s
        if deadline_s is not None and (wait := self.estimated_wait()) > deadline_s:
            if not self._probe_due():
                self.stats["refused_busy"] += 1
                raise QueueFull(f"{self.name} busy (about {wait:.1f} s of work ahead, deadline {deadline_s:g} s)")
            self.stats["probes"] += 1
            self._idle_since = time.monotonic()  # one probe at a time
            expires = None  # runs even if it ends late: the point is a fresh estimate
        fut: Future = Future()
        try:
            self._queue.put_nowait((request, fut, expires))
        except queue.Full:
            raise QueueFull(f"{self.name} queue full ({self._queue.maxsize} requests waiting)") from None
        return fut

    def _probe_due(self) -> bool:
        """Nothing queued or running, and nothing has run for ``probe_after_s``: the estimate may be stale."""
        return (self._queue.qsize() == 0 and self._running == 0
                and time.monotonic() - self._idle_since > self.probe_after_s)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _runnable(self, batch: list[tuple[Any, Future, float | None]]) -> list[tuple[Any, Future]]:
        """Mark and return the requests to process now. Callers that gave up are skipped. If the whole batch
        would end after someone's deadline, the largest set that can all finish in time runs (those with the
        most time left) and the others fail at once: a batch is never dropped whole while one of its
        requests could still be served, so the timing estimate keeps being refreshed."""
        per, now = self.stats["seconds_per_request"], time.monotonic()
        keep = {id(fut) for _, fut, _ in batch}
        if per is not None:
            waiting = [r for r in batch if not r[1].cancelled()]
            by_time_left = sorted(waiting, key=lambda r: float("inf") if r[2] is None else r[2], reverse=True)
            keep = set()
            for k in range(len(by_time_left), 0, -1):
                expires = by_time_left[k - 1][2]  # the earliest deadline among the k with the most time left
                if expires is None or now + per * k <= expires:
                    keep = {id(fut) for _, fut, _ in by_time_left[:k]}
                    break
        live = []
        for req, fut, _ in batch:
            if not fut.set_running_or_notify_cancel():
                self.stats["abandoned"] += 1
            elif id(fut) in keep:
                live.append((req, fut))
            else:
                self.stats["expired"] += 1
                fut.set_exception(QueueFull(f"{self.name} busy (this batch would end after the deadline)"))
        return live

    def _next_batch(self) -> list | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch, until = [first], time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if more is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(more)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = self._runnable(batch)
            if not live:
                continue
            self._running, started = len(live), time.perf_counter()
            try:
                results = self.process([req for req, _ in live])
            except Exception as exc:  # each caller decides what to do (the LLM's: answer from the retriever)
                log.exception("%s: a batch of %d failed", self.name, len(live))
                self.stats["errors"] += 1
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            finally:
                self._running = 0
                self._idle_since = time.monotonic()
            per, seen = (time.perf_counter() - started) / len(live), self.stats["seconds_per_request"]
            self.stats["seconds_per_request"] = per if seen is None else 0.7 * seen + 0.3 * per
            self.stats["batches"] += 1
            self.stats["processed"] += len(live)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(live))
            for (_, fut), res in zip(live, results):
                fut.set_result(res)
            if self.after_batch is not None:
                try:
                    self.after_batch()
                except Exception:  # housekeeping: never let it stop the worker
                    log.exception("%s: after_batch failed", self.name)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, cancel what still waits, stop the worker."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[1].cancel()  # (request, future, expiry)
        self._queue.put(_STOP)
        self._thread.join(timeout)

