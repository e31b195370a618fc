"""Keep a long-running server's heap from creeping: glibc's malloc settings for a threaded Python process.

The service allocates large temporary arrays (batch x items scores) from several threads, and glibc gives
threads their own heaps ("arenas", up to 8 per core), each keeping freed memory of its own: resident memory
that grows with uptime, not with state. Two arenas keep it flat (the same as MALLOC_ARENA_MAX=2 in the
environment). The mmap threshold is left to glibc: fixed low, it would make every large torch tensor of an
in-process LLM a fresh mmap.

An in-process LLM on CPU allocates temporaries whose sizes follow each batch's token count, so the heap holds
more and more freed memory between them (vLLM's oneDNN kernels also cache compiled code for each new shape, up
to oneDNN's primitive cache: bounded). :class:`HeapTrimmer` hands the heap's free pages back after LLM batches
(glibc's ``malloc_trim``).
"""

from __future__ import annotations

import logging
import threading
import time

from promptrec.heap import glibc_function

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter (glibc's malloc.h)


def tame_malloc(arenas: int = 2) -> bool:
    """Apply the settings above to this process (call before it starts threads); False where the C library is
    not glibc (nothing changes)."""
    mallopt = glibc_function("mallopt")
    if mallopt is None:
        return False
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    log.info("malloc: at most %d arenas%s", arenas, "" if ok else " (refused)")
    return ok


class HeapTrimmer:
    """Call after a batch of work: gives the heap's free memory back to the OS (``malloc_trim(0)``), at most
    once every ``min_interval_s`` seconds. Does nothing where the C library is not glibc. ``stats`` counts the
    trims and the time they took (the service shows it in ``/health``)."""

    def __init__(self, min_interval_s: float = 5.0):
        self.min_interval_s = min_interval_s
        self._trim = glibc_function("malloc_trim")
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.stats = {"available": self._trim is not None, "trims": 0, "seconds": 0.0}

    def __call__(self) -> bool:
        """Trim now unless one ran within ``min_interval_s``; True if it ran."""
        if self._trim is None:
            return False
        with self._lock:
            if time.monotonic() - self._last < self.min_interval_s:
                return False
            started = time.perf_counter()
            self._trim(0)
            self._last = time.monotonic()
            self.stats["trims"] += 1
            self.stats["seconds"] = round(self.stats["seconds"] + time.perf_counter() - started, 4)
        return True
