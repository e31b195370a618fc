"""Giving memory back to the operating system after a large computation.

glibc keeps freed blocks in the process for reuse, so after a fit whose temporaries peaked at
gigabytes the process still holds them: a server's resident memory would be the fit's peak, not
what it keeps. ``malloc_trim`` returns the free pages; elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def return_freed_memory() -> bool:
    """Release free heap pages to the operating system (glibc); whether it could."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
