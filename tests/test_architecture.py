"""Layering rules that keep the architecture easy to see (DESIGN.md): engine/ never imports Qt or
app/, importing the engine has no side effects such as loading Qt or torch, app/ does no image
math, and the front ends restore only through the orchestrator (the definitions are the
constants below)."""

from __future__ import annotations

import ast
import subprocess
import sys

from testdata import REPO

QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "qtpy")

#: Libraries that compute on pixels. app/ leaves that to the engine, except :data:`DISPLAY_MODULE`.
IMAGE_LIBRARIES = ("cv2", "scipy", "PIL", "skimage", "torch", "torchvision", "onnxruntime", "spandrel", "numba")
#: The one app module that turns engine pixels into something Qt paints (8-bit, QImage).
DISPLAY_MODULE = "app/imaging.py"
#: Engine modules that compute on pixels; app/ reaches them only through the pipeline.
ENGINE_PIXEL_MODULES = ("engine.experts.classical", "engine.nets", "engine.degrade", "engine.convert",
                        "engine.runtime.tiling", "engine.runtime.torch_backend", "engine.runtime.onnx_backend",
                        "engine.analysis.measurements", "engine.analysis.noise_level", "engine.color")
#: The numpy an app/ module (other than :data:`DISPLAY_MODULE`) may use: dtypes, array creation,
#: contiguous copies of engine-made arrays, and the scaling of the histogram curve (counts, not
#: pixels). Anything else (np.mean, np.clip, np.fft, np.linalg, ``@``, …) is image math.
#: The front ends: they restore only through ``engine.pipeline`` 's Orchestrator (or the
#: ``Restorer`` built on it), so the CLI, the batch queue and the window decide alike.
FRONT_ENDS = ("app", "engine/cli")
#: What a front end may take from the planning and orchestration modules: data and parsers, not
#: the rules (``build_plan``, ``best_expert``, ``run_plan``, ``judge``, …).
FRONT_END_PLAN_NAMES = frozenset({"Plan", "Stage", "PlanChoices", "STAGE_NAMES", "SPECIALIST_ORDER",
                                  "parse_kind_list", "parse_strength_settings"})
#: Calls only the orchestrator makes: running a stage, or building a session past it.
ORCHESTRATOR_ONLY_CALLS = frozenset({"run_stage", "RestorationSession"})
APP_NUMPY = frozenset({"ndarray", "uint8", "float32", "ascontiguousarray", "arange", "linspace", "tile", "ceil",
                       "sqrt", "minimum"})


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


def _is_under(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _absolute_imports(path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_engine_never_imports_the_app():
    offenders = [f"{path.relative_to(REPO)}: {', '.join(sorted(bad))}"
                 for path in sorted((REPO / "engine").rglob("*.py"))
                 if (bad := {m for m in _absolute_imports(path) if _is_under(m, ("app",))})]
    assert not offenders, "engine/ must not import app/:\n" + "\n".join(offenders)


def test_the_app_does_no_image_math():
    offenders = []
    for path in sorted((REPO / "app").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        imports = _absolute_imports(path)
        libraries = {m for m in imports if _is_under(m, IMAGE_LIBRARIES)}
        if libraries and not (rel == DISPLAY_MODULE and {m.split(".")[0] for m in libraries} <= {"cv2"}):
            offenders.append(f"{rel}: imports {', '.join(sorted(libraries))}")
        engine_math = {m for m in imports if _is_under(m, ENGINE_PIXEL_MODULES)}
        if engine_math:
            offenders.append(f"{rel}: imports {', '.join(sorted(engine_math))} (go through engine.pipeline)")
        if rel == DISPLAY_MODULE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                offenders.append(f"{rel}:{node.lineno}: matrix product")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"
                    and node.attr not in APP_NUMPY):
                offenders.append(f"{rel}:{node.lineno}: np.{node.attr}")
    assert not offenders, "image math belongs in engine/ (see IMAGE_LIBRARIES, APP_NUMPY):\n" + "\n".join(offenders)


def test_the_cli_and_the_app_restore_through_the_orchestrator():
    offenders = []
    for front in FRONT_ENDS:
        for path in sorted((REPO / front).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for module in _absolute_imports(path):
                owner, _, name = module.rpartition(".")
                if owner in ("engine.pipeline.plan", "engine.pipeline.orchestrator", "engine.pipeline.session") \
                        and name not in FRONT_END_PLAN_NAMES and name[:1].islower():
                    offenders.append(f"{rel}: imports {module}")
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                    if name in ORCHESTRATOR_ONLY_CALLS:
                        offenders.append(f"{rel}:{node.lineno}: calls {name} (the orchestrator's job)")
    assert not offenders, "front ends go through engine.pipeline.Orchestrator / Restorer:\n" + "\n".join(offenders)
