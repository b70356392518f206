"""Hub downloads through huggingface_hub against a local server that answers like the hub."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections import namedtuple
from pathlib import Path

import pytest

from engine.errors import Cancelled, ModelError
from engine.progress import CancelToken
from engine.weights import ModelStatus, WeightsManager
from engine.weights.catalog import parse_catalog
from engine.weights.transfer import TransferLimits

from hubserver import DEFAULT_COMMIT, HubServer

REPO = "restora-test/tiny"
FILE = "tiny.pth"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
        # huggingface_hub reads HF_HUB_OFFLINE once, at import (conftest sets it for the suite).
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        yield server


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 9)) & 0xFF for i in range(n))


def _catalog(data: bytes, sha256: str | None = None, unverified: str = ""):
    digest = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
    return parse_catalog({"models": [{
        "id": "tiny", "name": "Tiny", "tasks": ["noise"], "architecture": "Compact", "scale": 1,
        "license": "MIT", "size": len(data) if digest else 0, "sha256": digest, "format": "pth",
        **({"unverified": unverified} if unverified else {}),
        "sources": [{"type": "hub", "repo_id": REPO, "filename": FILE, "revision": DEFAULT_COMMIT}],
    }]})


def _cache_files(cache: Path) -> list[str]:
    """Files in the cache, except verified.json (the manager's memo of digests already checked)."""
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")
                  if p.is_file() and p.name != "verified.json")


def test_download_verifies_and_installs(hub, tmp_path):
    data = _payload(300_000)
    hub.add(REPO, FILE, data)
    manager = WeightsManager(catalog=_catalog(data))
    assert manager.cache_dir == tmp_path / "cache"  # RESTORA_CACHE_DIR read at construction
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED

    fractions = []
    path = manager.download("tiny", progress=lambda f, msg: fractions.append(f))

    assert path == tmp_path / "cache" / "tiny" / FILE
    assert path.read_bytes() == data
    assert manager.status("tiny") is ModelStatus.INSTALLED
    assert [(e.id, p) for e, p in manager.installed_models()] == [("tiny", path)]
    assert manager.path_for("tiny") == path
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)
    record = json.loads((tmp_path / "cache" / "registry.json").read_text())["models"]["tiny"]
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["verified_by"] == "catalog"
    assert _cache_files(tmp_path / "cache") == ["registry.json", f"tiny/{FILE}"]  # staging cleaned up
    heads = [p for m, p, _ in hub.requests if m == "HEAD"]
    assert heads and set(heads) == {f"/{REPO}/resolve/{DEFAULT_COMMIT}/{FILE}"}  # only the pinned revision

    requests_before = len(hub.requests)
    assert manager.download("tiny") == path  # already installed: no network
    assert len(hub.requests) == requests_before


def test_sha256_mismatch_deletes_the_file_and_reports(hub, tmp_path):
    data = _payload(200_000)
    hub.add(REPO, FILE, data)
    expected = hashlib.sha256(b"the real file").hexdigest()
    manager = WeightsManager(catalog=_catalog(_payload(200_000, seed=1), sha256=expected))

    with pytest.raises(ModelError) as info:
        manager.download("tiny")

    message = str(info.value)
    assert expected in message and hashlib.sha256(data).hexdigest() in message and "deleted" in message
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED
    assert manager.installed_models() == []
    assert _cache_files(tmp_path / "cache") == []


def test_interrupted_download_resumes_with_a_range_request(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)  # whole chunks reach the disk early
    data = _payload(1_000_000)
    hub.add(REPO, FILE, data, cut_after=400_000)
    manager = WeightsManager(catalog=_catalog(data))

    path = manager.download("tiny")

    gets = hub.gets(FILE)
    assert len(gets) == 2
    assert "range" not in gets[0]
    start = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 400_000
    assert path.read_bytes() == data
    assert manager.verify("tiny")[0].ok


def test_offline_mode_gives_one_clear_message(hub):
    data = _payload(1000)
    hub.add(REPO, FILE, data)
    os.environ["HF_HUB_OFFLINE"] = "1"  # monkeypatch (in the fixture) restores it
    manager = WeightsManager(catalog=_catalog(data))

    with pytest.raises(ModelError) as info:
        manager.download("tiny")
    message = str(info.value)
    for part in ("'tiny'", FILE, REPO, "HF_HUB_OFFLINE", "restora models download tiny", "restora models import"):
        assert part in message
    assert "\n" not in message
    assert hub.requests == []

    with pytest.raises(ModelError, match="not installed.*HF_HUB_OFFLINE.*tiny.pth"):
        manager.require("tiny")


def test_unreachable_hub_gives_a_clear_message(hub, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # nothing listens there
    manager = WeightsManager(catalog=_catalog(_payload(10)))

    with pytest.raises(ModelError) as info:
        manager.download("tiny")
    message = str(info.value)
    assert "cannot reach" in message and FILE in message and "restora models download tiny" in message


def test_disk_space_shortage_is_refused_before_downloading(hub, monkeypatch):
    data = _payload(5000)
    hub.add(REPO, FILE, data)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    manager = WeightsManager(catalog=_catalog(data))

    with pytest.raises(ModelError, match="not enough disk space for 'tiny'"):
        manager.download("tiny")
    assert hub.gets(FILE) == []

    # An unverified entry has no size in the catalog: the hub's answer is used.
    unverified = WeightsManager(catalog=_catalog(data, sha256="", unverified="no digest"))
    with pytest.raises(ModelError, match="not enough disk space for 'tiny'"):
        unverified.download("tiny", allow_unverified=True)
    assert hub.gets(FILE) == []


def test_missing_file_on_the_hub_is_reported(hub):
    manager = WeightsManager(catalog=_catalog(_payload(10)))
    with pytest.raises(ModelError, match=f"{FILE} not found in {REPO}"):
        manager.download("tiny")


def test_unverified_entry_needs_an_explicit_opt_in(hub, tmp_path):
    data = _payload(4000)
    hub.add(REPO, FILE, data)
    manager = WeightsManager(catalog=_catalog(data, sha256="", unverified="no digest published"))

    with pytest.raises(ModelError, match="no verified sha256.*--allow-unverified"):
        manager.download("tiny")
    assert hub.requests == []

    path = manager.download("tiny", allow_unverified=True)
    record = json.loads((tmp_path / "cache" / "registry.json").read_text())["models"]["tiny"]
    assert record["verified_by"] == "first-use" and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert manager.verify("tiny")[0].ok

    path.write_bytes(data[:-1] + b"\x00")  # later tampering is caught against the recorded digest
    assert not manager.verify("tiny")[0].ok
    assert WeightsManager(catalog=_catalog(data, sha256="", unverified="x")).path_for("tiny") is None


def test_cancel_stops_the_download_and_leaves_nothing(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    data = _payload(400_000)
    hub.add(REPO, FILE, data)
    manager = WeightsManager(catalog=_catalog(data))
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.2:
            token.cancel()

    with pytest.raises(Cancelled):
        manager.download("tiny", progress=progress, cancel=token)
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED
    assert _cache_files(tmp_path / "cache") == []


def test_verify_and_remove(hub, tmp_path):
    data = _payload(50_000)
    hub.add(REPO, FILE, data)
    manager = WeightsManager(catalog=_catalog(data))
    path = manager.download("tiny")

    path.write_bytes(b"\xff" + data[1:])  # same size, different content
    result = manager.verify("tiny")[0]
    assert not result.ok and result.status is ModelStatus.CORRUPT and "mismatch" in result.message
    assert manager.status("tiny") is ModelStatus.CORRUPT
    assert manager.path_for("tiny") is None
    with pytest.raises(ModelError, match="corrupt"):
        manager.require("tiny")

    assert manager.remove("tiny") == [path]
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED
    assert _cache_files(tmp_path / "cache") == ["registry.json"]
    with pytest.raises(ModelError, match="not installed"):
        manager.remove("tiny")


def test_unknown_model_id_suggests_close_matches(hub):
    manager = WeightsManager(catalog=_catalog(_payload(10)))
    with pytest.raises(ModelError, match="unknown model 'tinny'.*tiny"):
        manager.download("tinny")


FAST = TransferLimits(connect_timeout_s=2.0, stall_window_s=0.5, stall_min_bytes=1024, total_timeout_s=20.0,
                      retries=3, retry_pause_s=0.05)


def test_a_dripping_hub_is_reported_as_a_stall_in_bounded_time(hub, tmp_path):
    data = _payload(100_000)
    hub.add(REPO, FILE, data, drip=(1, 0.05))  # 20 bytes/s: never a socket timeout, never done
    manager = WeightsManager(catalog=_catalog(data), limits=FAST)
    t0 = time.monotonic()
    with pytest.raises(ModelError) as info:
        manager.download("tiny")
    message = str(info.value)
    assert time.monotonic() - t0 < 10
    assert "stalled" in message and "cannot reach" not in message and "'tiny'" in message
    assert len(hub.gets(FILE)) == 4  # bounded: the first try and 3 retries


def test_overall_time_limit_from_the_environment(hub, monkeypatch):
    data = _payload(400_000)
    hub.add(REPO, FILE, data, drip=(4096, 0.02))  # steady ~200 kB/s: no stall, 2 s in all
    monkeypatch.setenv("RESTORA_DOWNLOAD_TIMEOUT", "0.5")
    manager = WeightsManager(catalog=_catalog(data), limits=TransferLimits(stall_window_s=0.5, stall_min_bytes=1024))
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="did not finish within 0 s|did not finish within 1 s"):
        manager.download("tiny")
    assert time.monotonic() - t0 < 3


def test_connection_cut_at_half_is_one_warning_line_and_resumes(hub, caplog):
    data = _payload(1_000_000)
    hub.add(REPO, FILE, data, cut_after=500_000)
    manager = WeightsManager(catalog=_catalog(data), limits=FAST)

    with caplog.at_level(logging.INFO):
        path = manager.download("tiny")

    assert path.read_bytes() == data
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "connection lost at 0.5 MB of 1.0 MB (50 %); resuming (retry 1 of 3)" \
        in warnings[0], warnings
    assert [g.get("range") for g in hub.gets(FILE)] == [None, "bytes=500000-"]
