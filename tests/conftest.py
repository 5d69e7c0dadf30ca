"""Test-session settings shared by every test."""

import pytest
import torch


def pytest_configure(config):
    # Test scenes are tiny (tens of pixels a side): one intra-op thread is faster than two, and
    # it keeps timings sane when other processes share the cores. Tests that are about threads
    # (native determinism across thread counts) set their own.
    torch.set_num_threads(1)


@pytest.fixture
def float64_default():
    """Build everything in float64 (tight comparisons, finite-difference gradient checks)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
