"""Test-session settings shared by every test."""

import torch


def pytest_configure(config):
    # Test scenes are tiny (tens of pixels a side): one intra-op thread is faster than two, and
    # it keeps timings sane when other processes share the cores. Tests that are about threads
    # (native determinism across thread counts) set their own.
    torch.set_num_threads(1)
