"""``restora --version`` and ``restora doctor``: what a user pastes into a bug report."""

from __future__ import annotations

import importlib.util
import json

import pytest

import engine
from engine import assets
from engine.cli import main


def doctor_json(capsys) -> tuple[int, dict]:
    code = main(["doctor", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"restora {engine.__version__}"


def test_doctor_reports_runtimes_data_and_verified_bundled_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    code, report = doctor_json(capsys)
    assert code == 0, report["problems"]
    assert report["problems"] == []
    assert report["restora"]["version"] == engine.__version__
    assert report["data"]["root"] == str(assets.data_root())
    assert set(report["data"]["sample_photos"]) == {p.name for p in assets.samples_dir().iterdir()
                                                   if p.suffix != ".md"}
    assert report["models"]["cache"] == str(tmp_path / "cache")
    assert report["environment"]["RESTORA_CACHE_DIR"] == str(tmp_path / "cache")
    import numpy

    assert report["packages"]["numpy"] == numpy.__version__
    if importlib.util.find_spec("onnxruntime"):
        assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert report["torch"]["installed"] == (importlib.util.find_spec("torch") is not None)
    assert report["device"]["auto"] in ("cpu", "cuda", "mps")
    bundled = {row["id"]: row for row in report["models"]["entries"] if row["bundled"]}
    assert bundled, "the catalog lists no bundled model"
    for row in bundled.values():
        assert row["verified"] is True and row["check"] == "ok", row
        assert row["path"].startswith(str(assets.models_dir()))
    not_installed = [row for row in report["models"]["entries"] if row["status"] == "not-installed"]
    assert all("verified" not in row for row in not_installed)


def test_doctor_text_names_versions_and_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"restora {engine.__version__}")
    assert "Runtimes" in text and "--device auto uses:" in text
    assert str(tmp_path / "cache") in text
    assert "restora-generalist-v2" in text and "bundled, verified sha256" in text
    assert text.rstrip().endswith("No problems found.")


def test_doctor_fails_and_names_a_corrupted_installed_model(tmp_path, monkeypatch, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from engine.weights import WeightsManager

    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    image = ["batch", 3, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, image)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, image)])
    mine = tmp_path / "mine.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(mine))
    _entry, installed = WeightsManager(cache_dir=tmp_path / "cache").import_file(mine, id="mine", tasks=["noise"])
    with open(installed, "r+b") as f:  # same size, different bytes
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, report = doctor_json(capsys)
    assert code == 1
    assert any(p.startswith("model mine:") and "sha256 mismatch" in p for p in report["problems"])
    row = next(r for r in report["models"]["entries"] if r["id"] == "mine")
    assert row["verified"] is False


def test_doctor_without_torch_says_which_models_need_it(tmp_path, monkeypatch, capsys):
    import engine.optional

    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(engine.optional, "missing_torch_packages", lambda: ["torch", "spandrel"])
    code, report = doctor_json(capsys)
    assert code == 0, report["problems"]  # torch is optional: its absence is not a problem
    assert report["torch"] == {"installed": False, "spandrel": False, "note": report["torch"]["note"]}
    assert "pip install 'restora[torch]'" in report["torch"]["note"]
    rows = {r["id"]: r for r in report["models"]["entries"]}
    assert "needs" not in rows["restora-generalist-v2"]  # ONNX: runs on onnxruntime
    if rows["realesrgan-x4plus"]["status"] == "available-from-package":
        assert rows["realesrgan-x4plus"]["needs"] == "restora[torch]"
