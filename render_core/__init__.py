"""render_core: the DIB-R differentiable renderer (no Qt, no OpenGL).

``import render_core as rc``; see ``docs/api.md`` for the conventions and every op's contract.
"""

# First: OpenMP reads its wait policy once, when torch loads it (see _omp.py).
from . import _omp  # noqa: F401

# isort: split
from . import losses
from ._native import empty_cache, is_deterministic, set_deterministic
from .antialias import antialias, antialias_topology
from .bake import bake_vertex_colors, prepare_export, texture_to_vertex_colors
from .camera import Camera
from .camera_io import (
    CameraFileError,
    CameraRecord,
    SparseModel,
    cameras_from_records,
    read_colmap,
    read_transforms,
    records_from_cameras,
    write_colmap_binary,
    write_colmap_text,
    write_transforms,
)
from .color import linear_to_srgb, srgb_to_linear
from .distortion import DistortionError, distort_points, undistort_image, undistort_points
from .features import FeatureError, FeatureExtractor, load_features, random_features, vgg_features
from .fit import FitConfig, Fitter, ParamGroup, StepResult, TargetView
from .image_io import ImageError, open_image
from .interpolate import interpolate, sample_texture
from .io_utils import atomic_path, atomic_write_bytes, atomic_write_text
from .large_steps import AdamUniform, LargeStepsError, SmoothParameterization
from .limits import Limits, get_limits, set_limits
from .mesh import Mesh, MeshError, load_mesh, save_mesh
from .nmr import nmr_edges
from .objectives import OBJECTIVE_TERMS, objective_spec
from .primitives import cube, icosphere, uv_sphere
from .rasterize import (
    DEFAULT_SIGMA,
    Fragments,
    available_backends,
    rasterize,
    soft_silhouette,
)
from .remesh import ContinuousRemesher, RemeshError, RemeshResult, adapt_edge_length, remesh
from .renderer import EDGES, MODELS, SHADINGS, Renderer, RenderOutput
from .resolution_schedule import format_resolution_schedule, parse_resolution_schedule, pixel_size
from .scene_normalize import SceneTransform, normalize_scene, umeyama
from .shading import (
    LIGHT_KIND,
    DirectionalLight,
    PhongMaterial,
    SHLight,
    face_normals,
    lambertian,
    light_kind,
    phong,
    sh_irradiance,
    vertex_normals,
)
from .shape_metrics import chamfer_l2, f_score, normalize_unit_radius
from .shape_presets import SHAPE_PRESETS, shape_fit_config
from .softras import softras
from .texture_project import project_texture
from .uv import generate_uvs, weld_seams
from .visual_hull import VisualHullError, carve_voxels, visual_hull

__version__ = "0.1.0"

__all__ = [
    "antialias",
    "antialias_topology",
    "EDGES",
    "MODELS",
    "softras",
    "nmr_edges",
    "CameraFileError",
    "CameraRecord",
    "SparseModel",
    "cameras_from_records",
    "read_colmap",
    "read_transforms",
    "records_from_cameras",
    "write_colmap_binary",
    "write_colmap_text",
    "write_transforms",
    "DistortionError",
    "distort_points",
    "undistort_image",
    "undistort_points",
    "AdamUniform",
    "LargeStepsError",
    "SmoothParameterization",
    "ContinuousRemesher",
    "RemeshError",
    "RemeshResult",
    "adapt_edge_length",
    "remesh",
    "SceneTransform",
    "normalize_scene",
    "umeyama",
    "chamfer_l2",
    "f_score",
    "normalize_unit_radius",
    "VisualHullError",
    "carve_voxels",
    "visual_hull",
    "format_resolution_schedule",
    "parse_resolution_schedule",
    "pixel_size",
    "SHAPE_PRESETS",
    "shape_fit_config",
    "Camera",
    "FitConfig",
    "ImageError",
    "Limits",
    "Fitter",
    "ParamGroup",
    "StepResult",
    "TargetView",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "DEFAULT_SIGMA",
    "DirectionalLight",
    "LIGHT_KIND",
    "Fragments",
    "Mesh",
    "MeshError",
    "PhongMaterial",
    "RenderOutput",
    "Renderer",
    "SHADINGS",
    "SHLight",
    "available_backends",
    "bake_vertex_colors",
    "cube",
    "empty_cache",
    "face_normals",
    "get_limits",
    "generate_uvs",
    "icosphere",
    "interpolate",
    "is_deterministic",
    "lambertian",
    "light_kind",
    "linear_to_srgb",
    "load_mesh",
    "losses",
    "open_image",
    "phong",
    "prepare_export",
    "project_texture",
    "rasterize",
    "sample_texture",
    "save_mesh",
    "set_deterministic",
    "set_limits",
    "sh_irradiance",
    "soft_silhouette",
    "srgb_to_linear",
    "texture_to_vertex_colors",
    "uv_sphere",
    "vertex_normals",
    "weld_seams",
    # style transfer and DeepDream (issue 18)
    "FeatureError",
    "FeatureExtractor",
    "load_features",
    "random_features",
    "vgg_features",
    "OBJECTIVE_TERMS",
    "objective_spec",
]


def __getattr__(name: str):
    # The neural shaders load on first use (`rc.rendernet`): they need the optional
    # `rendernet` extra and shipped weights that plain rendering never touches.
    if name == "rendernet":
        import importlib

        return importlib.import_module(".rendernet", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
