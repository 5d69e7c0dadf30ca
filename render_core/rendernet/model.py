"""RenderNet, scaled down for CPU training, rendering four styles from one network.

Topology (as the original): rigid resampling of the voxel grid into the camera frame -> 3D
convolutions (first 5³ stride 2, then depth stride 2) -> residual 3D block -> projection unit
(reshape depth×channels into channels, 1×1 conv, PReLU) -> residual 2D trunk -> upsampling
decoder -> per-pixel heads. PReLU everywhere, no normalisation.

Camera-grid skip: the resampled grid's depth columns also go through a 1×1 projection at the
grid's own resolution and are added into both decoder stages (a U-Net-style skip around the
3D convs and the trunk), so silhouettes and depth steps keep the grid's resolution.

Multi-style: one shared trunk, conditioned on the light direction (camera frame) by FiLM; the
heads are cheap 1×1 convs. Light-independent heads: mask, normal map (for analytic / deferred
Phong at any light), contour, AO. Lit heads (Phong, toon) are a small per-pixel MLP of the
decoder features, the predicted normal, the contour logit and the light, so relighting costs
only the heads. Output logits; :meth:`RenderNet.images` turns them into [0,1] images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pose import resample
from .targets import phong as phong_shade


@dataclass
class Config:
    vox: int = 32  # input occupancy resolution
    grid: int = 64  # camera grid D=H=W
    c3: tuple[int, int] = (16, 24)  # 3D channels
    proj: int = 192  # projection unit output channels
    trunk_blocks: int = 4
    dec: tuple[int, int] = (64, 32)  # decoder channels at 2x and 4x the trunk resolution
    head_hidden: int = 32
    skip: int = 32  # channels of the camera-grid skip into the decoder (0: none)

    @property
    def out_res(self) -> int:
        return self.grid * 2  # trunk at grid/2, decoder upsamples x4


class Res3d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a, self.b = nn.Conv3d(c, c, 3, padding=1), nn.Conv3d(c, c, 3, padding=1)
        self.pa, self.pb = nn.PReLU(c), nn.PReLU(c)

    def forward(self, x):
        return self.pb(x + self.b(self.pa(self.a(x))))


class Res2d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.pa, self.pb = nn.PReLU(c), nn.PReLU(c)

    def forward(self, x):
        return self.pb(x + self.b(self.pa(self.a(x))))


HEADS = ("mask", "nx", "ny", "nz", "contour", "ao")


class RenderNet(nn.Module):
    def __init__(self, cfg: Config | None = None):
        super().__init__()
        cfg = cfg or Config()
        self.cfg = cfg
        c1, c2 = cfg.c3
        self.conv1 = nn.Conv3d(1, c1, 5, stride=2, padding=2)
        self.conv2 = nn.Conv3d(c1, c2, 3, stride=(2, 1, 1), padding=1)
        self.p1, self.p2 = nn.PReLU(c1), nn.PReLU(c2)
        self.res3 = Res3d(c2)
        depth = cfg.grid // 4
        self.proj = nn.Conv2d(c2 * depth, cfg.proj, 1)
        self.pproj = nn.PReLU(cfg.proj)
        self.film = nn.Sequential(nn.Linear(3, 64), nn.PReLU(64), nn.Linear(64, 2 * cfg.proj))
        self.trunk = nn.Sequential(*[Res2d(cfg.proj) for _ in range(cfg.trunk_blocks)])
        d1, d2 = cfg.dec
        self.up1 = nn.ConvTranspose2d(cfg.proj, d1, 4, stride=2, padding=1)
        self.c1 = nn.Conv2d(d1, d1, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(d1, d2, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(d2, d2, 3, padding=1)
        self.pu1, self.pc1 = nn.PReLU(d1), nn.PReLU(d1)
        self.pu2, self.pc2 = nn.PReLU(d2), nn.PReLU(d2)
        if cfg.skip:
            # Skip from the camera grid itself into the decoder: its depth column at each of the
            # grid's H×W columns is a 1×1 "projection unit" at full grid resolution, so edges
            # and depth steps reach the image without the trunk's 2x downsampling. The
            # injections are zero-initialised: adding the skip to trained weights starts from
            # the same function.
            s = cfg.skip
            self.sproj = nn.Conv2d(cfg.grid, s, 1)
            self.sconv = nn.Conv2d(s, s, 3, padding=1)
            self.ps1, self.ps2 = nn.PReLU(s), nn.PReLU(s)
            self.inj1 = nn.Conv2d(s, d1, 3, padding=1)
            self.inj2 = nn.Conv2d(s, d2, 3, padding=1)
            for m in (self.inj1, self.inj2):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
        self.head = nn.Conv2d(d2, len(HEADS), 1)
        hin = d2 + 3 + 1 + 3  # features, normal, contour logit, light
        self.lit = nn.Sequential(nn.Conv2d(hin, cfg.head_hidden, 1), nn.PReLU(cfg.head_hidden),
                                 nn.Conv2d(cfg.head_hidden, 2, 1))
        nn.init.zeros_(self.film[-1].weight)  # FiLM starts as identity
        nn.init.zeros_(self.film[-1].bias)
        for m in (self.conv1, self.conv2, self.res3):
            m.to(memory_format=torch.channels_last_3d)  # ~18x faster 3D convs on CPU
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.to(memory_format=torch.channels_last)

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def features(self, cam_vox: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        """cam_vox [B,1,D,H,W] camera-frame grid, light [B,3] -> decoder features [B,d2,2H,2W]."""
        skip = None
        if self.cfg.skip:
            b, _, d, h, w = cam_vox.shape
            s = cam_vox.reshape(b, d, h, w).contiguous(memory_format=torch.channels_last)
            skip = self.ps2(self.sconv(self.ps1(self.sproj(s))))  # [B,skip,H,W]
        x = cam_vox.contiguous(memory_format=torch.channels_last_3d)
        x = self.p1(self.conv1(x))
        x = self.p2(self.conv2(x))
        x = self.res3(x)  # [B,C,D/4,H/2,W/2]
        b, c, d, h, w = x.shape
        x = x.reshape(b, c * d, h, w).contiguous(memory_format=torch.channels_last)
        x = self.pproj(self.proj(x))  # projection unit
        g, bta = self.film(light).chunk(2, -1)
        x = x * (1 + g[..., None, None]) + bta[..., None, None]
        x = self.trunk(x)
        x = self.c1(self.pu1(self.up1(x)))
        if skip is not None:
            x = x + self.inj1(skip)
        x = self.c2(self.pu2(self.up2(self.pc1(x))))
        if skip is not None:
            up = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            x = x + self.inj2(up)
        return self.pc2(x)

    def forward(self, cam_vox: torch.Tensor, light: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits / raw outputs for a camera-frame grid [B,1,D,H,W] and light [B,3] (camera
        frame, towards the light). Returns dict of [B,h,w] logits (mask, contour, ao, phong,
        toon) and ``normal`` [B,h,w,3] unit vectors, h = w = 2·H."""
        f = self.features(cam_vox, light)
        o = self.head(f)
        normal = F.normalize(o[:, 1:4], dim=1)
        lt = F.normalize(light, dim=-1)[..., None, None].expand(-1, -1, *f.shape[-2:])
        lit = self.lit(torch.cat([f, normal, o[:, 4:5], lt], 1))
        return {
            "mask": o[:, 0],
            "normal": normal.permute(0, 2, 3, 1),
            "contour": o[:, 4],
            "ao": o[:, 5],
            "phong": lit[:, 0],
            "toon": lit[:, 1],
        }

    def render_pose(self, vox, az, el, scale, light, persp=None) -> dict[str, torch.Tensor]:
        """Voxel grid [B,1,Z,Y,X] + pose [B] + camera-frame light [B,3] -> :meth:`forward`.
        ``persp`` [B] (1/eye distance) renders through a perspective (frustum) camera grid."""
        g = self.cfg.grid
        return self.forward(resample(vox, az, el, scale, (g, g, g), persp=persp), light)


GROWN = ("sproj", "sconv", "ps1", "ps2", "inj1", "inj2")
"""Modules added after the first weights were shipped (the camera-grid skip)."""


def load_grown(model: RenderNet, state: dict) -> list[str]:
    """Load a state_dict, allowing only the modules in :data:`GROWN` to be missing: they keep
    their initialisation, which is zero where they join the network, so weights saved before
    the skip existed give the same function. Returns the missing names; any other mismatch
    raises ``RuntimeError``."""
    res = model.load_state_dict(state, strict=False)
    bad = [k for k in res.missing_keys if k.split(".")[0] not in GROWN]
    if res.unexpected_keys or bad:
        raise RuntimeError(f"weights do not fit the model: unexpected {res.unexpected_keys}, "
                           f"missing {bad}")
    return res.missing_keys


def images(out: dict[str, torch.Tensor], light: torch.Tensor) -> dict[str, torch.Tensor]:
    """Network outputs -> style images [B,h,w] in [0,1]. ``phong`` is the deferred (analytic)
    shading of the predicted normal map; ``phong_net`` is the network's own Phong head."""
    mask = torch.sigmoid(out["mask"])
    return {
        "phong": phong_shade(out["normal"], mask, light),
        "phong_net": torch.sigmoid(out["phong"]),
        "contour": torch.sigmoid(out["contour"]),
        "toon": torch.sigmoid(out["toon"]),
        "ao": torch.sigmoid(out["ao"]),
        "mask": mask,
    }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: RenderNet) -> int:
    """Multiply-accumulates of one full-resolution forward (convs only; the rest is noise)."""
    macs = 0

    def hook(m, inp, out):
        nonlocal macs
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            k = m.weight[0].numel()  # in/groups × kernel
            macs += out.numel() * k
        elif isinstance(m, nn.ConvTranspose2d):
            macs += inp[0].numel() * m.weight[0].numel()

    hs = [m.register_forward_hook(hook) for m in model.modules()]
    g = model.cfg.grid
    with torch.no_grad():
        model(torch.zeros(1, 1, g, g, g), torch.tensor([[0.0, 0.0, 1.0]]))
    for h in hs:
        h.remove()
    return macs
