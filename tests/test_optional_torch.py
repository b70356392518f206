"""torch is optional (``restora[torch]``): without it, asking for a torch model or device gives one
clear line naming the pip command; nothing else needs it. (A real torch-free installation is
exercised by tests/test_wheel_install.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import engine.optional
from engine.errors import ModelError, RestoraError


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setattr(engine.optional, "missing_torch_packages", lambda: ["torch", "spandrel"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loading_a_torch_model_without_torch_names_the_extra(tmp_path, no_torch, suffix):
    from engine.weights.safe_load import identify, load_state_dict

    weights = tmp_path / f"net{suffix}"
    weights.write_bytes(b"\0" * 64)
    for load in (identify, load_state_dict):
        with pytest.raises(engine.optional.TorchRuntimeMissing) as err:
            load(weights)
        assert isinstance(err.value, ModelError)
        assert str(err.value) == (f"model file net{suffix} needs the optional torch runtime (torch and spandrel "
                                  "not installed): pip install 'restora[torch]'")


def test_importing_a_torch_model_without_torch_is_one_line(tmp_path, no_torch, capsys):
    from engine.cli import main

    weights = tmp_path / "net.pth"
    weights.write_bytes(b"\0" * 64)
    assert main(["models", "import", str(weights)]) == 1
    err = capsys.readouterr().err.strip()
    assert "pip install 'restora[torch]'" in err and "Traceback" not in err and "\n" not in err


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_gpu_devices_without_torch_name_the_extra(monkeypatch, device):
    from engine.runtime import device as device_module

    monkeypatch.setattr(device_module, "_torch", lambda: None)
    with pytest.raises(RestoraError, match=r"needs the optional torch runtime.*restora\[torch\]"):
        device_module.choose_device(device)
    assert device_module.choose_device("auto") == "cpu"


def test_without_torch_packaged_torch_models_are_not_converted(tmp_path, no_torch, monkeypatch):
    """Real-ESRGAN ships as ncnn files that convert to a spandrel (torch) model: without torch
    the registry skips the conversion instead of filling the cache with a file it cannot run."""
    from engine.experts.default import build_registry
    from engine.weights import WeightsManager

    manager = WeightsManager(cache_dir=tmp_path / "cache")
    monkeypatch.setattr(manager, "install_from_packages", lambda *a, **k: pytest.fail("converted"))
    registry = build_registry(manager=manager)
    assert "neural.restora-generalist-v2" in registry  # the bundled ONNX generalist needs no torch
    assert not (tmp_path / "cache" / "realesrgan-x4plus").exists()


def test_the_optional_check_imports_nothing():
    import subprocess
    import sys

    code = ("import sys, engine.optional as o; o.torch_runtime_available(); o.missing_torch_packages();"
            "print('torch' in sys.modules, 'spandrel' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_no_runtime_module_imports_torch_at_import_time():
    """Every module of engine/ and app/ imports without loading torch (engine.nets, our torch
    architectures for training and parity tests, is the one exception)."""
    import importlib.util
    import os
    import subprocess
    import sys

    packages = "engine, app" if importlib.util.find_spec("PySide6") else "engine"
    code = (f"import importlib, pkgutil, sys, {packages}\n"
            f"for package in ({packages},):\n"
            "    for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "        if m.name.startswith('engine.nets'):\n"
            "            continue\n"
            "        importlib.import_module(m.name)\n"
            "        if 'torch' in sys.modules or 'spandrel' in sys.modules:\n"
            "            print(m.name)\n"
            "            break\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imports torch when imported: {out.stdout.strip()}"


def test_restoring_with_the_bundled_networks_never_imports_torch(tmp_path):
    """``restora restore`` on a noisy photo (device auto, the default plan: the bundled ONNX
    networks) leaves torch unimported: importing it costs seconds the plan does not need."""
    import os
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    img = np.stack([x / 128, y / 96, 0.5 + 0.2 * np.sin(x / 7)], 2) * 0.8 + rng.normal(0, 0.06, (96, 128, 3))
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    from engine.runtime.device import gpu_possible

    device = "cpu" if gpu_possible() else "auto"  # with a GPU driver, auto rightly asks torch
    code = ("import sys\nfrom engine.cli import main\n"
            f"rc = main(['restore', {str(tmp_path / 'in.png')!r}, '-o', {str(tmp_path / 'out')!r}, '--json',"
            f" '--device', {device!r}])\n"
            "print('RC', rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"stages"' in out.stdout and any('"expert": "neural.' in line for line in out.stdout.splitlines()), \
        "no network ran: the check would prove nothing"
    assert out.stdout.strip().splitlines()[-1] == "RC 0 False"


def test_the_frozen_application_points_to_the_torch_build(no_torch, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(engine.optional.TorchRuntimeMissing, match=r"installer/build\.sh --torch") as err:
        engine.optional.require_torch_runtime("model file net.pth")
    assert "pip install" not in str(err.value)
