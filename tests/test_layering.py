"""The dependency rules: render_core and studio.model work without Qt, pyqtgraph and moderngl.

The import-linter contracts in pyproject.toml check the static imports (scripts/test.sh runs
``lint-imports``); this test checks the modules at run time, every one of them, with the GUI
packages made unimportable, so an import hidden inside a function body is caught as well when
it runs at import time.
"""

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import render_core
import studio.batch
import studio.model

GUI = ("PyQt6", "moderngl", "pyqtgraph")


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


@pytest.mark.parametrize("package", [render_core, studio.model, studio.batch],
                         ids=lambda p: p.__name__)
def test_every_module_imports_without_the_gui_packages(package):
    names = _modules(package)
    assert len(names) > 5, names  # the walk found the package's modules
    code = (f"import importlib, sys\n"
            f"for m in {GUI!r}: sys.modules[m] = None\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {GUI!r} and sys.modules[m]]\n"
            f"assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_blocked_gui_import_is_noticed():
    # The check above can fail: importing a Qt module with the GUI packages blocked raises.
    code = (f"import sys\nfor m in {GUI!r}: sys.modules[m] = None\nimport studio.qt.panels\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "halted; None in sys.modules" in run.stderr


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    exe = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pyproject.toml [test])"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([exe], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout
