"""Layering rules that keep the architecture easy to see (DESIGN.md): engine/ never imports Qt,
and importing the engine has no side effects such as loading Qt or torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from testdata import REPO

QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "qtpy")


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_never_imports_qt():
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        bad = [m for m in imported_modules(path) if m.split(".")[0] in QT_MODULES]
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {', '.join(bad)}")
    assert not offenders, "engine/ must not import Qt:\n" + "\n".join(offenders)


def test_importing_the_engine_loads_neither_qt_nor_torch():
    code = ("import sys, engine.pipeline, engine.imageio, engine.analysis, engine.experts.default, engine.cli;"
            "print(','.join(m for m in ('PySide6', 'torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == ""


def test_shipped_files_are_found_through_engine_assets_only():
    """No module builds a path from its own location (``__file__``): in a wheel or the desktop
    folder the source tree is not there. ``engine.assets`` is the one place that knows where
    models/ and resources/ are (package data, or the checkout)."""
    offenders = []
    for path in sorted(list((REPO / "engine").rglob("*.py")) + list((REPO / "app").rglob("*.py"))):
        if path == REPO / "engine" / "assets" / "__init__.py":
            continue
        if "__file__" in path.read_text(encoding="utf-8"):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, "use engine.assets instead of __file__ in:\n" + "\n".join(offenders)
