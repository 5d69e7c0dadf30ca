"""Test-session settings shared by every test."""

import pytest
import torch
from _backends import NATIVE_BACKENDS


def pytest_configure(config):
    # Test scenes are tiny (tens of pixels a side): one intra-op thread is faster than two, and
    # it keeps timings sane when other processes share the cores. Tests that are about threads
    # (native determinism across thread counts) set their own.
    torch.set_num_threads(1)
    config.addinivalue_line("markers", "cuda: runs on the CUDA device (the cuda native backend)")


@pytest.fixture
def float64_default():
    """Build everything in float64 (tight comparisons, finite-difference gradient checks)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(params=NATIVE_BACKENDS)
def native_backend(request) -> str:
    """A native backend name, "cpu" or "cuda"; its tensors live on :func:`device`."""
    from render_core import _build

    # The variant that serves the backend (with a GPU, the CUDA build serves both); a build
    # failure fails the test, it never skips it.
    if request.param not in _build.available_backends():
        pytest.fail(f"native backend {request.param!r} unavailable: "
                    f"{_build._why_not(request.param)}")
    return request.param


@pytest.fixture
def device(native_backend) -> torch.device:
    """The device of every tensor of a test run on ``native_backend``."""
    return torch.device(native_backend)
