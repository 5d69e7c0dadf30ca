"""Child processes of the studio: one way to start them, to make them background work, and to
report what went wrong in them.

The fit, the RenderNet camera fit and the mesh export each run in their own process so the
window stays responsive. They share three rules, kept here:

- Always *spawn*, never fork: the parent holds Qt and GL state that a forked copy would inherit.
- A child is background work: it lowers its priority (the window comes first when both need a
  core) and runs a stated number of intra-op torch threads.
- An exception in a child reaches the window as one line, ``"TypeName: message"``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable

NICENESS = 5
"""How much a child lowers its priority (``os.nice``)."""


def context():
    """The multiprocessing context every studio child starts from (spawn)."""
    return mp.get_context("spawn")


def start(target: Callable, args: tuple, name: str, *, duplex: bool = True):
    """Start ``target(conn, *args)`` in a spawned daemon process named ``name``.

    Returns ``(conn, process)``: the parent's end of a pipe whose other end the child gets as
    its first argument (``duplex=False``: the child only sends). The parent's copy of the
    child's end is closed, so the parent sees EOF once the child is gone."""
    ctx = context()
    conn, child_conn = ctx.Pipe(duplex=duplex)
    process = ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=True)
    process.start()
    child_conn.close()
    return conn, process


def become_background(threads: int) -> None:
    """In a child: run ``threads`` intra-op torch threads and lower the priority (where the
    system allows it)."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)


def error_line(e: BaseException) -> str:
    """The one line a child's exception is reported as: ``"TypeName: message"``."""
    return f"{type(e).__name__}: {e}"
