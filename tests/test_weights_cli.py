"""`restora models …` through its own argparse wiring (add_parser + run)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import pytest

from engine.cli import models as models_cli
from engine.weights.catalog import load_catalog

from hubserver import DEFAULT_COMMIT, HubServer

CATALOG = """
[[models]]
id = "tiny"
name = "Tiny"
tasks = ["noise"]
architecture = "Compact"
scale = 1
license = "MIT"
size = {size}
sha256 = "{sha}"
format = "pth"
sources = [{{ type = "hub", repo_id = "restora-test/tiny", filename = "tiny.pth", revision = "{commit}" }}]
"""


def _run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="restora")
    sub = parser.add_subparsers(dest="command")
    models_cli.add_parser(sub)
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = models_cli.run(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    data = bytes(i % 251 for i in range(120_000))
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(size=len(data), sha=hashlib.sha256(data).hexdigest(), commit=DEFAULT_COMMIT))
    with HubServer() as server:
        server.add("restora-test/tiny", "tiny.pth", data)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
        yield server, str(catalog), data


def test_list_json_shows_every_catalog_model(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = _run("models", "list", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == load_catalog().ids()
    bundled = {e.id for e in load_catalog() if any(src.type == "bundled" for src in e.sources)}
    from tools.convert_published import BUNDLED

    ours = {"restora-analyser-v1", "restora-analyser-v2", "restora-analyser-v3", "restora-generalist-v2"}
    assert bundled == ours | {m.id for m in BUNDLED}
    # an empty cache: only the models that ship with Restora are installed
    assert all(r["status"] in ("not-installed", "available-from-package") for r in rows if r["id"] not in bundled)
    assert all(r["status"] == "installed" for r in rows if r["id"] in bundled)
    assert {"id", "name", "tasks", "license", "size", "sha256", "status", "path"} <= set(rows[0])


def test_list_table_is_human_readable(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = _run("models", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "SIZE"]
    assert any(line.startswith("scunet-color-real-psnr") and "not-installed" in line for line in lines)
    assert "cache:" in err


def test_download_verify_remove_round_trip(hub):
    server, catalog, data = hub
    code, out, err = _run("models", "--catalog", catalog, "download", "tiny", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and Path(result["path"]).read_bytes() == data

    code, out, _ = _run("models", "--catalog", catalog, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    code, out, _ = _run("models", "--catalog", catalog, "list", "--json")
    assert json.loads(out.splitlines()[0])["status"] == "installed"

    Path(result["path"]).write_bytes(b"x" * len(data))
    code, out, err = _run("models", "--catalog", catalog, "verify", "tiny")
    assert code == 1 and "FAILED" in out and "sha256 mismatch" in out

    code, out, _ = _run("models", "--catalog", catalog, "remove", "tiny", "--json")
    assert code == 0 and json.loads(out)["removed"] == [result["path"]]


def test_offline_download_fails_cleanly(hub, monkeypatch):
    _, catalog, _ = hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = _run("models", "--catalog", catalog, "download", "tiny", "--json")
    assert code == 1
    assert "Traceback" not in err and err.count("\n") == 1
    assert "restora models download tiny" in err
    error = err.strip()[len("restora: "):]
    assert json.loads(out) == {"command": "download", "id": "tiny", "ok": False, "error": error}


def test_import_and_errors(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "mine.safetensors"
    torch.manual_seed(0)
    save_file(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), str(src))

    code, out, err = _run("models", "import", str(src), "--task", "upscale,noise", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["id"] == "mine" and result["architecture"] == "Compact" and result["tasks"] == ["upscale", "noise"]

    code, _, err = _run("models", "import", str(tmp_path / "missing.pth"))
    assert code == 1 and "no such file" in err
    code, _, err = _run("models", "remove", "no-such-model")
    assert code == 1 and "unknown model" in err


def test_missing_subcommand_is_a_usage_error():
    code, _, err = _run("models")
    assert code == 2 and "choose one of" in err
