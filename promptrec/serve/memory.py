"""Keep a long-running server's heap from creeping: glibc's malloc settings for a threaded Python process.

The service allocates large temporary arrays (batch x items scores) from several threads, and glibc gives
threads their own heaps ("arenas", up to 8 per core), each keeping freed memory of its own: resident memory
that grows with uptime, not with state. Two arenas keep it flat (the same as MALLOC_ARENA_MAX=2 in the
environment). The mmap threshold is left to glibc: fixed low, it would make every large torch tensor of an
in-process LLM a fresh mmap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter (glibc's malloc.h)


def tame_malloc(arenas: int = 2) -> bool:
    """Apply the settings above to this process (call before it starts threads); False where the C library is
    not glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    log.info("malloc: at most %d arenas%s", arenas, "" if ok else " (refused)")
    return ok
