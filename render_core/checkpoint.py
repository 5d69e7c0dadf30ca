"""The data of :meth:`Fitter.checkpoint`: its Adam part, and validation before a Fitter adopts it.

A checkpoint may come from a file, so every member is checked (presence, type, shape, dtype,
finiteness, index ranges) against the problem it is restored into; the first problem raises
``ValueError`` naming the member, before anything changes. :func:`adam_moments` and
:func:`load_adam_moments` convert between a torch Adam optimizer with named parameter groups
and the plain ``optimizer`` member.
"""

from __future__ import annotations

import math

import torch

MOMENTS = ("step", "exp_avg", "exp_avg_sq")
"""The Adam state kept per optimised tensor."""


def check_topology(state: dict, n_vertices: int, n_faces: int) -> tuple[int, int]:
    """Check the topology members of a :meth:`Fitter.state` dict and return the ``(V, F)``
    its per-vertex and per-face tensors must fit: those of ``base_vertices`` [V,3] (finite
    floats) and ``faces`` [F,3] (integer indices into them) when the state has them (both or
    neither), else ``n_vertices`` / ``n_faces`` (a state from before remeshing: the start
    topology). Also checks ``remesh_ref_length`` (None or [V] finite > 0) and
    ``remesh_steps`` (an integer >= 0), when present."""
    verts, faces = state.get("base_vertices"), state.get("faces")
    if (verts is None) != (faces is None):
        raise ValueError("checkpoint state needs both base_vertices and faces, or neither")
    if verts is not None:
        if not isinstance(verts, torch.Tensor) or verts.ndim != 2 or verts.shape[1] != 3 \
                or verts.shape[0] < 3 or not verts.is_floating_point() \
                or not bool(torch.isfinite(verts).all()):
            raise ValueError("checkpoint state base_vertices must be finite floats of shape "
                             "[V,3], V >= 3")
        if not isinstance(faces, torch.Tensor) or faces.ndim != 2 or faces.shape[1] != 3 \
                or faces.shape[0] < 1 or faces.is_floating_point() or faces.dtype == torch.bool:
            raise ValueError("checkpoint state faces must be integer indices of shape [F,3]")
        if int(faces.min()) < 0 or int(faces.max()) >= verts.shape[0]:
            raise ValueError(f"checkpoint state faces index outside the {verts.shape[0]} "
                             "base_vertices")
        n_vertices, n_faces = int(verts.shape[0]), int(faces.shape[0])
    ref = state.get("remesh_ref_length")
    if ref is not None and (not isinstance(ref, torch.Tensor) or tuple(ref.shape) != (n_vertices,)
                            or not ref.is_floating_point() or not bool(torch.isfinite(ref).all())
                            or bool((ref <= 0).any())):
        raise ValueError(f"checkpoint state remesh_ref_length must be None or {n_vertices} "
                         "finite lengths > 0")
    k = state.get("remesh_steps", 0)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError("checkpoint remesh_steps must be an integer >= 0")
    return n_vertices, n_faces


def check_state(state: dict, keys: tuple[str, ...], n_vertices: int, n_faces: int,
                n_targets: int) -> None:
    """Check a :meth:`Fitter.state` dict (tensors named ``keys`` plus ``steps``/``rejected``)
    for a mesh of ``n_vertices``/``n_faces`` and ``n_targets`` target views."""
    shapes = {"offset": (n_vertices, 3), "color_logit": (n_vertices, 3), "light_dir": (3,),
              "sh": (9, 3), "cam_delta": (n_targets, 7)}
    for k in keys:
        if k not in state:
            raise ValueError(f"checkpoint state lacks {k}")
        t = state[k]
        if t is None:
            if k in shapes:
                raise ValueError(f"checkpoint state {k} is missing")
            continue
        if not isinstance(t, torch.Tensor) or not bool(torch.isfinite(t).all()):
            raise ValueError(f"checkpoint state {k} must be a finite tensor")
        if k in shapes and tuple(t.shape) != shapes[k]:
            raise ValueError(f"checkpoint state {k} has shape {list(t.shape)}, expected "
                             f"{list(shapes[k])}")
    tex, uvs, fuv = state["tex_logit"], state["uvs"], state["face_uvs"]
    if tex is not None and (tex.ndim != 3 or tex.shape[2] != 3 or uvs is None):
        raise ValueError("checkpoint texture must be [N,N,3] with UVs")
    if (uvs is None) != (fuv is None):
        raise ValueError("checkpoint UVs need both uvs and face_uvs")
    if uvs is not None:
        if uvs.ndim != 2 or uvs.shape[1] != 2 or tuple(fuv.shape) != (n_faces, 3):
            raise ValueError("checkpoint UVs must be uvs [U,2] and face_uvs [F,3]")
        if fuv.is_floating_point() or (fuv.numel() and (int(fuv.min()) < 0
                                                       or int(fuv.max()) >= uvs.shape[0])):
            raise ValueError("checkpoint face_uvs must be integer indices into uvs")
    for k in ("steps", "rejected"):
        if isinstance(state.get(k), bool) or not isinstance(state.get(k), int) or state[k] < 0:
            raise ValueError(f"checkpoint {k} must be an integer >= 0")


def check_optimizer(opt: dict, enabled: set[str], params: dict) -> None:
    """Check the ``optimizer`` member: only ``enabled`` groups, a learning rate >= 0 each,
    and per tensor either None or finite float moments shaped like ``params[group]``."""
    for name, g in opt.items():
        if name not in enabled:
            raise ValueError(f"checkpoint optimizer has group {name!r}, not optimised")
        if not isinstance(g, dict):
            raise ValueError(f"checkpoint optimizer group {name} is malformed")
        lr = g.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, float | int) or not math.isfinite(lr) \
                or lr < 0:
            raise ValueError(f"checkpoint learning rate of {name} is not a number >= 0")
        moments = g.get("moments") or []
        if params.get(name) is None or len(moments) != 1:
            raise ValueError(f"checkpoint optimizer group {name} does not fit the problem")
        for m in moments:
            if m is None:
                continue
            for k in MOMENTS:
                t = m.get(k) if isinstance(m, dict) else None
                want = () if k == "step" else tuple(params[name].shape)
                if not isinstance(t, torch.Tensor) or tuple(t.shape) != want \
                        or not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                    raise ValueError(f"checkpoint optimizer {name}.{k}: expected finite "
                                     f"floats of shape {list(want)}")


def adam_moments(optimizer: torch.optim.Optimizer) -> dict:
    """The ``optimizer`` member for an Adam whose parameter groups carry a ``name``:
    ``{name: {"lr": float, "moments": [None or {k: tensor for k in MOMENTS}, per tensor]}}``,
    detached copies on the CPU."""
    opt = {}
    for pg in optimizer.param_groups:
        moments = []
        for p in pg["params"]:
            st = optimizer.state.get(p)
            moments.append(None if not st else {
                k: torch.as_tensor(st[k]).detach().cpu().clone() for k in MOMENTS})
        opt[pg["name"]] = {"lr": float(pg["lr"]), "moments": moments}
    return opt


def load_adam_moments(optimizer: torch.optim.Optimizer, opt: dict, dtype: torch.dtype) -> None:
    """Put a checked ``optimizer`` member (:func:`check_optimizer`) into ``optimizer``: the
    moments of each group it names (as ``dtype``; ``step`` as float32) and its learning rate.
    Groups it does not name keep their state."""
    saved = optimizer.state_dict()
    index = 0
    for pg in saved["param_groups"]:
        g = opt.get(pg["name"])
        for _ in pg["params"]:
            m = None if g is None else g["moments"][0]
            if m is not None:
                saved["state"][index] = {
                    "step": m["step"].detach().float().clone(),
                    "exp_avg": m["exp_avg"].detach().to(dtype).clone(),
                    "exp_avg_sq": m["exp_avg_sq"].detach().to(dtype).clone()}
            index += 1
        if g is not None:
            pg["lr"] = float(g["lr"])
    optimizer.load_state_dict(saved)
