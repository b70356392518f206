"""Importing users' model files: spandrel identification, ONNX checks, safe loading only."""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")

from safetensors.torch import save_file  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.weights import ModelStatus, WeightsManager  # noqa: E402
from engine.weights.catalog import parse_catalog  # noqa: E402
from engine.weights.safe_load import check_onnx, identify, load_state_dict  # noqa: E402


def _tiny_model(scale: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return Compact(num_feat=8, num_conv=2, upscale=scale).eval()


def _empty_catalog():
    return parse_catalog({"models": []})


@pytest.fixture
def manager(tmp_path):
    return WeightsManager(cache_dir=tmp_path / "cache", catalog=_empty_catalog())


class _Evil:
    """Unpickling this would create ``marker`` (open(path, "w")) — a safe loader must refuse first."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_import_safetensors_identifies_the_architecture(manager, tmp_path):
    model = _tiny_model(scale=2)
    src = tmp_path / "My Upscaler.safetensors"
    save_file(model.state_dict(), str(src))

    entry, path = manager.import_file(src)

    assert entry.id == "my-upscaler" and entry.architecture == "Compact" and entry.scale == 2
    assert entry.tasks == ("upscale",) and entry.format == "safetensors"
    assert path.parent == manager.cache_dir / "my-upscaler" and path.read_bytes() == src.read_bytes()
    assert [(e.id, p) for e, p in manager.installed_models()] == [("my-upscaler", path)]
    assert manager.status("my-upscaler") is ModelStatus.INSTALLED
    record = json.loads((manager.cache_dir / "registry.json").read_text())["models"]["my-upscaler"]
    assert record["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert manager.verify("my-upscaler")[0].ok
    # A fresh manager sees the import through the registry.
    again = WeightsManager(cache_dir=manager.cache_dir, catalog=_empty_catalog())
    assert again.path_for("my-upscaler") == path


def test_import_pth_with_wrapped_state_dict(manager, tmp_path):
    model = _tiny_model(scale=1)
    src = tmp_path / "denoiser.pt"
    torch.save({"params_ema": model.state_dict()}, str(src))

    entry, path = manager.import_file(src, tasks=["noise"], name="My denoiser")

    assert entry.architecture == "Compact" and entry.scale == 1 and entry.tasks == ("noise",)
    assert entry.name == "My denoiser"
    assert path.suffix == ".pth"  # never left as .pt, which some loaders treat as TorchScript
    loaded = load_state_dict(path)
    assert set(loaded) == set(model.state_dict())


def test_import_onnx_is_checked(manager, tmp_path):
    model = _tiny_model(scale=2)
    src = tmp_path / "exported.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.rand(1, 3, 16, 16), str(src), dynamo=False,
                          input_names=["x"], output_names=["y"])

    info = check_onnx(src)
    assert info.inputs[0][1] == (1, 3, 16, 16) and info.outputs[0][1] == (1, 3, 32, 32)
    entry, path = manager.import_file(src)
    assert entry.format == "onnx" and entry.scale == 2 and path.suffix == ".onnx"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".onnx"])
def test_garbage_files_are_refused(manager, tmp_path, suffix):
    src = tmp_path / f"garbage{suffix}"
    src.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ModelError) as info:
        manager.import_file(src)
    assert "garbage" in str(info.value) and "\n" not in str(info.value)
    assert manager.installed_models() == []


def test_unknown_architecture_is_refused(manager, tmp_path):
    src = tmp_path / "mystery.safetensors"
    save_file({"encoder.block.weight": torch.zeros(4, 4), "head.bias": torch.zeros(4)}, str(src))
    with pytest.raises(ModelError, match="unknown architecture"):
        manager.import_file(src)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"1")
    with pytest.raises(ModelError, match="unsupported file type"):
        manager.import_file(other)
    assert manager.installed_models() == []


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_without_running(manager, tmp_path, writer):
    marker = tmp_path / "pwned.txt"
    src = tmp_path / "evil.pth"
    payload = {"conv.weight": torch.zeros(1), "trap": _Evil(marker)}
    if writer == "torch.save":
        torch.save(payload, str(src))
    else:
        with open(src, "wb") as f:
            pickle.dump(payload, f, protocol=2)

    with pytest.raises(ModelError, match="refusing to load evil.pth"):
        manager.import_file(src)
    with pytest.raises(ModelError):
        load_state_dict(src)
    assert not marker.exists()
    assert manager.installed_models() == []
    assert not (manager.cache_dir / "evil").exists()


def test_file_matching_a_catalog_digest_installs_as_that_entry(tmp_path):
    model = _tiny_model(scale=2)
    src = tmp_path / "downloaded-by-hand.safetensors"
    save_file(model.state_dict(), str(src))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    catalog = parse_catalog({"models": [
        {"id": "known-upscaler", "name": "Known", "tasks": ["upscale"], "architecture": "Compact", "scale": 2,
         "license": "MIT", "size": src.stat().st_size, "sha256": digest, "format": "safetensors",
         "sources": [], "upstream": "https://example.org/known.safetensors"},
        {"id": "vouched", "name": "Vouched", "tasks": ["noise"], "architecture": "Compact", "scale": 2,
         "license": "MIT", "size": 0, "sha256": "", "unverified": "no digest", "format": "safetensors",
         "sources": [], "upstream": "https://example.org/"},
    ]})
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=catalog)
    assert manager.status("known-upscaler") is ModelStatus.NOT_INSTALLED

    entry, path = manager.import_file(src)
    assert entry.id == "known-upscaler" and manager.path_for("known-upscaler") == path

    with pytest.raises(ModelError, match="is the catalog's 'known-upscaler'"):
        manager.import_file(src, id="something-else")

    other = tmp_path / "other.safetensors"
    save_file(_tiny_model(scale=4).state_dict(), str(other))
    entry, _ = manager.import_file(other, id="vouched")  # the user vouches for an unverified entry
    assert entry.id == "vouched" and manager.status("vouched") is ModelStatus.INSTALLED


def test_duplicate_import_id_is_refused(manager, tmp_path):
    src = tmp_path / "net.safetensors"
    save_file(_tiny_model().state_dict(), str(src))
    manager.import_file(src)
    with pytest.raises(ModelError, match="already imported"):
        manager.import_file(src)
    manager.remove("net")
    assert manager.installed_models() == []


def test_identify_reports_size_requirements(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file(_tiny_model(scale=4).state_dict(), str(src))
    ident = identify(src)
    assert ident.architecture == "Compact" and ident.scale == 4 and ident.size_multiple >= 1
    assert ident.parameters == sum(p.numel() for p in _tiny_model(scale=4).parameters())
