"""render_core._glue_threads: a fit step's torch ops on one thread, its native kernels on the
threads set before; the fit's values do not depend on the thread count."""

from __future__ import annotations

import pytest
import torch
from _scenes import orbit_targets, stretched_sphere

import render_core as rc
from render_core import _glue_threads as gt
from render_core.fit import GROUPS, FitConfig, Fitter, ParamGroup


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_serial_glue_runs_kernels_on_the_threads_set_before(two_threads):
    seen = gt.kernel(torch.get_num_threads)
    assert seen() == 2  # outside: the kernel itself
    with gt.serial_glue():
        assert torch.get_num_threads() == 1
        assert gt.kernel(torch.get_num_threads)() == 2
        assert torch.get_num_threads() == 1
        with gt.serial_glue():  # nested: nothing changes
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
        with gt.all_threads():
            assert torch.get_num_threads() == 2
            assert gt.kernel(torch.get_num_threads)() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with gt.all_threads():  # outside serial_glue: nothing
        assert torch.get_num_threads() == 2


def test_serial_glue_restores_on_errors(two_threads):
    def boom():
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError), gt.serial_glue():
        gt.kernel(boom)()
    assert torch.get_num_threads() == 2
    with gt.serial_glue():
        with pytest.raises(RuntimeError):
            gt.kernel(boom)()
        assert torch.get_num_threads() == 1


def test_a_fit_does_not_depend_on_the_thread_count(two_threads):
    if "cpu" not in rc.available_backends():
        pytest.skip("no native CPU backend")
    views = [(0, 10), (60, -10), (120, 30), (180, 0), (240, 20), (300, -20)]
    targets = orbit_targets(stretched_sphere(), views, res=48)
    states = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cfg = FitConfig(resolution=48, shading="lambertian", backend="cpu", model="dibr")
        cfg.groups = {g: ParamGroup(g in ("vertices", "colors", "light", "camera"), 0.01)
                      for g in GROUPS}
        f = Fitter(rc.icosphere(subdivisions=4), targets, cfg)
        for _ in range(4):
            f.step()
        assert torch.get_num_threads() == threads
        states.append(f.state())
    for k in ("offset", "color_logit", "light_dir", "cam_delta"):
        assert torch.equal(states[0][k], states[1][k]), k
