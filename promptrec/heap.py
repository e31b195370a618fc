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
def glibc_function(name: str):
    """A function of the C library, or None where it is not glibc (or lacks it)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> bool:
    """Release free heap pages to the operating system (glibc); whether it could."""
    trim = glibc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
