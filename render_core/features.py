"""Image feature extractors for the style and DeepDream objectives, with nothing downloaded.

Two sources behind one interface, :class:`FeatureExtractor` (a chain of 3×3 conv + ReLU
layers named ``conv<block>_<index>``, with 2× pooling between blocks):

- :func:`random_features`: the built-in extractor every user has. A fixed, seeded network of
  random filters, four blocks of one 3×3 conv + ReLU each (32 / 64 / 96 / 128 channels,
  average pooling between blocks, so each block sees the image at half the scale of the last:
  receptive fields of 3, 8, 18 and 38 pixels). Random shallow multi-scale networks carry
  enough texture statistics for Gram-matrix synthesis (Ustyuzhaninov et al., "What does it
  take to generate natural textures?", ICLR 2017). Drawn from ``torch.Generator`` with a fixed
  seed: the same filters on every machine, no file, 0.2 M weights.
- :func:`vgg_features`: the convolutional part of a torchvision VGG-16 or VGG-19 the user
  already has (a ``state_dict`` file, e.g. ``vgg16-397923af.pth``), read with
  ``torch.load(weights_only=True)`` after its keys and shapes are checked: the network the
  NMR paper used (trained on ImageNet, so its features know paintings' strokes and objects'
  parts). The layer widths are read from the file, so any file with torchvision's key layout
  and consistent shapes loads (tests use a tiny one).

:func:`load_features` takes ``"random"`` or a path. Bad files raise :class:`FeatureError`
(one line naming the file and the problem) and nothing is kept.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["FeatureError", "FeatureExtractor", "load_features", "random_features",
           "vgg_features"]

# torchvision's VGG "features" Sequential: convs per block; each conv is followed by a ReLU
# and each block by a max pool, so the conv indices follow from these counts.
VGG_BLOCKS = {"VGG-16": (2, 2, 3, 3, 3), "VGG-19": (2, 2, 4, 4, 4)}
# ImageNet statistics torchvision's VGGs were trained with (sRGB in [0,1]).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WIDTHS = (32, 64, 96, 128)
RANDOM_SEED = 20170101


class FeatureError(ValueError):
    """A feature-extractor file that cannot be used; ``str()`` names the file and problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{Path(path).name}: {problem}")


class FeatureExtractor(torch.nn.Module):
    """Conv + ReLU layers with 2× pooling between blocks; weights frozen.

    Args:
        blocks: per block, the ``(weight [O,I,3,3], bias [O])`` of each conv, in order.
        name: what the extractor is (shown to the user).
        pool: ``"max"`` (VGG's) or ``"avg"``.
        mean, std: the input normalisation (per sRGB channel).
        style_layers: the default layers of the style loss; ``dream_layer`` the default
            DeepDream layer.

    :meth:`forward` maps sRGB images ``[B,H,W,3]`` in [0,1] (any float dtype, differentiable)
    to the requested layers' activations (after the ReLU) ``[B,C,h,w]``, float32.
    """

    def __init__(self, blocks: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                 name: str, pool: str, mean, std, style_layers: Sequence[str],
                 dream_layer: str):
        super().__init__()
        self.name, self.pool = name, pool
        self.layers: list[str] = []
        self._plan: list[tuple[str, int]] = []  # ("conv", param index) or ("pool", 0)
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for b, convs in enumerate(blocks):
            if b:
                self._plan.append(("pool", 0))
            for i, (w, bias) in enumerate(convs):
                self._plan.append(("conv", len(self.weights)))
                self.layers.append(f"conv{b + 1}_{i + 1}")
                self.weights.append(torch.nn.Parameter(w.float().contiguous(), False))
                self.biases.append(torch.nn.Parameter(bias.float().contiguous(), False))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.style_layers = [s for s in style_layers if s in self.layers]
        self.dream_layer = dream_layer if dream_layer in self.layers else self.layers[-1]

    def channels(self, layer: str) -> int:
        """Number of channels of ``layer``."""
        return int(self.weights[self.layers.index(self.check_layer(layer))].shape[0])

    def check_layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise ValueError(f"unknown layer {layer!r} of the {self.name} features; choose "
                             f"one of {', '.join(self.layers)}")
        return layer

    def forward(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = {self.check_layer(s) for s in layers}
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B,H,W,3], got {tuple(images.shape)}")
        x = (images.float().permute(0, 3, 1, 2) - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for op, k in self._plan:
            if len(out) == len(wanted):
                break  # nothing deeper is needed
            if op == "pool":
                if min(x.shape[-2:]) < 2:
                    raise ValueError("images too small for the requested layer")
                x = F.max_pool2d(x, 2) if self.pool == "max" else F.avg_pool2d(x, 2)
                continue
            x = F.relu(F.conv2d(x, self.weights[k], self.biases[k], padding=1))
            name = self.layers[k]
            if name in wanted:
                out[name] = x
        return out


def random_features(seed: int = RANDOM_SEED) -> FeatureExtractor:
    """The built-in extractor: fixed random filters (He-normal weights, small random biases),
    seeded, four single-conv blocks of :data:`RANDOM_WIDTHS` channels with average pooling."""
    g = torch.Generator().manual_seed(int(seed))
    blocks, c_in = [], 3
    for c_out in RANDOM_WIDTHS:
        fan_in = c_in * 9
        w = torch.randn(c_out, c_in, 3, 3, generator=g) * (2.0 / fan_in) ** 0.5
        b = torch.randn(c_out, generator=g) * 0.05
        blocks.append([(w, b)])
        c_in = c_out
    names = [f"conv{k + 1}_1" for k in range(len(RANDOM_WIDTHS))]
    return FeatureExtractor(blocks, "built-in random multi-scale", "avg", (0.45,) * 3,
                            (0.25,) * 3, names, "conv3_1")


def _conv_indices(counts: Sequence[int]) -> list[list[int]]:
    """Indices in torchvision's ``features`` Sequential of each block's convs."""
    idx, out = 0, []
    for n in counts:
        out.append([idx + 2 * i for i in range(n)])  # conv, relu, conv, relu, ...
        idx += 2 * n + 1  # ... and the block's max pool
    return out


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise FeatureError(path, "no such file")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the checks below speak
            warnings.simplefilter("ignore")
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" (it names {found.group(1)})" if found else ""
        raise FeatureError(path, "refused: it holds pickled Python objects, not only tensors"
                                 f"{what}; only a plain state_dict is read") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError, TypeError, KeyError) as e:
        raise FeatureError(path, f"not a PyTorch weights file ({type(e).__name__})") from None
    if not isinstance(sd, dict) or not sd or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise FeatureError(path, "not a state_dict (a dictionary of named tensors)")
    return sd


def vgg_features(path: str | os.PathLike) -> FeatureExtractor:
    """A torchvision VGG-16/19 ``state_dict`` file as a :class:`FeatureExtractor`.

    Checked before use: the ``features.N.weight`` / ``features.N.bias`` keys must be exactly
    those of VGG-16 or VGG-19 (batch-norm variants are refused), every conv weight
    ``[O,I,3,3]`` with ``I`` the previous conv's ``O`` (3 for the first), every bias ``[O]``,
    all finite floats. ``classifier.*`` keys are allowed and ignored. Style layers default to
    ``conv1_2, conv2_2, conv3_3, conv4_3`` (NMR's choice on VGG-16), DeepDream to ``conv4_3``
    (VGG-19: the last conv of each block). Raises :class:`FeatureError`.
    """
    path = Path(path)
    sd = _read_state_dict(path)
    feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    others = [k for k in sd if not k.startswith(("features.", "classifier."))]
    found = sorted({int(k.split(".")[0]) for k in feats if k.split(".")[0].isdigit()})
    variant = None
    for name, counts in VGG_BLOCKS.items():
        idx = _conv_indices(counts)
        if found == [i for block in idx for i in block]:
            variant = name
            break
    if variant is None or others or any(k.count(".") != 1 or k.split(".")[1] not in (
            "weight", "bias") for k in feats):
        extra = f"; unexpected keys such as {others[0]!r}" if others else ""
        raise FeatureError(path, "not a torchvision VGG-16/19 state_dict (expected "
                                 "features.<N>.weight/bias at the VGG conv indices 0, 2, 5, "
                                 f"7, …; found conv indices {found[:8]}{extra})")
    blocks, c_in = [], 3
    for b, block in enumerate(_conv_indices(VGG_BLOCKS[variant])):
        convs = []
        for i, n in enumerate(block):
            w, bias = feats.get(f"{n}.weight"), feats.get(f"{n}.bias")
            where = f"features.{n} (conv{b + 1}_{i + 1})"
            if w is None or bias is None:
                raise FeatureError(path, f"{where}: weight or bias missing")
            if not (w.is_floating_point() and bias.is_floating_point()):
                raise FeatureError(path, f"{where}: not floating-point")
            if w.ndim != 4 or tuple(w.shape[1:]) != (c_in, 3, 3) or tuple(bias.shape) != (
                    w.shape[0],):
                raise FeatureError(path, f"{where}: weight {tuple(w.shape)} / bias "
                                         f"{tuple(bias.shape)}, expected [O,{c_in},3,3] / [O]")
            if not (torch.isfinite(w).all() and torch.isfinite(bias).all()):
                raise FeatureError(path, f"{where}: non-finite values")
            convs.append((w, bias))
            c_in = int(w.shape[0])
        blocks.append(convs)
    last = {"VGG-16": "3", "VGG-19": "4"}[variant]
    return FeatureExtractor(blocks, f"{variant} ({path.name})", "max", _IMAGENET_MEAN,
                            _IMAGENET_STD, ["conv1_2", "conv2_2", f"conv3_{last}",
                                            f"conv4_{last}"], f"conv4_{last}")


_CACHE: dict[tuple, FeatureExtractor] = {}


def load_features(source: str = "random") -> FeatureExtractor:
    """``"random"`` (the built-in extractor) or the path of a VGG-16/19 ``state_dict``.

    A file is read once per (path, size, modification time) in a process: fits rebuilt from
    the same settings share it. Raises :class:`FeatureError`."""
    if source == "random":
        key = ("random",)
    else:
        p = Path(source)
        try:
            st = p.stat()
        except OSError:
            raise FeatureError(p, "no such file") from None
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        ext = random_features() if source == "random" else vgg_features(source)
        _CACHE.clear()  # one at a time: a VGG is half a gigabyte
        _CACHE[key] = ext
    return _CACHE[key]
