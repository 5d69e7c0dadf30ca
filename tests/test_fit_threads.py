"""The studio fit process's thread count (studio.model.fitproc.fit_threads): every core unless
DIBR_FIT_THREADS names a positive count; anything else in it is ignored."""

from __future__ import annotations

import os

import pytest

from studio.model.fitproc import fit_threads


def test_every_core_by_default(monkeypatch):
    monkeypatch.delenv("DIBR_FIT_THREADS", raising=False)
    assert fit_threads() == max(1, os.cpu_count() or 1)


@pytest.mark.parametrize("value, want", [("3", 3), (" 1 ", 1), ("12", 12)])
def test_environment_sets_the_count(monkeypatch, value, want):
    monkeypatch.setenv("DIBR_FIT_THREADS", value)
    assert fit_threads() == want


@pytest.mark.parametrize("value", ["0", "-2", "two", "", "1.5"])
def test_bad_values_fall_back_to_every_core(monkeypatch, value):
    monkeypatch.setenv("DIBR_FIT_THREADS", value)
    assert fit_threads() == max(1, os.cpu_count() or 1)
