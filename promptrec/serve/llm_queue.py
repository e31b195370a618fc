"""One worker thread owns the LLM; concurrent users' rerank requests are batched into one backend call."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)
_STOP = object()


class QueueFull(RuntimeError):
    """The LLM cannot take this request: its queue is full, or the work ahead of it would pass the deadline."""


class RerankQueue:
    """Bounded queue in front of a :class:`~promptrec.reranker.reranker.Reranker`.

    The worker takes the oldest request, waits up to ``max_wait_s`` for more (at most ``max_batch``),
    drops those whose caller gave up (cancelled futures) and reranks the rest in one ``rerank_many``
    call, so vLLM batches across users. ``submit`` refuses work when ``max_pending`` requests wait, or
    when the work ahead (waiting and running requests times the measured seconds per request) would
    not finish within the caller's deadline: such callers get an answer at once, not after the deadline,
    and the LLM spends its time on requests it can finish.
    """

    def __init__(self, reranker: Any, *, max_batch: int = 16, max_wait_s: float = 0.01, max_pending: int = 64):
        self.reranker = reranker
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.stats = {"batches": 0, "reranked": 0, "abandoned": 0, "errors": 0, "last_error": None,
                      "largest_batch": 0, "seconds_per_request": None, "refused_busy": 0}
        self._running = 0
        self._thread = threading.Thread(target=self._work, name="promptrec-llm", daemon=True)
        self._thread.start()

    def estimated_wait(self) -> float:
        """Seconds until a request submitted now would be done (0 until a batch has been timed)."""
        per = self.stats["seconds_per_request"]
        return 0.0 if per is None else (self._queue.qsize() + self._running + 1) * per

    def submit(self, request: Any, deadline_s: float | None = None) -> Future:
        if deadline_s is not None and (wait := self.estimated_wait()) > deadline_s:
            self.stats["refused_busy"] += 1
            raise QueueFull(f"LLM busy (about {wait:.1f} s of work ahead, deadline {deadline_s:g} s)")
        fut: Future = Future()
        try:
            self._queue.put_nowait((request, fut))
        except queue.Full:
            raise QueueFull(f"LLM queue full ({self._queue.maxsize} requests waiting)") from None
        return fut

    @property
    def pending(self) -> int:
        return self._queue.qsize()

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
            live = [(req, fut) for req, fut in batch if fut.set_running_or_notify_cancel()]
            self.stats["abandoned"] += len(batch) - len(live)
            if not live:
                continue
            self._running, started = len(live), time.perf_counter()
            try:
                results = self.reranker.rerank_many([req for req, _ in live])
            except Exception as exc:  # the callers answer from the retriever and say why
                log.exception("reranking a batch of %d failed", len(live))
                self.stats["errors"] += 1
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            finally:
                self._running = 0
            per, seen = (time.perf_counter() - started) / len(live), self.stats["seconds_per_request"]
            self.stats["seconds_per_request"] = per if seen is None else 0.7 * seen + 0.3 * per
            self.stats["batches"] += 1
            self.stats["reranked"] += len(live)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(live))
            for (_, fut), res in zip(live, results):
                fut.set_result(res)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, cancel what still waits, stop the worker."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[1].cancel()
        self._queue.put(_STOP)
        self._thread.join(timeout)

