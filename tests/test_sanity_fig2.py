"""The DIB-R paper's Figure 2 sanity check: optimise one attribute from a perturbed state.

Each test renders targets from a known state, perturbs one group of parameters, minimises L1
(+ IoU where geometry moves) with Adam, and asserts that the image error falls by at least 90%
and that the perturbed parameter comes back within a stated tolerance.

Every fit runs once per native backend (``native_backend``, tests/conftest.py), with the mesh,
cameras, lights and parameters on the backend's device.
"""

import math

import torch

import render_core as rc

RES = 64


def target_mesh(sub=2, device="cpu"):
    base = rc.icosphere(sub).to(device)
    v = base.vertices
    # A lumpy, asymmetric body so every view constrains the shape.
    r = 1 + 0.15 * torch.sin(3 * v[:, 0]) * torch.cos(2 * v[:, 1]) + 0.1 * v[:, 2]
    v = v * r[:, None] * torch.tensor([1.0, 0.8, 0.9], device=v.device)
    colors = 0.5 + 0.45 * torch.stack(
        [torch.sin(3 * v[:, 0]), torch.sin(3 * v[:, 1] + 1), torch.cos(3 * v[:, 2])], -1
    )
    return rc.Mesh(v, base.faces, vertex_colors=colors)


def views(n=4, elevation=25.0, distance=3.2, device="cpu"):
    az = torch.arange(n, dtype=torch.float32) * (360.0 / n) + 15.0
    el = torch.tensor([elevation, -elevation] * (n // 2))
    return rc.Camera.orbit(az, el, distance, fov=45.0).to(device)


def image_error(out, tgt):
    return ((out.rgb - tgt.rgb).abs().mean() + (out.alpha - tgt.alpha).abs().mean()).item()


def optimise(params, make_output, target, steps, lr, iou_weight=0.0):
    opt = torch.optim.Adam(params, lr=lr)
    with torch.no_grad():
        start = image_error(make_output(), target)
    for _ in range(steps):
        opt.zero_grad()
        out = make_output()
        loss = rc.losses.l1(out.rgb, target.rgb)
        if iou_weight:
            loss = loss + iou_weight * rc.losses.iou(out.alpha, target.alpha)
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = image_error(make_output(), target)
    return start, end


def fit_vertex_offsets(shading, n_views, seed, backend, device, light=None):
    """Perturb the target's vertices by N(0, 0.04), fit offsets with L1 + IoU; return the mean
    vertex error before and after, having asserted the >= 90% cut of the image error."""
    torch.manual_seed(seed)
    tgt_mesh = target_mesh(device=device)
    cams = views(n_views, device=device)
    r = rc.Renderer(RES, shading=shading, sigma=3e-4, backend=backend)
    with torch.no_grad():
        target = r.render(tgt_mesh, cams, light=light)
    assert target.rgb.device.type == device.type
    noise = (0.04 * torch.randn(tgt_mesh.vertices.shape)).to(device)
    offset = noise.clone().requires_grad_(True)

    def out():
        return r.render(tgt_mesh.with_(vertices=tgt_mesh.vertices + offset), cams, light=light)

    start, end = optimise([offset], out, target, 300, 2e-3, iou_weight=1.0)
    assert end < 0.1 * start, (start, end)
    return noise.norm(dim=-1).mean(), offset.detach().norm(dim=-1).mean()


def test_a_vertex_positions_vertex_color_model(native_backend, device):
    err0, err1 = fit_vertex_offsets("vertex_color", 4, 0, native_backend, device)
    # Tolerance: the mean vertex error falls to under a third of the perturbation. Vertices can
    # slide tangentially inside a smoothly coloured region, which the images cannot see.
    assert err1 < err0 / 3, (err0, err1)


def test_b_vertex_colors(native_backend, device):
    torch.manual_seed(1)
    tgt_mesh = target_mesh(device=device)
    cams = views(device=device)
    r = rc.Renderer(RES, shading="vertex_color", silhouette=False, backend=native_backend)
    with torch.no_grad():
        target = r.render(tgt_mesh, cams)
    noise = 0.3 * torch.randn(tgt_mesh.vertex_colors.shape)
    colors = (tgt_mesh.vertex_colors + noise.to(device))
    colors = colors.clamp(0, 1).requires_grad_(True)

    def out():
        return r.render(tgt_mesh.with_(vertex_colors=colors), cams)

    start, end = optimise([colors], out, target, 200, 2e-2)
    assert end < 0.1 * start, (start, end)
    # Tolerance: colours of vertices that some view sees within 0.03 on average.
    seen = torch.zeros(tgt_mesh.num_vertices, dtype=torch.bool, device=device)
    seen[tgt_mesh.faces[out().frags.face_idx[out().frags.face_idx >= 0]].reshape(-1)] = True
    err = (colors.detach() - tgt_mesh.vertex_colors).abs()[seen].mean()
    assert err < 0.03, err


def textured_mesh(device):
    m = rc.uv_sphere(rings=12, segments=24).to(device)
    torch.manual_seed(2)
    h, w = 16, 32
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    tex = torch.stack([0.5 + 0.4 * torch.sin(6.28 * xx * 2), 0.5 + 0.4 * torch.cos(6.28 * yy),
                       0.3 + 0.5 * xx * yy], -1)
    return m.with_(texture=tex.to(device))


def test_c_texture(native_backend, device):
    tgt_mesh = textured_mesh(device)
    cams = views(6, device=device)
    r = rc.Renderer(RES, shading="texture", silhouette=False, backend=native_backend)
    with torch.no_grad():
        target = r.render(tgt_mesh, cams)
    tex = torch.full_like(tgt_mesh.texture, 0.5).requires_grad_(True)

    def out():
        return r.render(tgt_mesh.with_(texture=tex), cams)

    start, end = optimise([tex], out, target, 200, 3e-2)
    assert end < 0.1 * start, (start, end)
    # Tolerance: texels away from the poles (where many texels share a pixel) within 0.05.
    band = slice(3, 13)
    err = (tex.detach() - tgt_mesh.texture)[band].abs().mean()
    assert err < 0.05, err


def test_d_texture_coordinates(native_backend, device):
    tgt_mesh = textured_mesh(device)
    cams = views(6, device=device)
    r = rc.Renderer(RES, shading="texture", silhouette=False, backend=native_backend)
    with torch.no_grad():
        target = r.render(tgt_mesh, cams)
    torch.manual_seed(3)
    noise = (0.02 * torch.randn(tgt_mesh.uvs.shape)).to(device)
    uv = (tgt_mesh.uvs + noise).requires_grad_(True)

    def out():
        return r.render(tgt_mesh.with_(uvs=uv), cams)

    start, end = optimise([uv], out, target, 250, 2e-3)
    assert end < 0.1 * start, (start, end)
    # Tolerance: the mean UV error at least halves (a UV can slide along a texture iso-line).
    err0 = noise.norm(dim=-1).mean()
    err1 = (uv.detach() - tgt_mesh.uvs).norm(dim=-1).mean()
    assert err1 < err0 / 2, (err0, err1)


def light(device):
    return rc.DirectionalLight(torch.tensor([0.4, 0.8, 0.6], device=device), ambient=0.1)


def test_e_vertex_positions_lambertian(native_backend, device):
    err0, err1 = fit_vertex_offsets("lambertian", 6, 4, native_backend, device,
                                    light=light(device))
    # Tolerance: the mean vertex error at least halves (measured: to 0.42 of the perturbation).
    # Shading constrains normals, not where a vertex sits inside a smooth patch.
    assert err1 < err0 / 2, (err0, err1)


def test_f_camera_position_lambertian(native_backend, device):
    tgt_mesh = target_mesh(device=device)
    r = rc.Renderer(RES, shading="lambertian", sigma=3e-4, backend=native_backend)
    true_eye = torch.tensor([0.8, 1.0, 2.8], device=device)
    lit = light(device)
    with torch.no_grad():
        target = r.render(tgt_mesh, rc.Camera.look_at(true_eye, fov=45.0), light=lit)
    eye = (true_eye + torch.tensor([0.25, -0.2, 0.2], device=device)).requires_grad_(True)

    def out():
        return r.render(tgt_mesh, rc.Camera.look_at(eye, fov=45.0), light=lit)

    start, end = optimise([eye], out, target, 200, 1e-2, iou_weight=1.0)
    assert end < 0.1 * start, (start, end)
    # Tolerance: the eye within 0.02 (under 1% of the viewing distance).
    assert (eye.detach() - true_eye).norm() < 0.02, eye


def test_g_spherical_harmonics_lighting(native_backend, device):
    tgt_mesh = target_mesh(3, device=device)
    cams = views(6, device=device)
    r = rc.Renderer(RES, shading="sh", silhouette=False, backend=native_backend)
    torch.manual_seed(5)
    true = torch.zeros(9, 3)
    true[0] = 2.5
    true[1:4] = 0.6 * torch.randn(3, 3)
    true[4:] = 0.25 * torch.randn(5, 3)
    noise = 0.4 * torch.randn_like(true)
    true = true.to(device)
    with torch.no_grad():
        target = r.render(tgt_mesh, cams, light=rc.SHLight(true))
    coeffs = (true + noise.to(device)).requires_grad_(True)

    def out():
        return r.render(tgt_mesh, cams, light=rc.SHLight(coeffs))

    start, end = optimise([coeffs], out, target, 300, 2e-2)
    assert end < 0.1 * start, (start, end)
    # Tolerance: every coefficient within 0.05 (the object is seen from all around).
    assert (coeffs.detach() - true).abs().max() < 0.05, coeffs - true


def test_h_phong_material(native_backend, device):
    tgt_mesh = target_mesh(3, device=device)
    cams = views(4, device=device)
    r = rc.Renderer(RES, shading="phong", silhouette=False, backend=native_backend)
    light = rc.DirectionalLight(torch.tensor([0.2, 0.6, 1.0], device=device))
    true_ks, true_shin = 0.5, 12.0
    with torch.no_grad():
        target = r.render(tgt_mesh, cams, light=light,
                          material=rc.PhongMaterial(kd=0.8, ks=true_ks, shininess=true_shin))
    ks = torch.tensor(0.15, device=device, requires_grad=True)
    log_shin = torch.tensor(math.log(4.0), device=device, requires_grad=True)

    def out():
        mat = rc.PhongMaterial(kd=0.8, ks=ks, shininess=log_shin.exp())
        return r.render(tgt_mesh, cams, light=light, material=mat)

    start, end = optimise([ks, log_shin], out, target, 300, 3e-2)
    assert end < 0.1 * start, (start, end)
    # Tolerance: ks within 0.02, shininess within 10%.
    assert abs(ks.item() - true_ks) < 0.02, ks
    assert abs(log_shin.exp().item() / true_shin - 1) < 0.1, log_shin.exp()
