"""The process heap a fit step runs on: glibc keeps what a step frees for the next one.

Called once by :class:`render_core.fit.Fitter` (every step allocates and frees the same buffers);
``DIBR_KEEP_HEAP=0`` in the environment leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters: M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_KEPT = False


def keep_freed_memory() -> None:
    """Let the heap keep what a step frees for the next step (glibc, once per process).

    A step allocates and frees the same few-MB buffers (images, fragments, the soft
    silhouette's pairs) every time; with glibc's defaults part of them are fresh mmaps or come
    after the heap was trimmed, so every step page-faulted ~350-900 new pages (0.4-2 ms of
    system time a step at 128x128). Serving allocations up to 64 MiB from the heap and
    trimming it only beyond 256 MiB free makes that ~50. ``DIBR_KEEP_HEAP=0`` leaves the
    allocator alone."""
    global _HEAP_KEPT
    if _HEAP_KEPT or os.environ.get("DIBR_KEEP_HEAP", "1").strip() == "0":
        return
    _HEAP_KEPT = True
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)
