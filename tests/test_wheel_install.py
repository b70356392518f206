"""Install anywhere: the wheel carries everything the embedded default needs (bundled models,
catalog, samples, icons, style sheet, desktop entry) and works outside the checkout, offline,
without torch.

The wheel is built from a copy of the source tree (setuptools, no build isolation, no index),
then installed with ``--no-deps --no-index`` into a fresh virtual environment outside the
checkout. Its dependencies come from this test's own environment through a folder of links
that leaves out the optional torch runtime (torch, torchvision, spandrel, triton, the CUDA
libraries), the GUI (PySide6) and Restora's editable install: the environment of
``pip install 'restora[neural]'``, with no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from testdata import REPO

pytestmark = pytest.mark.slow

#: Beginnings of installed names (packages, modules, dist-info folders) left out of the new environment.
LEFT_OUT = ("torch", "torchvision", "torchgen", "functorch", "spandrel", "triton", "nvidia", "cuda",
            "pyside6", "shiboken6", "restora", "__editable__", "_distutils_hack", "distutils-precedence")
#: The source tree's folders that must reach the wheel whole.
SHIPPED = {"models": "engine/assets/models", "resources": "engine/assets/resources"}
SKIP_COPY = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", "restored", ".cache", "runs"}


def _source_files() -> list[str]:
    """Files of the checkout that a clone has (tracked, or untracked but not ignored)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                if p.is_file() and not SKIP_COPY.intersection(p.relative_to(REPO).parts)
                and not any(part.endswith(".egg-info") for part in p.parts)]


def _left_out(name: str) -> bool:
    return name.lower().startswith(LEFT_OUT)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd[0]} {cmd[1:3]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", minversion="77")
    work = tmp_path_factory.mktemp("wheel-build")
    src = work / "src"
    for rel in _source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", work / "dist", src], cwd=work, env=env)
    (found,) = (work / "dist").glob("restora-*.whl")
    return found


def test_the_wheel_holds_every_shipped_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _source_files()
    for folder, packaged in SHIPPED.items():
        files = [f for f in tracked if f.startswith(folder + "/") and "__pycache__" not in f]
        assert files, folder
        missing = [f for f in files if packaged + f[len(folder):] not in names]
        assert not missing, f"not in the wheel: {missing}"
    for module in ("engine/__init__.py", "engine/assets/__init__.py", "engine/cli/doctor.py", "app/main.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("tests/", "training/", "benchmarks/"))]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """``(venv folder, environment, working folder)`` of the wheel installed outside the checkout."""
    base = tmp_path_factory.mktemp("installed")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = base / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not _left_out(entry.name) and entry.name != "__pycache__":
            (deps / entry.name).symlink_to(entry)
    (site / "restora_test_deps.pth").write_text(str(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", RESTORA_CACHE_DIR=str(base / "cache"), PYTHONDONTWRITEBYTECODE="1")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
         cwd=base, env=env)
    check = subprocess.run([sys.executable, "-m", "pip", "--python", python, "check"], cwd=base, env=env,
                           capture_output=True, text=True)
    assert not [line for line in check.stdout.splitlines() if line.lower().startswith("restora ")], check.stdout
    work = base / "work"
    work.mkdir()
    return env_dir, env, work


def test_installed_restora_runs_from_the_package_without_torch(installed):
    env_dir, env, work = installed
    version = _run([env_dir / "bin" / "restora", "--version"], cwd=work, env=env).stdout.strip()
    import engine

    assert version == f"restora {engine.__version__}"
    code = ("import sys, engine, engine.cli, engine.experts.default; from engine import assets;"
            "print(engine.__file__); print(assets.location()); print(assets.data_root());"
            "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('PySide6') is None);"
            "from engine.analysis.learned import default_model_path; print(default_model_path())")
    where, location, root, no_torch, analyser = _run([env_dir / "bin" / "python", "-c", code], cwd=work,
                                                     env=env).stdout.splitlines()
    assert Path(where).is_relative_to(env_dir) and location == "package" and Path(root).is_relative_to(env_dir)
    assert no_torch == "True True"
    assert Path(analyser).is_file() and Path(analyser).is_relative_to(env_dir)
    for name in ("icons/restora.svg", "icons/restora-256.png", "style/restora.qss", "restora.desktop"):
        assert (Path(root) / "resources" / name).is_file(), name


def test_installed_doctor_reports_the_package_and_no_torch(installed):
    env_dir, env, work = installed
    report = json.loads(_run([env_dir / "bin" / "restora", "doctor", "--json"], cwd=work, env=env).stdout)
    assert report["problems"] == []
    assert report["data"]["location"] == "package"
    assert Path(report["restora"]["package"]).is_relative_to(env_dir)
    assert report["torch"]["installed"] is False and "restora[torch]" in report["torch"]["note"]
    assert report["packages"]["torch"] is None and report["packages"]["PySide6-Essentials"] is None
    assert report["onnxruntime"]["installed"] is True
    bundled = [row for row in report["models"]["entries"] if row["bundled"]]
    assert bundled and all(row["verified"] and Path(row["path"]).is_relative_to(env_dir) for row in bundled)
    text = _run([env_dir / "bin" / "restora", "doctor"], cwd=work, env=env).stdout
    assert str(REPO) not in text


def test_installed_restora_restores_the_bundled_samples_offline(installed):
    from PIL import Image

    env_dir, env, work = installed
    samples = Path(json.loads(_run([env_dir / "bin" / "restora", "doctor", "--json"], cwd=work,
                                   env=env).stdout)["data"]["samples"])
    assert samples.is_relative_to(env_dir)
    photos = sorted(p for p in samples.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    assert len(photos) >= 4
    proc = _run([env_dir / "bin" / "restora", "restore", samples, "-o", "restored", "--json"], cwd=work, env=env)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert sorted(Path(r["input"]).name for r in results) == [p.name for p in photos]
    assert all(r["error"] is None for r in results), proc.stderr
    for photo in photos:
        out = work / "restored" / photo.name
        with Image.open(photo) as before, Image.open(out) as after:
            assert after.size == before.size
    models = {stage.get("model") for r in results for stage in r["stages"]}
    # which bundled network runs depends on the plan (FFDNet for noise, IAT for low light, the
    # generalist for rain …); at least one must have run, from the installed package
    assert models - {None}, "no bundled ONNX network ran from the package"
    assert "Traceback" not in proc.stderr
