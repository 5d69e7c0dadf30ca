"""docs/api.md cannot drift from the code: its module table names every export of
``render_core`` (``__all__``), and every name the table lists exists in the module of its row."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import render_core as rc

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _table() -> dict[str, set[str]]:
    """``{module: names}`` from the rows ``| `module.py` | `name`, ... |`` of the table."""
    rows: dict[str, set[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`([\w/]+)\.py`\s*\|(.*)\|\s*$", line)
        if not m:
            continue
        cell = m.group(2)
        while re.search(r"\([^()]*\)", cell):  # signatures and remarks, not names
            cell = re.sub(r"\([^()]*\)", "", cell)
        names = {n for n in re.findall(r"`([A-Za-z_]\w*)`", cell) if not n.endswith("_py")}
        rows[m.group(1).replace("/", ".")] = names
    return rows


def test_the_table_is_found():
    assert len(_table()) >= 5


def test_every_export_is_documented():
    documented = set().union(*_table().values())
    missing = sorted(set(rc.__all__) - documented)
    assert not missing, f"in render_core.__all__ but not in docs/api.md: {missing}"


def test_every_documented_name_exists():
    wrong = []
    for module, names in _table().items():
        mod = rc if module == "__init__" else importlib.import_module(f"render_core.{module}")
        wrong += [f"{module}.{n}" for n in sorted(names) if not hasattr(mod, n)]
    assert not wrong, f"in docs/api.md but not in their module: {wrong}"
