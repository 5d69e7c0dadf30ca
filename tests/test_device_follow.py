"""Code on the GPU path creates no tensor on the CPU by accident.

The meta device stands in for cuda here: an operation that mixes a meta tensor with a CPU one
raises, as it would with a cuda one, so the RenderNet inference path is checked without a GPU.
(The native backends need real data; their cuda cases are in the backend-parametrised tests.)
"""

import copy

import pytest
import torch

from render_core.rendernet.render import load_model, render_styles, render_voxels


@pytest.fixture(scope="module")
def meta_model():
    return copy.deepcopy(load_model()).to("meta")


def test_rendernet_inference_keeps_to_the_input_device(meta_model):
    b = 2
    vox = torch.zeros(1, 1, 32, 32, 32, device="meta")
    az, el = torch.zeros(b, device="meta"), torch.zeros(b, device="meta")
    scale = torch.ones(b, device="meta")
    out = render_voxels(vox, az, el, scale, "phong", model=meta_model)  # default light
    assert out.device.type == "meta" and out.shape == (b, 128, 128, 1)
    styles = render_styles(vox, az, el, scale, model=meta_model)
    assert {t.device.type for t in styles.values()} == {"meta"}
    with pytest.raises(RuntimeError, match="device"):  # a CPU input is still refused
        render_voxels(vox, az, el, scale, "phong", light_cam=torch.ones(b, 3), model=meta_model)
