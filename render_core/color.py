"""sRGB <-> linear colour conversion: the one place ``render_core`` changes colour encoding.

Everything inside ``render_core`` (vertex colours, textures, renders) is linear; files on disk
are sRGB. The curves are the exact piecewise IEC 61966-2-1 definitions (not a 2.2 gamma).

Both functions accept torch tensors (any shape, floating dtype, any device) and numpy arrays or
Python numbers, and return the same kind they were given. Inputs are clamped to [0, 1] first.
The torch versions are differentiable, with a finite gradient everywhere including 0 and 1.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

# IEC 61966-2-1 constants. The decode threshold is the encode threshold mapped through the
# linear segment (0.0031308 * 12.92 = 0.04045), so the two curves are exact inverses.
_SRGB_THRESHOLD = 0.04045
_LINEAR_THRESHOLD = 0.0031308
_SLOPE = 12.92
_A = 0.055
_GAMMA = 2.4


def _as_float_array(x) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    return arr


def _float_tensor(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.float32)


def srgb_to_linear(x: ArrayOrTensor) -> ArrayOrTensor:
    """Decode sRGB values in [0, 1] to linear light.

    Args:
        x: tensor or array of any shape, values in [0, 1] (clamped). Integer numpy input is
            treated as already-normalised values, not 8-bit codes (use ``srgb8_to_linear``).

    Returns:
        Same type, shape, dtype (float32 for non-float numpy input) and device as ``x``.
        Differentiable w.r.t. a torch ``x``.
    """
    if torch.is_tensor(x):
        x = _float_tensor(x).clamp(0.0, 1.0)
        # Clamping the base to the threshold keeps the unused branch's gradient finite, so
        # torch.where never multiplies a zero by a NaN.
        base = x.clamp(min=_SRGB_THRESHOLD)
        curve = ((base + _A) / (1.0 + _A)) ** _GAMMA
        return torch.where(x <= _SRGB_THRESHOLD, x / _SLOPE, curve)
    arr = np.clip(_as_float_array(x), 0.0, 1.0)
    curve = ((np.maximum(arr, _SRGB_THRESHOLD) + _A) / (1.0 + _A)) ** _GAMMA
    return np.where(arr <= _SRGB_THRESHOLD, arr / _SLOPE, curve).astype(arr.dtype, copy=False)


def linear_to_srgb(x: ArrayOrTensor) -> ArrayOrTensor:
    """Encode linear values in [0, 1] to sRGB.

    Args:
        x: tensor or array of any shape, values in [0, 1] (clamped).

    Returns:
        Same type, shape, dtype (float32 for non-float numpy input) and device as ``x``.
        Differentiable w.r.t. a torch ``x``; the gradient at 0 is the linear segment's slope
        (12.92), not the infinite slope of the power curve.
    """
    if torch.is_tensor(x):
        x = _float_tensor(x).clamp(0.0, 1.0)
        # x ** (1/2.4) has an infinite derivative at 0; clamping the base keeps it finite.
        base = x.clamp(min=_LINEAR_THRESHOLD)
        curve = (1.0 + _A) * base ** (1.0 / _GAMMA) - _A
        return torch.where(x <= _LINEAR_THRESHOLD, x * _SLOPE, curve)
    arr = np.clip(_as_float_array(x), 0.0, 1.0)
    curve = (1.0 + _A) * np.maximum(arr, _LINEAR_THRESHOLD) ** (1.0 / _GAMMA) - _A
    return np.where(arr <= _LINEAR_THRESHOLD, arr * _SLOPE, curve).astype(arr.dtype, copy=False)


def srgb8_to_linear(codes: np.ndarray) -> np.ndarray:
    """8-bit sRGB codes (uint8 or integers in [0, 255], any shape) -> linear float32."""
    return srgb_to_linear(np.asarray(codes, dtype=np.float32) / 255.0)


def linear_to_srgb8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Linear values in [0, 1] (array or tensor, any shape) -> 8-bit sRGB codes, uint8 numpy.

    Tensors are detached and moved to the CPU. Values are rounded to the nearest code.
    """
    if torch.is_tensor(x):
        x = x.detach().to("cpu", torch.float32).numpy()
    encoded = linear_to_srgb(np.asarray(x, dtype=np.float32))
    return np.round(encoded * 255.0).astype(np.uint8)
