"""Native backends: which exist, and dispatch to them.

Only the pure-torch backend exists so far; the native C++/CUDA extension plugs in here.
"""

from __future__ import annotations

import warnings

import torch

_warned = False


def available_backends() -> list[str]:
    """Names of the backends usable in this process."""
    return ["torch"]


def resolve_backend(name: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete backend for tensors on ``device``; validate explicit names."""
    global _warned
    known = ("auto", "torch", "cpu", "cuda")
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; choose one of {known}")
    if name == "auto":
        native = "cuda" if device.type == "cuda" else "cpu"
        if native in available_backends():
            return native
        if not _warned:
            warnings.warn(
                f"render_core: native '{native}' backend not available, using the torch backend",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned = True
        return "torch"
    if name not in available_backends():
        raise RuntimeError(f"backend {name!r} is not available; have {available_backends()}")
    return name
