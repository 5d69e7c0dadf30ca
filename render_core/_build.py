"""The native C++/CUDA extension: building, caching and loading it, and which backends exist.

The extension (``csrc/``) is compiled just in time with ``torch.utils.cpp_extension.load`` on
first use, never at import, and cached across runs under ``~/.cache/dibr-studio/ext/`` (or
``$DIBR_EXT_DIR``) in a directory named after the torch version and a hash of the sources and
flags, so an edited source or a new torch rebuilds. Two variants exist: ``cpu`` (always tried)
and ``cuda`` (the same kernels plus the CUDA driver; built only with a CUDA build of torch and
nvcc, and used only when a GPU is present or when asked for by ``build_ext --cuda``).

A build is published atomically: the library counts as built only once a ``complete`` record
naming it and its size has been renamed into place after the link, so a process never imports a
library another one is still writing (or a killed build left truncated); builds of one cache
directory are serialized by an OS file lock, which dies with its holder.

When the build fails (no compiler, ...) only the ``torch`` backend is available and
``backend="auto"`` warns once, giving the reason. ``DIBR_NO_EXT=1`` disables native backends.
The autograd ops that call the built module live in ``_native.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

_CSRC = Path(__file__).resolve().parent.parent / "csrc"
_SOURCES = ["bindings.cpp", "raster_cpu.cpp"]
_CUDA_SOURCES = ["raster_cuda.cu"]
_HEADERS = [
    "dibr_math.h",
    "cpu_range.h",
    "dibr_kernels.h",
    "soft_kernels.h",
    "soft_cpu.h",
    "vis_cpu.h",
    "raster_ops.h",
    "group_ops.h",
    "frag_kernels.h",
    "frag_ops.h",
    "frag_cpu.h",
    "aa_kernels.h",
    "aa_ops.h",
    "loss_kernels.h",
    "loss_cpu.h",
    "loss_ops.h",
    "shade_kernels.h",
    "shade_ops.h",
    "nmr_kernels.h",
    "nmr_ops.h",
    "softras_kernels.h",
    "softras_ops.h",
    "mesh_kernels.h",
    "mesh_ops.h",
]
# No fused multiply-adds: the kernels then round exactly like the torch reference.
# The C++ standard is left to torch (2.14 needs C++20, older ones add C++17 themselves).
_CFLAGS = ["-O3", "-fopenmp", "-ffp-contract=off"]
_CUDA_CFLAGS = ["-O3", "--fmad=false"]
_DEFAULT_ARCH = "8.0;9.0"

_lock = threading.RLock()
_modules: dict[str, ModuleType | None] = {}  # variant -> module (None: build failed)
_errors: dict[str, str] = {}  # variant -> one-line reason of the failure
_warned = False


def _disabled() -> bool:
    return os.environ.get("DIBR_NO_EXT", "").strip() not in ("", "0")


def _cuda_buildable() -> str | None:
    """None if the CUDA variant can be compiled here, else why not."""
    if torch.version.cuda is None:
        return "torch is a CPU-only build"
    from torch.utils.cpp_extension import CUDA_HOME

    home = os.environ.get("CUDA_HOME") or CUDA_HOME
    if not home or not Path(home, "bin", "nvcc").exists():
        return "nvcc not found (set CUDA_HOME)"
    return None


def build_dir(variant: str) -> Path:
    """Cache directory of a variant: <root>/<torch version>-<variant>-<hash of sources+flags>."""
    root = os.environ.get("DIBR_EXT_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "dibr-studio" / "ext"
    h = hashlib.sha256()
    files = _SOURCES + _HEADERS + (_CUDA_SOURCES if variant == "cuda" else [])
    for name in files:
        h.update(name.encode())
        h.update((_CSRC / name).read_bytes())
    h.update(repr((_CFLAGS, _CUDA_CFLAGS, sys.version_info[:2])).encode())
    if variant == "cuda":
        h.update(os.environ.get("TORCH_CUDA_ARCH_LIST", _DEFAULT_ARCH).encode())
    return base / f"{torch.__version__.replace('+', '_')}-{variant}-{h.hexdigest()[:12]}"


COMPLETE = "complete"
"""Name of the record of a finished build in its cache directory: "<library file> <size>"."""


def complete_library(directory: Path) -> Path | None:
    """The library of a finished, fully written build in ``directory``, or None.

    None when no build was published there, or when the library on disk is not the one the
    record names at the size it names (truncated, or being rewritten).
    """
    try:
        fname, size = (directory / COMPLETE).read_text().split()
        lib = directory / fname
        if lib.stat().st_size == int(size):
            return lib
    except (OSError, ValueError):
        pass
    return None


def _publish(directory: Path, lib: Path) -> None:
    """Record ``lib`` as the finished build of ``directory`` (atomic rename of the record)."""
    tmp = directory / f"{COMPLETE}.{os.getpid()}.tmp"
    tmp.write_text(f"{lib.name} {lib.stat().st_size}\n")
    os.replace(tmp, directory / COMPLETE)


@contextlib.contextmanager
def _exclusive(directory: Path):
    """Hold the OS lock of a cache directory (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    with open(directory / "build.flock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _import_library(name: str, path: Path) -> ModuleType:
    """Import the extension module ``name`` from the library file ``path``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(variant: str, force: bool = False, verbose: bool = False) -> ModuleType:
    """Compile (or load from the cache) one variant of the extension; raises on failure."""
    from torch.utils import cpp_extension

    # ninja is a pip dependency: make the venv's bin directory visible even when not activated.
    scripts = sysconfig.get_path("scripts")
    if scripts and scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    cpp_extension.verify_ninja_availability()
    name = f"dibr_render_core_{variant}"
    directory = build_dir(variant)
    lib = None if force else complete_library(directory)
    if lib is not None:
        # The directory is keyed by a hash of the sources and flags, so a published library in
        # it is current: import it directly, without any lock (a process killed while holding
        # one, such as a fit child the studio ends, must not make later starts wait).
        return _import_library(name, lib)
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        lib = None if force else complete_library(directory)
        if lib is not None:  # another process finished the build while this one waited
            return _import_library(name, lib)
        return _build_locked(variant, name, directory, force, verbose)


def _build_locked(variant: str, name: str, directory: Path, force: bool, verbose: bool):
    """Compile into ``directory`` (its OS lock held), publish the library, return the module."""
    from torch.utils import cpp_extension

    (directory / COMPLETE).unlink(missing_ok=True)
    for path in directory.iterdir():
        if force and path.name != "build.flock":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif path.name.startswith(name) and path.suffix == ".so":
            path.unlink()  # unpublished: a build killed while linking, or still being written
    sources = [str(_CSRC / s) for s in _SOURCES]
    kwargs = {}
    if variant == "cuda":
        why = _cuda_buildable()
        if why is not None:
            raise RuntimeError(f"cannot build the CUDA extension: {why}")
        # Without an explicit list load() inspects the (absent) GPU and crashes.
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", _DEFAULT_ARCH)
        sources += [str(_CSRC / s) for s in _CUDA_SOURCES]
        kwargs["extra_cuda_cflags"] = _CUDA_CFLAGS
    # Every builder of this directory holds its OS lock, so a lock file of cpp_extension's own
    # left here belongs to a killed process: it would make load() wait forever.
    (directory / "lock").unlink(missing_ok=True)
    fresh = not any(directory.glob("*.o"))
    if fresh:
        print(
            f"render_core: compiling the native {variant} extension (first use, about a minute)",
            file=sys.stderr,
            flush=True,
        )
    defines = ["-DDIBR_WITH_CUDA"] if variant == "cuda" else []
    module = cpp_extension.load(
        name=name,
        sources=sources,
        extra_cflags=_CFLAGS + defines,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(_CSRC)],
        build_directory=str(directory),
        with_cuda=variant == "cuda",
        verbose=verbose,
        **kwargs,
    )
    built = sorted(directory.glob(f"{name}*.so"))
    if built:
        _publish(directory, built[0])
    return module


def load_variant(variant: str, force: bool = False, verbose: bool = False) -> ModuleType:
    """The built module of ``variant`` ("cpu" or "cuda"), building it if needed; raises."""
    with _lock:
        if force:
            _modules.pop(variant, None)
        if variant in _modules and _modules[variant] is not None:
            return _modules[variant]  # type: ignore[return-value]
        if variant in _modules:
            raise RuntimeError(_errors[variant])
        try:
            _modules[variant] = _build(variant, force=force, verbose=verbose)
        except Exception as exc:  # noqa: BLE001 - any build failure means "fall back"
            _modules[variant] = None
            _errors[variant] = f"building the native {variant} extension failed: {_reason(exc)}"
            raise RuntimeError(_errors[variant]) from exc
        return _modules[variant]  # type: ignore[return-value]


# A compiler or linker diagnostic: "file.cpp:12:5: error: ...", "fatal error: ...",
# "file.cu(12): error: ...", "collect2: error: ...", "error C2065: ...".
_DIAGNOSTIC = re.compile(r"(?:^|[\s:)])(?:fatal )?error(?: [A-Z]+\d+)?:", re.IGNORECASE)


def _reason(exc: BaseException) -> str:
    """One line out of a build failure: the first compiler error if there is one.

    ``cpp_extension.load`` raises "Error building extension '<name>': <ninja's output>", whose
    first lines echo the compiler command; the compiler's own first ``error:`` line says what
    went wrong. Without one (a compiler that fails silently), the failed ninja step is named.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    first = lines[0]
    if first.startswith("Error building extension") and ": " in first:
        head = first.split(": ", 1)[0]
        for ln in lines:
            if _DIAGNOSTIC.search(ln) and not ln.startswith(("Error building", "[")):
                return ln[:300]
        failed = next((ln for ln in lines if ln.startswith("FAILED:")), None)
        return f"{head}: {failed}"[:300] if failed else head[:300]
    errors = [ln for ln in lines if "error" in ln.lower() and not ln.startswith("[")]
    return (errors or lines)[0][:300]


def native_module(backend: str) -> ModuleType | None:
    """The module serving ``backend`` ("cpu"/"cuda"), or None when unavailable."""
    if _disabled():
        return None
    # With a GPU, one CUDA build serves both devices; otherwise build the quick CPU variant.
    variant = "cuda" if torch.cuda.is_available() and _cuda_buildable() is None else "cpu"
    if backend == "cuda" and variant != "cuda":
        return None
    try:
        return load_variant(variant)
    except RuntimeError:
        return None


def _why_not(backend: str) -> str:
    if _disabled():
        return "DIBR_NO_EXT is set"
    if backend == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if backend == "cuda" and _cuda_buildable() is not None:
        return str(_cuda_buildable())
    return next(iter(_errors.values()), "the native extension is not built")


def available_backends() -> list[str]:
    """Names of the backends usable in this process (builds the extension on first call)."""
    names = ["torch"]
    if native_module("cpu") is not None:
        names.append("cpu")
        if torch.cuda.is_available() and native_module("cuda") is not None:
            names.append("cuda")
    return names


def resolve_backend(name: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete backend for tensors on ``device``; validate explicit names."""
    global _warned
    known = ("auto", "torch", "cpu", "cuda")
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; choose one of {known}")
    if name == "auto":
        native = "cuda" if device.type == "cuda" else "cpu"
        if native in available_backends():
            return native
        if not _warned:
            warnings.warn(
                f"render_core: native '{native}' backend not available ({_why_not(native)}), "
                "using the torch backend",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned = True
        return "torch"
    if name not in available_backends():
        raise RuntimeError(
            f"backend {name!r} is not available ({_why_not(name)}); have {available_backends()}"
        )
    return name


def build_seconds(variant: str, force: bool = False, verbose: bool = False) -> float:
    """Build (or load) ``variant`` and return the wall time it took."""
    start = time.perf_counter()
    load_variant(variant, force=force, verbose=verbose)
    return time.perf_counter() - start
