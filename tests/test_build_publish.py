"""The extension cache publishes a build atomically: a library that is not (or no longer) the
complete one a finished build recorded is rebuilt, never imported.

The compiler is replaced by a fake ``cpp_extension.load`` that writes a library file, and the
import by a recorder, so these tests run in milliseconds and need no timing.
"""

from __future__ import annotations

import pytest
from torch.utils import cpp_extension

from render_core import _build

NAME = "dibr_render_core_cpu"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache root; records of the fake builds and imports."""
    monkeypatch.setenv("DIBR_EXT_DIR", str(tmp_path))
    directory = _build.build_dir("cpu")
    events: list[tuple] = []

    def fake_load(name, build_directory, **kwargs):
        lib = directory / f"{name}.so"
        events.append(("build", lib.exists(), (directory / "lock").exists()))
        lib.write_bytes(b"\x7fELF" + bytes(4096))  # the linker's complete output
        return "built-module"

    def fake_import(name, path):
        events.append(("import", path, path.stat().st_size))
        return "imported-module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setattr(_build, "_import_library", fake_import)
    return directory, events


def test_truncated_library_without_record_is_rebuilt(cache):
    directory, events = cache
    directory.mkdir(parents=True)
    (directory / f"{NAME}.so").write_bytes(b"\x7fELF")  # a link cut short ("file too short")
    (directory / "lock").touch()  # and the lock file of the killed builder
    assert _build.complete_library(directory) is None
    assert _build._build("cpu") == "built-module"
    # The partial library and the dead lock were gone before the build started.
    assert events == [("build", False, False)]
    assert _build.complete_library(directory) == directory / f"{NAME}.so"
    # The published build is imported as it is, without building again.
    assert _build._build("cpu") == "imported-module"
    assert events[1] == ("import", directory / f"{NAME}.so", 4100)


def test_library_changed_after_publishing_is_rebuilt(cache):
    directory, events = cache
    assert _build._build("cpu") == "built-module"
    lib = _build.complete_library(directory)
    assert lib is not None
    lib.write_bytes(lib.read_bytes()[:100])  # truncated (another writer, a full disk...)
    assert _build.complete_library(directory) is None
    assert _build._build("cpu") == "built-module"
    assert [e[0] for e in events] == ["build", "build"]
    assert _build.complete_library(directory) == lib


def test_record_naming_a_missing_library_is_not_trusted(cache):
    directory, events = cache
    directory.mkdir(parents=True)
    (directory / _build.COMPLETE).write_text(f"{NAME}.so 4100\n")
    assert _build.complete_library(directory) is None
    assert _build._build("cpu") == "built-module"
    assert events == [("build", False, False)]
