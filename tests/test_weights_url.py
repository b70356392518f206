"""``url`` catalog sources (an exact file an author published, e.g. a GitHub release asset):
download through the manager's staging → size + sha256 → rename path, against a local server."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import pytest

from engine.errors import Cancelled, ModelError
from engine.progress import CancelToken
from engine.weights import ModelStatus, UrlSource, WeightsManager
from engine.weights.catalog import CatalogError, load_catalog, parse_catalog
from engine.weights.manager import mirrored_url
from engine.weights.transfer import Failure, TransferError, TransferLimits

from urlserver import UrlServer, closed_port

URL = "https://github.com/restora-test/weights/releases/download/v1.0/tiny.pth"
FILE = "tiny.pth"
SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
#: Fast limits for tests: a stall is declared after 0.5 s with < 1 kB, retries pause 0.05 s.
FAST = TransferLimits(connect_timeout_s=2.0, stall_window_s=0.5, stall_min_bytes=1024, total_timeout_s=20.0,
                      retries=3, retry_pause_s=0.05)


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RESTORA_URL_MIRROR", raising=False)
    with UrlServer() as s:
        yield s


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 9)) & 0xFF for i in range(n))


def _entry(model_id: str, url: str, data: bytes, fmt: str = "pth", sha256: str | None = None) -> dict:
    return {"id": model_id, "name": model_id, "tasks": ["noise"], "architecture": "test", "scale": 1,
            "license": "MIT", "size": len(data), "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "format": fmt, "sources": [{"type": "url", "url": url, "size": len(data),
                                        "sha256": sha256 or hashlib.sha256(data).hexdigest()}]}


def _manager(server, data: bytes, limits: TransferLimits = FAST, **kw) -> WeightsManager:
    return WeightsManager(catalog=parse_catalog({"models": [_entry("tiny", URL, data, **kw)]}),
                          url_mirror=server.url, limits=limits)


def _cache_files(cache: Path) -> list[str]:
    """Files in the cache, except verified.json (the manager's memo of digests already checked)."""
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")
                  if p.is_file() and p.name != "verified.json")


# ---------------------------------------------------------------------------- catalog


def test_catalog_reads_a_url_source_spelled_as_documented(tmp_path):
    sha = "ab" * 32
    url = "https://github.com/cszn/DnCNN/raw/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a/model/DnCNN3.mat"
    path = tmp_path / "catalog.toml"
    path.write_text(f'''[[models]]
id = "dncnn3"
name = "DnCNN-3"
tasks = ["noise", "jpeg"]
architecture = "DnCNN"
scale = 1
license = "none stated"
size = 2771543
sha256 = "{sha}"
format = "mat"
sources = [
  {{ type = "url", url = "{url}", size = 2771543, sha256 = "{sha}" }},
]
''')
    entry = load_catalog(path).get("dncnn3")
    (source,) = entry.sources
    assert isinstance(source, UrlSource) and source.filename == "DnCNN3.mat" and source.host == "github.com"
    assert source.size == 2771543 and source.sha256 == sha and entry.format == "mat"


@pytest.mark.parametrize("source, problem", [
    ({"type": "url", "url": "http://github.com/a/b/raw/c/w.pth", "size": 5, "sha256": "ab" * 32}, "https"),
    ({"type": "url", "url": "https://github.com/", "size": 5, "sha256": "ab" * 32}, "one file"),
    ({"type": "url", "url": "https://github.com/a/w.pth", "size": 5}, "missing field"),
    ({"type": "url", "url": "https://github.com/a/w.pth", "sha256": "ab" * 32}, "missing field"),
    ({"type": "url", "url": "https://github.com/a/w.pth", "size": 5, "sha256": "AB" * 32},
     "64 lowercase"),
    ({"type": "url", "url": "https://github.com/a/w.pth", "size": 0, "sha256": "ab" * 32}, "size"),
])
def test_catalog_refuses_a_url_source_without_an_exact_file(source, problem):
    entry = _entry("x", "https://github.com/a/w.pth", b"12345")
    entry["sources"] = [source]
    with pytest.raises(CatalogError, match=problem):
        parse_catalog({"models": [entry]})


def test_mirror_keeps_host_and_path_and_defaults_to_the_environment(monkeypatch):
    url = "https://github.com/o/r/raw/0123/model/w.mat"
    assert mirrored_url(url, None) == url
    assert mirrored_url(url, "http://127.0.0.1:9/") == "http://127.0.0.1:9/github.com/o/r/raw/0123/model/w.mat"
    monkeypatch.setenv("RESTORA_URL_MIRROR", "http://mirror.local")
    assert mirrored_url(url) == "http://mirror.local/github.com/o/r/raw/0123/model/w.mat"
    assert mirrored_url(url, "") == url  # an explicit empty mirror means the original host


# ---------------------------------------------------------------------------- downloads


def test_download_verifies_then_renames_into_the_cache(server, tmp_path):
    data = _payload(300_000)
    server.add_url(URL, data, redirect=True)  # like a GitHub release asset: 302 to a CDN
    manager = _manager(server, data)
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED

    fractions = []
    path = manager.download("tiny", progress=lambda f, msg: fractions.append(f))

    assert path == tmp_path / "cache" / "tiny" / FILE and path.read_bytes() == data
    assert manager.status("tiny") is ModelStatus.INSTALLED and manager.path_for("tiny") == path
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    record = json.loads((tmp_path / "cache" / "registry.json").read_text())["models"]["tiny"]
    assert record["origin"] == "url" and record["source"] == URL and record["verified_by"] == "catalog"
    assert _cache_files(tmp_path / "cache") == ["registry.json", f"tiny/{FILE}"]
    assert [p for m, p, _ in server.requests] == ["/github.com/restora-test/weights/releases/download/v1.0/tiny.pth",
                                                   "/redirected/github.com/restora-test/weights/releases/download/"
                                                   "v1.0/tiny.pth"]
    before = len(server.requests)
    assert manager.download("tiny") == path and len(server.requests) == before  # installed: no network


def test_mirror_from_the_environment(server, monkeypatch):
    data = _payload(5000)
    server.add_url(URL, data)
    monkeypatch.setenv("RESTORA_URL_MIRROR", server.url)
    manager = WeightsManager(catalog=parse_catalog({"models": [_entry("tiny", URL, data)]}), limits=FAST)
    assert manager.download("tiny").read_bytes() == data


def test_wrong_file_is_deleted_and_reported(server, tmp_path):
    good, bad = _payload(100_000), _payload(100_000, seed=3)
    server.add_url(URL, bad)
    manager = _manager(server, good)
    with pytest.raises(ModelError, match="not the catalog's file.*deleted") as info:
        manager.download("tiny")
    assert hashlib.sha256(bad).hexdigest() in str(info.value)
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED
    assert _cache_files(tmp_path / "cache") == []


def test_a_file_of_the_wrong_size_is_refused_before_it_is_read(server, tmp_path):
    data = _payload(100_000)
    server.add_url(URL, data + b"extra")
    with pytest.raises(TransferError, match="100005 bytes, but the catalog's file has 100000") as info:
        _manager(server, data).download("tiny")
    assert info.value.failure is Failure.INCOMPLETE
    assert _cache_files(tmp_path / "cache") == []


def test_connection_cut_at_half_resumes_with_one_range_request_and_one_line(server, caplog):
    data = _payload(1_000_000)
    server.add_url(URL, data, cut_after=500_000)
    manager = _manager(server, data)

    with caplog.at_level(logging.INFO):
        path = manager.download("tiny")

    assert path.read_bytes() == data
    gets = server.gets(FILE)
    assert len(gets) == 2 and "range" not in gets[0] and gets[1]["range"] == "bytes=500000-"
    retry_lines = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(retry_lines) == 1, retry_lines
    assert re.search(r"connection lost at 0\.5 MB of 1\.0 MB \(50 %\); resuming \(retry 1 of 3\)", retry_lines[0])


def test_a_failed_download_keeps_its_prefix_and_the_next_call_resumes(server, tmp_path):
    data = _payload(800_000)
    server.add_url(URL, data, cut_after=300_000)
    once = TransferLimits(**{**FAST.__dict__, "retries": 0})
    manager = _manager(server, data, limits=once)

    with pytest.raises(TransferError, match="gave up at 0.3 MB of 0.8 MB.*again to resume") as info:
        manager.download("tiny")
    assert info.value.failure is Failure.CUT
    assert _cache_files(tmp_path / "cache") == [f".staging/tiny/{FILE}.part"]
    assert manager.status("tiny") is ModelStatus.NOT_INSTALLED

    path = manager.download("tiny")

    assert path.read_bytes() == data
    assert server.gets(FILE)[-1]["range"] == "bytes=300000-"
    assert _cache_files(tmp_path / "cache") == ["registry.json", f"tiny/{FILE}"]


def test_a_server_that_ignores_range_restarts_from_zero(server):
    data = _payload(600_000)
    server.add_url(URL, data, cut_after=200_000, ignore_range=True)
    path = _manager(server, data).download("tiny")
    assert path.read_bytes() == data and len(server.gets(FILE)) == 2


def test_unreachable_host_gives_one_offline_line_at_once(server, tmp_path):
    data = _payload(1000)
    manager = WeightsManager(catalog=parse_catalog({"models": [_entry("tiny", URL, data)]}),
                             url_mirror=f"http://127.0.0.1:{closed_port()}", limits=FAST)
    t0 = time.monotonic()
    with pytest.raises(ModelError) as info:
        manager.download("tiny")
    message = str(info.value)
    assert time.monotonic() - t0 < 5  # no retries against a host that is not there
    assert "cannot download 'tiny'" in message and "cannot be reached (offline? Connection refused)" in message
    assert "restora models import PATH --id tiny" in message and "\n" not in message
    assert _cache_files(tmp_path / "cache") == []


def test_missing_file_is_reported_with_its_status(server):
    data = _payload(1000)
    with pytest.raises(TransferError, match=r"HTTP 404 \(not found\) for tiny.pth") as info:
        _manager(server, data).download("tiny")
    assert info.value.failure is Failure.HTTP and info.value.status == 404


def test_a_dripping_server_is_reported_as_a_stall_in_bounded_time(server, tmp_path):
    data = _payload(200_000)
    server.add_url(URL, data, drip=(1, 0.05))  # 20 bytes/s: never a socket timeout, never done
    t0 = time.monotonic()
    with pytest.raises(TransferError) as info:
        _manager(server, data).download("tiny")
    elapsed = time.monotonic() - t0
    assert info.value.failure is Failure.STALLED
    assert "stalled 4 times and gave up" in str(info.value) and "cannot reach" not in str(info.value)
    assert elapsed < 10, elapsed
    assert len(server.gets(FILE)) == 4  # the first try and 3 bounded retries, each resumed


def test_the_overall_time_limit_stops_a_slow_but_steady_download(server):
    data = _payload(400_000)
    server.add_url(URL, data, drip=(4096, 0.02))  # ~200 kB/s: no stall, but 2 s in all
    slow = TransferLimits(**{**FAST.__dict__, "total_timeout_s": 0.6})
    t0 = time.monotonic()
    with pytest.raises(TransferError, match=r"did not finish within 1 s \(the overall limit") as info:
        _manager(server, data, limits=slow).download("tiny")
    assert info.value.failure is Failure.TIMEOUT and time.monotonic() - t0 < 3


def test_cancel_stops_the_download_and_leaves_nothing(server, tmp_path):
    data = _payload(400_000)
    server.add_url(URL, data, drip=(8192, 0.01))
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.2:
            token.cancel()

    with pytest.raises(Cancelled):
        _manager(server, data).download("tiny", progress=progress, cancel=token)
    assert _cache_files(tmp_path / "cache") == []


def test_cli_download_of_an_unreachable_url_source_is_one_line(server, tmp_path, monkeypatch, capsys):
    from engine.cli import main

    data = _payload(1000)
    catalog = tmp_path / "catalog.toml"
    sha = hashlib.sha256(data).hexdigest()
    catalog.write_text(f'''[[models]]
id = "tiny"
name = "Tiny"
tasks = ["noise"]
architecture = "test"
scale = 1
license = "MIT"
size = {len(data)}
sha256 = "{sha}"
format = "pth"
sources = [{{ type = "url", url = "{URL}", size = {len(data)}, sha256 = "{sha}" }}]
''')
    monkeypatch.setenv("RESTORA_URL_MIRROR", f"http://127.0.0.1:{closed_port()}")
    rc = main(["models", "--catalog", str(catalog), "download", "tiny"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "cannot be reached (offline? Connection refused)" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


# ---------------------------------------------------------------------------- the real published files


def _provenance() -> list[tuple[str, str, str]]:
    """``(file under ../shared/weights, published URL, sha256)`` rows of PROVENANCE.md."""
    text = (SHARED_WEIGHTS / "PROVENANCE.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([^`]+)` \|[^|]*\| `(https://[^`]+)`[^|]*\| ([0-9a-f]{64}) \|", text, re.M)


@pytest.mark.skipif(not (SHARED_WEIGHTS / "PROVENANCE.md").is_file(), reason="../shared/weights is not present")
def test_real_published_weights_download_and_verify_from_their_urls(server, tmp_path):
    rows = _provenance()
    assert len(rows) >= 7, rows
    models = []
    for i, (name, url, sha) in enumerate(rows):
        path = SHARED_WEIGHTS / name
        server.add_url(url, path, redirect="/releases/download/" in url)
        fmt = {".mat": "mat", ".pth": "pth"}[path.suffix]
        entry = _entry(f"real-{i}", url, path.read_bytes(), fmt=fmt, sha256=sha)
        models.append(entry)
    manager = WeightsManager(catalog=parse_catalog({"models": models}), url_mirror=server.url, limits=FAST)

    for entry, (name, _url, sha) in zip(models, rows, strict=True):
        installed = manager.download(entry["id"])
        assert installed.name == Path(name).name
        assert hashlib.sha256(installed.read_bytes()).hexdigest() == sha
        assert manager.status(entry["id"]) is ModelStatus.INSTALLED
    assert {v.model_id for v in manager.verify() if v.ok} == {m["id"] for m in models}


def test_require_names_the_url_and_not_the_hub_switch(server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # about Hugging Face only: says nothing about a url source
    manager = _manager(server, _payload(1000))
    with pytest.raises(ModelError) as info:
        manager.require("tiny")
    message = str(info.value)
    assert f"tiny.pth (from {URL}) is missing" in message and "HF_HUB_OFFLINE" not in message
    assert server.requests == []  # require() never downloads from the network
