"""sRGB <-> linear conversion: exact IEC 61966-2-1 curves, types kept, finite gradients."""

import numpy as np
import pytest
import torch

from render_core.color import linear_to_srgb, linear_to_srgb8, srgb8_to_linear, srgb_to_linear


def test_known_values():
    assert float(srgb_to_linear(0.5)) == pytest.approx(0.214041, abs=1e-6)
    assert float(linear_to_srgb(0.214041)) == pytest.approx(0.5, abs=1e-6)
    assert float(srgb_to_linear(0.0)) == 0.0 and float(srgb_to_linear(1.0)) == 1.0
    assert float(linear_to_srgb(0.0)) == 0.0 and float(linear_to_srgb(1.0)) == pytest.approx(1.0)
    # The linear segment: 12.92 slope below the threshold.
    assert float(srgb_to_linear(0.02)) == pytest.approx(0.02 / 12.92)
    assert float(linear_to_srgb(0.001)) == pytest.approx(0.01292)
    # 8-bit code 128 decodes to the textbook 0.2158605.
    assert float(srgb8_to_linear(np.uint8(128))) == pytest.approx(0.2158605, abs=1e-6)


def test_branches_meet_at_threshold():
    below = torch.tensor(0.04045, dtype=torch.float64)
    above = torch.nextafter(below, torch.tensor(1.0, dtype=torch.float64))
    # The standard's rounded constants leave a ~2e-9 step; anything larger would be a bug.
    assert float(srgb_to_linear(above) - srgb_to_linear(below)) == pytest.approx(0, abs=1e-8)
    below = torch.tensor(0.0031308, dtype=torch.float64)
    above = torch.nextafter(below, torch.tensor(1.0, dtype=torch.float64))
    assert float(linear_to_srgb(above) - linear_to_srgb(below)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_round_trip_keeps_type(dtype):
    x = np.linspace(0, 1, 4097, dtype=dtype)
    lin = srgb_to_linear(x)
    assert isinstance(lin, np.ndarray) and lin.dtype == dtype and lin.shape == x.shape
    back = linear_to_srgb(lin)
    assert isinstance(back, np.ndarray) and back.dtype == dtype
    np.testing.assert_allclose(back, x, atol=1e-6 if dtype == np.float32 else 1e-12)
    assert np.all(np.diff(lin) >= 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_round_trip_keeps_type(dtype):
    x = torch.rand(3, 5, 7, dtype=dtype)
    lin = srgb_to_linear(x)
    assert torch.is_tensor(lin) and lin.dtype == dtype and lin.shape == x.shape
    assert lin.device == x.device
    torch.testing.assert_close(linear_to_srgb(lin), x, atol=1e-6, rtol=0)


def test_torch_and_numpy_agree():
    x = np.random.default_rng(0).random(1000)
    np.testing.assert_allclose(srgb_to_linear(torch.from_numpy(x)).numpy(), srgb_to_linear(x))
    np.testing.assert_allclose(linear_to_srgb(torch.from_numpy(x)).numpy(), linear_to_srgb(x))


def test_inputs_are_clamped():
    x = np.array([-0.5, 1.5])
    np.testing.assert_allclose(srgb_to_linear(x), [0.0, 1.0])
    np.testing.assert_allclose(linear_to_srgb(x), [0.0, 1.0])


@pytest.mark.parametrize("fn", [srgb_to_linear, linear_to_srgb])
def test_gradient_finite_everywhere(fn):
    x = torch.tensor(
        [-0.1, 0.0, 1e-12, 0.003, 0.0031308, 0.04045, 0.5, 1.0, 1.2], requires_grad=True
    )
    fn(x).sum().backward()
    assert torch.isfinite(x.grad).all(), x.grad


def test_gradient_values_at_ends():
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    srgb_to_linear(x).sum().backward()
    assert x.grad[0].item() == pytest.approx(1 / 12.92)
    assert x.grad[1].item() == pytest.approx(2.4 / 1.055)  # d/dx ((x+a)/(1+a))^2.4 at 1
    x.grad = None
    linear_to_srgb(x).sum().backward()
    assert x.grad[0].item() == pytest.approx(12.92)
    assert x.grad[1].item() == pytest.approx(1.055 / 2.4)


@pytest.mark.parametrize("fn", [srgb_to_linear, linear_to_srgb])
def test_gradcheck(fn):
    # Away from the kinks (the threshold and the clamp ends) the gradient is exact.
    x = torch.tensor([0.001, 0.01, 0.2, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,))


def test_8bit_codes_round_trip():
    codes = np.arange(256, dtype=np.uint8)
    lin = srgb8_to_linear(codes)
    assert lin.dtype == np.float32
    np.testing.assert_array_equal(linear_to_srgb8(lin), codes)
    np.testing.assert_array_equal(linear_to_srgb8(torch.from_numpy(lin)), codes)
