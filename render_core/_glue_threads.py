"""A fit step's torch ops on one thread, its native CPU kernels on all.

Between the native kernels a fit step runs a few hundred small torch ops (camera matrices,
[B,V,4] clip coordinates, [P,3] gathers and scatters of the covered pixels). With two
intra-op threads each of them that is over torch's grain size wakes the other thread, and on a
machine whose cores are busy the wake-up costs more than the op: a [24,V] @ [V,4] product
takes ~15 us on one thread and up to ~0.5 ms on two. Inside :func:`serial_glue` torch runs on
one thread and every native CPU kernel (``_native._kernel``) on the threads set before.

Values: elementwise ops give the same bits on any number of threads; a reduction that torch
splits across threads (a matrix product's long inner dimension: the gradient of the camera
matrices) is summed in one thread's order, the order a one-thread run always had, so a fit's
steps no longer depend on the thread count. The native kernels' results never did.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable

import torch

_state = threading.local()  # .threads: the kernels' thread count while serial_glue is on


def kernel(fn: Callable) -> Callable:
    """``fn`` (a native CPU kernel), run on the threads :func:`serial_glue` set aside when it
    is on in this thread; else ``fn`` itself."""
    threads = getattr(_state, "threads", None)
    return fn if threads is None else functools.partial(_on_threads, threads, fn)


def _on_threads(threads: int, fn: Callable, *args):
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(1)


@contextlib.contextmanager
def serial_glue():
    """Torch ops of this thread on one intra-op thread, native CPU kernels on the threads set
    before (restored on exit). Nested uses, and a single thread, change nothing."""
    threads = torch.get_num_threads()
    if threads <= 1 or getattr(_state, "threads", None) is not None:
        yield
        return
    torch.set_num_threads(1)
    _state.threads = threads
    try:
        yield
    finally:
        _state.threads = None
        torch.set_num_threads(threads)


@contextlib.contextmanager
def all_threads():
    """Inside :func:`serial_glue`: every thread again for this block's torch ops (work, not
    glue: remeshing); elsewhere nothing."""
    threads = getattr(_state, "threads", None)
    if threads is None:
        yield
        return
    _state.threads = None
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(1)
        _state.threads = threads


def step_glue(config, shading: str, device: torch.device):
    """:func:`serial_glue` for a Fitter step whose heavy work is native CPU kernels: a DIB-R
    model on the native CPU backend without a texture or an objective (their torch ops on
    textures and networks are work, not glue); else a context that does nothing.
    ``shading`` is the Fitter's effective shading."""
    from ._build import resolve_backend

    if (config.objective is None and shading != "texture" and config.shading != "texture"
            and not config.groups["texture"].enabled
            and config.rendering_model() in ("dibr", "dibr+aa")
            and resolve_backend(config.backend, device) == "cpu"):
        return serial_glue()
    return contextlib.nullcontext()
