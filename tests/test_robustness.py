"""Degenerate geometry never produces NaN, never raises; bad meshes raise clear errors."""

import pytest
import torch

import render_core as rc


def nasty_mesh():
    """Zero-area faces, a face crossing the eye plane, one behind the camera, one off screen,
    one crossing the near plane, plus one ordinary face so something is visible."""
    v = torch.tensor(
        [
            [-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0],  # ordinary
            [0.1, 0.1, 0.2], [0.1, 0.1, 0.2], [0.3, 0.2, 0.2],  # two coincident vertices
            [0.0, -0.2, 0.3], [0.2, 0.0, 0.3], [0.4, 0.2, 0.3],  # collinear
            [-1.0, -1.0, 1.5], [1.0, -1.0, 3.5], [0.0, 1.0, 1.5],  # crosses the eye plane
            [0.0, 0.0, 4.0], [1.0, 0.0, 4.0], [0.0, 1.0, 4.0],  # behind the camera
            [40.0, 40.0, 0.0], [41.0, 40.0, 0.0], [40.0, 41.0, 0.0],  # off screen
            [-0.3, 0.6, 1.95], [0.3, 0.6, 1.95], [0.0, 0.9, 1.0],  # crosses the near plane
        ]
    )
    f = torch.arange(21).view(7, 3)
    colors = torch.rand(21, 3)
    return v, f, colors


CAM = rc.Camera.look_at((0.0, 0.0, 2.0), fov=60.0, near=0.1)


@pytest.mark.parametrize("shading", ["vertex_color", "lambertian", "phong", "sh"])
def test_degenerate_faces_stay_finite(shading):
    v, f, colors = nasty_mesh()
    v = v.requires_grad_(True)
    colors = colors.requires_grad_(True)
    light = rc.SHLight(torch.randn(9)) if shading == "sh" else None
    out = rc.Renderer(48, shading=shading, backend="torch").render(
        rc.Mesh(v, f, vertex_colors=colors), CAM, light=light
    )
    assert torch.isfinite(out.rgb).all() and torch.isfinite(out.alpha).all()
    assert torch.isfinite(out.frags.bary).all() and torch.isfinite(out.frags.depth).all()
    (out.rgb.sum() + out.alpha.sum() + out.frags.depth.sum()).backward()
    assert torch.isfinite(v.grad).all() and torch.isfinite(colors.grad).all()
    # The ordinary face is drawn; faces behind the eye plane or degenerate are not.
    drawn = set(out.frags.face_idx.unique().tolist()) - {-1}
    assert 0 in drawn
    assert not drawn & {1, 2, 3, 4, 5}


def test_near_plane_clips_fragments():
    # A face spanning from in front of the near plane to behind it: only the part beyond the
    # near plane (NDC z >= -1) is drawn.
    v = torch.tensor([[-1.0, -0.2, 1.0], [1.0, -0.2, 1.0], [0.0, -0.2, 1.98]])
    f = torch.tensor([[0, 1, 2]])
    cam = rc.Camera.look_at((0.0, 0.0, 2.0), near=0.5)
    frags = rc.rasterize(cam.to_clip(v), f, 64, backend="torch")
    assert frags.mask.any()
    assert (frags.depth[frags.mask] >= -1).all()
    full = rc.rasterize(rc.Camera.look_at((0.0, 0.0, 2.0), near=0.01).to_clip(v), f, 64,
                        backend="torch")
    assert full.mask.sum() > frags.mask.sum()


def test_mesh_entirely_off_screen():
    m = rc.icosphere(2)
    v = (m.vertices + torch.tensor([30.0, 0.0, 0.0])).requires_grad_(True)
    out = rc.Renderer(32, shading="lambertian", backend="torch").render(m.with_(vertices=v), CAM)
    assert (out.frags.face_idx == -1).all()
    assert (out.alpha == 0).all() and (out.rgb == 0).all()
    (out.rgb.sum() + out.alpha.sum()).backward()
    assert torch.isfinite(v.grad).all()


def test_all_faces_behind_camera():
    m = rc.icosphere(1)
    v = m.vertices + torch.tensor([0.0, 0.0, 5.0])
    out = rc.Renderer(16, backend="torch").render(m.with_(vertices=v), CAM)
    assert (out.alpha == 0).all() and (out.frags.face_idx == -1).all()


def test_empty_face_list_renders_background():
    clip = torch.rand(1, 4, 4)
    frags = rc.rasterize(clip, torch.zeros(0, 3, dtype=torch.long), 8, backend="torch")
    assert (frags.face_idx == -1).all()
    assert (rc.soft_silhouette(clip, torch.zeros(0, 3, dtype=torch.long), 8,
                               backend="torch") == 0).all()


@pytest.mark.parametrize(
    "vertices, faces, problem",
    [
        (torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), "empty"),
        (torch.rand(3, 3), torch.tensor([[0, 1, 3]]), "range"),
        (torch.tensor([[0.0, 0, 0], [1, 0, 0], [float("nan"), 0, 0]]), torch.tensor([[0, 1, 2]]),
         "finite"),
        (torch.rand(3, 2), torch.tensor([[0, 1, 2]]), "shape"),
    ],
)
def test_bad_meshes_raise_value_error_naming_the_problem(vertices, faces, problem):
    with pytest.raises(ValueError) as info:
        rc.Mesh(vertices, faces)
    msg = str(info.value).lower()
    words = {"empty": ("empty", "no vertices", "no faces"), "range": ("range",),
             "finite": ("nan", "finite"), "shape": ("shape",)}[problem]
    assert any(w in msg for w in words), msg


def test_bad_rasterize_inputs():
    with pytest.raises(ValueError, match="shape"):
        rc.rasterize(torch.rand(1, 3, 3), torch.tensor([[0, 1, 2]]), 8)
    with pytest.raises(ValueError, match="indices"):
        rc.rasterize(torch.rand(1, 3, 4), torch.tensor([[0, 1, 5]]), 8)
    with pytest.raises(ValueError, match="resolution"):
        rc.rasterize(torch.rand(1, 3, 4), torch.tensor([[0, 1, 2]]), 0)
    with pytest.raises(ValueError, match="backend"):
        rc.rasterize(torch.rand(1, 3, 4), torch.tensor([[0, 1, 2]]), 8, backend="opengl")
