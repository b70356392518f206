"""The weights manager: what is installed, downloads, package conversion, verification, import.

Cache layout (default ``platformdirs.user_cache_dir("restora")/models``; ``RESTORA_CACHE_DIR``
overrides it, read when the manager is created)::

    <cache>/registry.json          what is installed here, with digests (engine.weights.registry)
    <cache>/verified.json          sha256 already checked per file stamp (size, mtime, ctime, inode)
    <cache>/<model id>/<file>      one folder per installed model
    <cache>/.staging/<model id>/   downloads and conversions in progress (removed afterwards,
                                   except a failed download's ``<file>.part``, resumed next time)

Rules: a file becomes visible in the cache only after its sha256 matched (download to staging,
verify, then ``os.replace``); a mismatching download is deleted and reported. Catalog entries
without a verified digest are refused unless the caller passes ``allow_unverified=True``; the
digest is then recorded on first use and checked from then on. Bundled files (under the
repository's ``models/``) are used in place after a hash check.
"""

from __future__ import annotations

import difflib
import enum
import importlib.util
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from ..errors import Cancelled, ModelError, RestoraError
from ..progress import CancelToken, Progress, ProgressCallback
from ..units import format_bytes
from . import hub
from .catalog import BundledSource, Catalog, HubSource, ModelEntry, PackageSource, UrlSource, load_catalog
from .registry import read_registry, write_registry
from .transfer import Failure, TransferError, TransferLimits, fetch_to_file
from .probe import probe_descriptor, probe_onnx
from .safe_load import (ONNX_SUFFIXES, PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, check_onnx, describe, load_descriptor,
                        sha256_file)

log = logging.getLogger(__name__)

CACHE_ENV = "RESTORA_CACHE_DIR"
#: File in the cache remembering verified digests by file stamp (see WeightsManager.status).
VERIFIED_NAME = "verified.json"
#: Base URL of a mirror for ``url`` catalog sources (see :func:`mirrored_url`).
URL_MIRROR_ENV = "RESTORA_URL_MIRROR"
#: Kept free beyond a download's own size, bytes.
DISK_MARGIN = 64 * 1024 * 1024
_STAGING = ".staging"


class ModelStatus(str, enum.Enum):
    INSTALLED = "installed"
    NOT_INSTALLED = "not-installed"
    CORRUPT = "corrupt"
    PACKAGE = "available-from-package"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of hashing one installed model. ``expected`` is "" when no reference digest exists."""

    model_id: str
    ok: bool
    status: ModelStatus
    path: Optional[Path]
    expected: str
    actual: str
    message: str


def default_cache_dir() -> Path:
    """``$RESTORA_CACHE_DIR`` if set, else the platform's user cache folder + ``restora/models``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("restora", appauthor=False)) / "models"


def repository_root() -> Path:
    """The folder holding ``models/`` (bundled sources are relative to it): the installed
    package's data folder or the source checkout (:func:`engine.assets.data_root`)."""
    from ..assets import data_root

    return data_root()


class WeightsManager:
    """Installed models, downloads and imports for one cache folder.

    ``catalog``: a :class:`Catalog`, a path to a catalog TOML, or ``None`` for the default.
    ``url_mirror``: see :func:`mirrored_url` (tests point it at a local server). ``limits``: the
    downloads' time limits and retries (:class:`engine.weights.transfer.TransferLimits`).
    Methods raise :class:`ModelError` (one line, for the user) on failure and
    :class:`engine.errors.Cancelled` when a cancel token fires.
    """

    def __init__(self, cache_dir: Optional[Union[str, Path]] = None,
                 catalog: Optional[Union[Catalog, str, Path]] = None,
                 repo_root: Optional[Union[str, Path]] = None, url_mirror: Optional[str] = None,
                 limits: Optional[TransferLimits] = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
        self.repo_root = Path(repo_root) if repo_root is not None else repository_root()
        self._lock = threading.RLock()
        self._digests: dict[tuple, str] = {}
        self._stamps: Optional[dict[str, dict[str, Any]]] = None
        #: Base URL standing in for every ``url`` source's host (``None``: ``$RESTORA_URL_MIRROR``
        #: when the download starts, else the original host); see :func:`mirrored_url`.
        self.url_mirror = url_mirror
        #: Time limits and retries of every download (``None``: the defaults of TransferLimits).
        self.limits = limits

    # ----------------------------------------------------------------- queries
    def entry(self, model_id: str) -> ModelEntry:
        """The catalog entry, or a synthesised entry for an imported model; unknown ids raise."""
        found = self.catalog.get(model_id)
        if found is not None:
            return found
        record = self._records().get(model_id)
        if record is not None:
            return _entry_from_record(model_id, record)
        known = self.known_ids()
        close = difflib.get_close_matches(model_id, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `restora models list` shows the known models"
        raise ModelError(f"unknown model '{model_id}'{hint}")

    def known_ids(self) -> list[str]:
        """Catalog ids in catalog order, then imported ids."""
        ids = self.catalog.ids()
        return ids + sorted(k for k in self._records() if k not in self.catalog)

    def status(self, model_id: str) -> ModelStatus:
        """``INSTALLED`` only while the installed file's sha256 matches its reference digest.

        The digest is computed once per file version and remembered in ``<cache>/verified.json``
        against the file's size, mtime, ctime and inode, so later calls (and later runs) cost a
        ``stat``; any change to the file — one flipped byte, even with its mtime put back — makes
        it hashed again, and a mismatch is ``CORRUPT``.
        """
        entry = self.entry(model_id)
        found = self._installed_file(entry)
        if found is not None:
            path, expected_sha, expected_size = found
            try:
                st = path.stat()
            except OSError:
                return ModelStatus.CORRUPT
            if expected_size and st.st_size != expected_size:
                return ModelStatus.CORRUPT
            if expected_sha:
                try:
                    if self._digest(path) != expected_sha:
                        return ModelStatus.CORRUPT
                except OSError:
                    return ModelStatus.CORRUPT
            return ModelStatus.INSTALLED
        if any(isinstance(s, PackageSource) and _package_files(s) is not None for s in entry.sources):
            return ModelStatus.PACKAGE
        return ModelStatus.NOT_INSTALLED

    def check_intact(self, model_id: str) -> Path:
        """The installed file of ``model_id`` if its sha256 still matches (a ``stat`` when it was
        verified before); else a :class:`ModelError` saying it is damaged or missing. Experts call
        this right before loading a model, so a file changed after the registry was built is
        never loaded."""
        path = self.path_for(model_id)
        if path is not None:
            return path
        if self.status(model_id) is ModelStatus.CORRUPT:
            raise ModelError(f"model '{model_id}' is damaged (its file no longer matches its sha256); not "
                             f"loading it. {self.repair_hint(model_id)}")
        raise ModelError(f"model '{model_id}' is not installed")

    def repair_hint(self, model_id: str) -> str:
        """How to replace a damaged model: download it again, or re-import a user's file."""
        if model_id in self.catalog and self.entry(model_id).sources:
            return f"Run `restora models download {model_id} --force`"
        return (f"Run `restora models remove {model_id}` and import the file again "
                f"(`restora models import PATH --id {model_id}`)")

    def damaged_models(self) -> list[str]:
        """Ids whose installed file fails its sha256 check (see :meth:`status`)."""
        return [m for m in self.known_ids() if self.status(m) is ModelStatus.CORRUPT]

    def installed_models(self) -> list[tuple[ModelEntry, Path]]:
        """``(entry, file)`` for every model whose file is present and not known to be corrupt.

        The file's suffix tells its format: ``.safetensors``, ``.pth`` or ``.onnx`` (models
        converted from a package are stored as ``.safetensors``).
        """
        out = []
        for model_id in self.known_ids():
            entry = self.entry(model_id)
            if self.status(model_id) is ModelStatus.INSTALLED:
                found = self._installed_file(entry)
                if found is not None:
                    out.append((entry, found[0]))
        return out

    def path_for(self, model_id: str, verify: bool = True) -> Optional[Path]:
        """The installed file for ``model_id``, or ``None`` when it is missing or corrupt.

        The sha256 is checked by :meth:`status` (hashed once per file version, ~1 s per 300 MB,
        then remembered by stamp); a mismatching file is never returned. ``verify`` is kept for
        callers of the older signature: the check is always made.
        """
        entry = self.entry(model_id)
        if self.status(model_id) is not ModelStatus.INSTALLED:
            return None
        found = self._installed_file(entry)
        return found[0] if found is not None else None

    def require(self, model_id: str, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> Path:
        """Like :meth:`path_for`, but installs from a Python package when that is possible offline,
        and otherwise raises a :class:`ModelError` that says what is missing and how to get it."""
        path = self.path_for(model_id)
        if path is not None:
            return path
        entry = self.entry(model_id)
        state = self.status(model_id)
        if state is ModelStatus.PACKAGE:
            return self.download(model_id, progress=progress, cancel=cancel)
        if state is ModelStatus.CORRUPT or self._installed_file(entry) is not None:
            raise ModelError(f"model '{model_id}' is corrupt (its sha256 does not match); run "
                             f"`restora models remove {model_id}` and `restora models download {model_id}`")
        wanted = _wanted_file(entry)
        from_hub = any(isinstance(s, HubSource) for s in entry.sources)
        offline = " (Hugging Face downloads are off: HF_HUB_OFFLINE=1)" if from_hub and hub.hub_offline() else ""
        raise ModelError(f"model '{model_id}' is not installed{offline}: {wanted} is missing; "
                         f"{hub.how_to_get(model_id)}")

    # ------------------------------------------------------------- installing
    def install_from_packages(self, progress: Optional[ProgressCallback] = None,
                              cancel: Optional[CancelToken] = None) -> list[Path]:
        """Install every catalog model whose status is ``available-from-package`` (offline: hash the
        package's files, convert, cache). Returns the installed files; a model that fails is
        logged and skipped. Cheap when there is nothing to do."""
        pending = [e.id for e in self.catalog if self.status(e.id) is ModelStatus.PACKAGE]
        prog = Progress(progress, cancel)
        installed = []
        for i, model_id in enumerate(pending):
            try:
                installed.append(self.download(model_id, progress=prog.sub(i / len(pending), (i + 1) / len(pending)),
                                               cancel=cancel))
            except Cancelled:
                raise
            except ModelError as e:
                log.warning("model %s: %s", model_id, e)
        return installed

    def download(self, model_id: str, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None, allow_unverified: bool = False,
                 force: bool = False) -> Path:
        """Install ``model_id`` from its first working source and return the installed file.

        Sources are tried in catalog order: a package source converts the package's files (no
        network), a bundled source is checked in place, a hub source (pinned revision) or a
        ``url`` source is downloaded into staging, checked (size, sha256), then moved into the
        cache (:meth:`_fetch_verify_install`).
        Already-installed, verified models are returned at once unless ``force``.
        """
        prog = Progress(progress, cancel)
        entry = self.entry(model_id)
        if model_id not in self.catalog:
            path = self.path_for(model_id)
            if path is None:
                raise ModelError(f"model '{model_id}' was imported from a file and has no download source; "
                                 "import it again with `restora models import PATH`")
            return path
        if not force:
            path = self.path_for(model_id)
            if path is not None:
                prog(1.0, "already installed")
                return path
        if not entry.sources:
            raise ModelError(f"model '{model_id}' has no download source: get {entry.upstream} and run "
                             f"`restora models import FILE --id {model_id}`")
        errors: list[ModelError] = []
        for source in entry.sources:
            try:
                if isinstance(source, PackageSource):
                    if _package_files(source) is None:
                        continue
                    return self._install_from_package(entry, source, prog)
                if isinstance(source, BundledSource):
                    path = self.repo_root / source.path
                    if not path.is_file():
                        continue
                    return self._check_bundled(entry, source, path)
                if isinstance(source, UrlSource):
                    return self._install_from_url(entry, source, prog)
                return self._install_from_hub(entry, source, prog, allow_unverified)
            except Cancelled:
                raise
            except ModelError as e:
                log.info("model %s: source %s failed: %s", model_id, source.describe(), e)
                errors.append(e)
        if not errors:
            raise ModelError(f"model '{model_id}': none of its sources is available here; "
                             f"{hub.how_to_get(model_id)}")
        if len(errors) == 1:
            raise errors[0]
        raise ModelError(f"could not install '{model_id}' from any of its {len(errors)} sources: "
                         + " | ".join(str(e) for e in errors))

    def _install_from_hub(self, entry: ModelEntry, source: HubSource, prog: Progress,
                          allow_unverified: bool) -> Path:
        expected = entry.sha256_for(source)
        if not expected and not allow_unverified:
            raise ModelError(f"model '{entry.id}' has no verified sha256 in the catalog ({entry.unverified}); "
                             "refusing to download it. Pass --allow-unverified to trust the file on first use")
        if hub.hub_offline():
            raise ModelError(hub.offline_message(entry.id, source))
        return self._fetch_verify_install(
            entry, source, prog, expected, origin="hub",
            fetch=lambda staging, p: hub.fetch(entry.id, source, staging, p, expected_size=entry.size_for(source),
                                               check_space=lambda size: self._check_disk_space(entry.id, size),
                                               limits=self.limits))

    def _install_from_url(self, entry: ModelEntry, source: UrlSource, prog: Progress) -> Path:
        url = mirrored_url(source.url, self.url_mirror)
        where = urlsplit(url).netloc

        def fetch(staging: Path, p: Progress) -> Path:
            try:
                return fetch_to_file(url, staging / (source.filename + ".part"), expected_size=source.size,
                                     progress=p, limits=self.limits, label=source.filename,
                                     check_space=lambda size: self._check_disk_space(entry.id, size))
            except TransferError as e:
                if e.failure is Failure.UNREACHABLE:
                    raise TransferError(
                        f"cannot download '{entry.id}': {where} cannot be reached (offline? {e.reason}); "
                        f"{hub.how_to_get(entry.id)}", e.failure, e.status, e.keep_partial, e.reason) from None
                raise TransferError(f"model '{entry.id}': {e}; run `restora models download {entry.id}` "
                                    "again" + (" to resume" if e.keep_partial else ""),
                                    e.failure, e.status, e.keep_partial, e.reason) from None

        return self._fetch_verify_install(entry, source, prog, source.sha256, origin="url", fetch=fetch)

    def _fetch_verify_install(self, entry: ModelEntry, source: Union[HubSource, UrlSource], prog: Progress,
                              expected: str, origin: str, fetch: Any) -> Path:
        """The one path every download takes: fetch into ``<cache>/.staging/<id>/``, check size and
        sha256, then ``os.replace`` into ``<cache>/<id>/``. A failed transfer that left a valid
        prefix keeps it in staging, and the next call resumes from it; anything else (a cancel, a
        wrong digest) leaves nothing behind."""
        staging = self._staging_dir(entry.id)
        keep = False
        try:
            staged = fetch(staging, prog.sub(0.0, 0.95))
            prog(0.96, "verifying sha256")
            size = entry.size_for(source)
            actual = sha256_file(staged)
            if (expected and actual != expected) or (size and staged.stat().st_size != size):
                got = staged.stat().st_size
                staged.unlink(missing_ok=True)
                raise ModelError(f"downloaded {source.filename} for '{entry.id}' is not the catalog's file: "
                                 f"sha256 expected {expected}, got {actual} ({got} bytes, expected {size}); "
                                 "the file was deleted")
            dest = self._model_dir(entry.id) / Path(source.filename).name
            self._move_into_cache(staged, dest)
        except TransferError as e:
            keep = e.keep_partial
            raise
        finally:
            if not keep:
                shutil.rmtree(staging, ignore_errors=True)
        self._remember_digest(dest, actual)
        self._record(entry.id, dest, actual, origin=origin, source=source.describe(),
                     verified_by="catalog" if expected else "first-use", format=entry.format_for(source))
        prog(1.0, "installed")
        return dest

    def _install_from_package(self, entry: ModelEntry, source: PackageSource, prog: Progress) -> Path:
        files = _package_files(source)
        if files is None:
            raise ModelError(f"package {source.package} is not installed (needed for '{entry.id}')")
        weights, param = files
        prog(0.05, f"verifying {weights.name}")
        expected = entry.sha256_for(source)
        actual = sha256_file(weights)
        if expected and actual != expected:
            raise ModelError(f"{weights} (package {source.package}) does not match the catalog: sha256 "
                             f"expected {expected}, got {actual}; reinstall the package")
        if param is not None and source.param_sha256:
            got = sha256_file(param)
            if got != source.param_sha256:
                raise ModelError(f"{param} (package {source.package}) does not match the catalog: sha256 "
                                 f"expected {source.param_sha256}, got {got}; reinstall the package")
        fmt = entry.format_for(source)
        staging = self._staging_dir(entry.id)
        try:
            if fmt == "ncnn":
                prog(0.3, "converting ncnn weights to safetensors")
                staged = self._convert_ncnn(entry, param, weights, staging / f"{entry.id}.safetensors")
                dest = self._model_dir(entry.id) / f"{entry.id}-{actual[:16]}.safetensors"
            else:
                staged = staging / weights.name
                shutil.copyfile(weights, staged)
                dest = self._model_dir(entry.id) / weights.name
            prog.check()
            digest = sha256_file(staged)
            self._move_into_cache(staged, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._remember_digest(dest, digest)
        self._record(entry.id, dest, digest, origin="package", source=source.describe(),
                     source_sha256=actual, verified_by="catalog" if expected else "first-use",
                     format="safetensors" if fmt == "ncnn" else fmt)
        prog(1.0, "installed")
        return dest

    @staticmethod
    def _convert_ncnn(entry: ModelEntry, param: Optional[Path], weights: Path, out: Path) -> Path:
        if param is None:
            raise ModelError(f"model '{entry.id}': the ncnn source names no .param file")
        try:
            from ..convert.ncnn_esrgan import ncnn_to_esrgan_safetensors
        except ImportError as e:
            raise ModelError(f"model '{entry.id}' needs the ncnn converter (engine.convert.ncnn_esrgan), "
                             f"which is not available ({e})") from None
        return Path(ncnn_to_esrgan_safetensors(param, weights, out))

    def _check_bundled(self, entry: ModelEntry, source: BundledSource, path: Path) -> Path:
        expected = entry.sha256_for(source)
        actual = self._digest(path)
        if expected and actual != expected:
            raise ModelError(f"bundled model file {path} does not match the catalog: sha256 expected "
                             f"{expected}, got {actual}")
        return path

    def import_file(self, path: Union[str, Path], id: Optional[str] = None,  # noqa: A002 (the public name)
                    tasks: Optional[list[str]] = None, name: Optional[str] = None) -> tuple[ModelEntry, Path]:
        """Copy a user's model file into the cache after checking it can be loaded safely.

        ``.safetensors`` / ``.pth`` (``.pt``, ``.ckpt``): read with the restricted loader and
        identified by spandrel (unknown architectures are refused). ``.onnx``: validated with
        ``onnx.checker``. Every model is then run once on a small test image
        (:mod:`engine.weights.probe`) and refused unless it maps an image to an image of the same
        channels at an integer scale (which is recorded). A file whose sha256 equals a catalog
        entry's is installed as that entry; ``id`` naming an unverified catalog entry installs it
        under that id (the user vouches for the file). Otherwise ``id`` defaults to the file's
        stem. ``tasks`` default to the catalog entry's, else a guess from spandrel's description
        (face / upscale / generalist). Returns ``(entry, installed file)``.
        """
        model_id = id
        src = Path(path).expanduser()
        if not src.is_file():
            raise ModelError(f"cannot import {src}: no such file")
        suffix = src.suffix.lower()
        if suffix not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES + ONNX_SUFFIXES:
            raise ModelError(f"cannot import {src.name}: unsupported file type {suffix or '(none)'}; "
                             "use .safetensors, .pth or .onnx")
        digest = sha256_file(src)
        entry = self._catalog_match(digest, model_id, src)
        if suffix in ONNX_SUFFIXES:
            check_onnx(src)
            probed = probe_onnx(src)
            architecture, scale, fmt, conditioned = "onnx", probed.scale, "onnx", probed.conditioned
            # what it is, from what it does: an upscaler when it enlarges, else an all-in-one
            # restorer (the user names other tasks with --task)
            guessed = ["upscale"] if scale > 1 else ["generalist"]
        else:
            descriptor = load_descriptor(src)
            ident = describe(descriptor)
            probe_descriptor(descriptor, src.name)
            architecture, scale, conditioned = ident.architecture, ident.scale, False
            fmt = "safetensors" if suffix in SAFETENSORS_SUFFIXES else "pth"
            guessed = ["face"] if "face" in ident.purpose.lower() else ["upscale"] if scale > 1 else ["generalist"]
            if entry is not None and entry.architecture != architecture:
                raise ModelError(f"{src.name} is a {architecture} model, but '{entry.id}' in the catalog is "
                                 f"{entry.architecture}")
        if entry is not None:
            model_id = entry.id
        else:
            model_id = model_id or _slug(src.stem)
            if self._records().get(model_id) is not None:
                raise ModelError(f"a model called '{model_id}' is already imported; remove it first "
                                 f"(`restora models remove {model_id}`) or choose another --id")
        if tasks:
            from .catalog import TASKS

            bad = [t for t in tasks if t not in TASKS]
            if bad:
                raise ModelError(f"unknown task(s) {', '.join(bad)}; expected {', '.join(TASKS)}")
        dest_name = src.stem + (".pth" if suffix in PICKLE_SUFFIXES else suffix)
        dest = self._model_dir(model_id) / dest_name
        staging = self._staging_dir(model_id)
        try:
            staged = staging / dest_name
            shutil.copyfile(src, staged)
            if sha256_file(staged) != digest:
                raise ModelError(f"{src} changed while it was being imported; try again")
            self._move_into_cache(staged, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._remember_digest(dest, digest)
        verified_by = "catalog" if entry is not None and entry.sha256 else "import"
        self._record(model_id, dest, digest, origin="import", source=str(src.resolve()),
                     verified_by=verified_by, format=fmt, architecture=architecture, scale=scale,
                     conditioned=conditioned,
                     tasks=list(tasks or (entry.tasks if entry else guessed)),
                     name=name or (entry.name if entry else src.stem))
        return self.entry(model_id), dest

    def _catalog_match(self, digest: str, model_id: Optional[str], src: Path) -> Optional[ModelEntry]:
        by_digest = next((e for e in self.catalog
                          if digest in {e.sha256} | {s.sha256 for s in e.sources if s.sha256}), None)
        if by_digest is not None:
            if model_id and model_id != by_digest.id:
                raise ModelError(f"{src.name} is the catalog's '{by_digest.id}' (same sha256); import it "
                                 "without --id or with that id")
            return by_digest
        if model_id and model_id in self.catalog:
            named = self.catalog.get(model_id)
            assert named is not None
            if named.sha256:
                raise ModelError(f"{src.name} is not the catalog's '{model_id}': sha256 expected "
                                 f"{named.sha256}, got {digest}")
            return named
        return None

    # ------------------------------------------------------- verify and remove
    def verify(self, model_id: Optional[str] = None) -> list[VerifyResult]:
        """Hash installed files against their reference digests (all installed models when ``model_id``
        is ``None``). Nothing is deleted; see :meth:`remove`."""
        ids = [model_id] if model_id is not None else self.known_ids()
        results = []
        for mid in ids:
            entry = self.entry(mid)
            found = self._installed_file(entry)
            if found is None:
                if model_id is not None:
                    results.append(VerifyResult(mid, False, self.status(mid), None, "", "",
                                                "not installed"))
                continue
            path, expected, _ = found
            if not path.is_file():
                results.append(VerifyResult(mid, False, ModelStatus.CORRUPT, path, expected, "",
                                            "file missing"))
                continue
            actual = self._digest(path, refresh=True)
            if not expected:
                results.append(VerifyResult(mid, True, ModelStatus.INSTALLED, path, "", actual,
                                            "no reference digest (unverified model)"))
            elif actual == expected:
                results.append(VerifyResult(mid, True, ModelStatus.INSTALLED, path, expected, actual, "ok"))
            else:
                results.append(VerifyResult(mid, False, ModelStatus.CORRUPT, path, expected, actual,
                                            f"sha256 mismatch: expected {expected}, got {actual}"))
        return results

    def remove(self, model_id: str) -> list[Path]:
        """Delete an installed model from the cache (and its registry record); returns what was deleted."""
        entry = self.entry(model_id)
        found = self._installed_file(entry)
        record = self._records().get(model_id)
        if found is None and record is None:
            raise ModelError(f"model '{model_id}' is not installed")
        if found is not None and not _is_inside(found[0], self.cache_dir):
            raise ModelError(f"model '{model_id}' is bundled with Restora ({found[0]}) and cannot be removed")
        removed = []
        folder = self._model_dir(model_id, create=False)
        if folder.exists():
            removed = sorted(p for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
        with self._lock:
            records = self._records()
            if records.pop(model_id, None) is not None:
                write_registry(self.cache_dir, records)
        return removed

    # ---------------------------------------------------------------- helpers
    def _records(self) -> dict[str, dict[str, Any]]:
        return read_registry(self.cache_dir)

    def _record(self, model_id: str, path: Path, digest: str, **fields: Any) -> None:
        with self._lock:
            records = self._records()
            records[model_id] = {"file": path.relative_to(self.cache_dir).as_posix(), "sha256": digest,
                                 "size": path.stat().st_size, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                 **fields}
            write_registry(self.cache_dir, records)

    def _installed_file(self, entry: ModelEntry) -> Optional[tuple[Path, str, int]]:
        """``(path, expected sha256, expected size)`` of the file that counts as installed, if any."""
        record = self._records().get(entry.id)
        if record is not None:
            path = self.cache_dir / str(record.get("file", ""))
            if path.is_file():
                expected = str(record.get("sha256", ""))
                if record.get("origin") in ("hub", "url"):
                    # The catalog is the reference for its own downloads (it may gain a digest later).
                    source = next((s for s in entry.sources if s.describe() == record.get("source")), None)
                    if source is not None and entry.sha256_for(source):
                        expected = entry.sha256_for(source)
                return path, expected, int(record.get("size", 0) or 0)
        for source in entry.sources:
            if isinstance(source, (HubSource, UrlSource)):
                path = self._model_dir(entry.id, create=False) / Path(source.filename).name
                if path.is_file():
                    return path, entry.sha256_for(source), entry.size_for(source)
            elif isinstance(source, BundledSource):
                path = self.repo_root / source.path
                if path.is_file():
                    return path, entry.sha256_for(source), entry.size_for(source)
        return None

    def _check_disk_space(self, model_id: str, size: int) -> None:
        if size <= 0:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.cache_dir).free
        need = size + DISK_MARGIN
        if free < need:
            raise ModelError(f"not enough disk space for '{model_id}': it needs {format_bytes(need)} "
                             f"({format_bytes(size)} plus a margin) and {self.cache_dir} has {format_bytes(free)} free")

    def _model_dir(self, model_id: str, create: bool = True) -> Path:
        folder = self.cache_dir / model_id
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _staging_dir(self, model_id: str) -> Path:
        folder = self.cache_dir / _STAGING / model_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _move_into_cache(staged: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)

    def _digest(self, path: Path, refresh: bool = False) -> str:
        """sha256 of ``path``: from memory or ``verified.json`` while the file's stamp (size, mtime,
        ctime, inode) is unchanged, else hashed and remembered. ``refresh`` always hashes."""
        st = path.stat()
        key = _stamp_key(path, st)
        if not refresh:
            known = self._digests.get(key)
            if known is None:
                stamp = self._load_stamps().get(key[0])
                if stamp is not None and tuple(stamp.get(k) for k in _STAMP_FIELDS) == key[1:]:
                    known = str(stamp.get("sha256", ""))
            if known:
                self._digests[key] = known
                return known
        digest = sha256_file(path)
        if _stamp_key(path, path.stat()) == key:  # not changed while it was being read
            self._remember(key, digest)
        return digest

    def _remember_digest(self, path: Path, digest: str) -> None:
        self._remember(_stamp_key(path, path.stat()), digest)

    def _remember(self, key: tuple, digest: str) -> None:
        from ..imageio.atomic import atomic_write_text  # here: engine.imageio loads the image decoders

        self._digests[key] = digest
        with self._lock:
            stamps = self._load_stamps(reload=True)
            stamps[key[0]] = {**dict(zip(_STAMP_FIELDS, key[1:], strict=True)), "sha256": digest}
            stamps = {p: v for p, v in stamps.items() if os.path.exists(p)}
            self._stamps = stamps
            try:
                atomic_write_text(self.cache_dir / VERIFIED_NAME,
                                  json.dumps({"version": 1, "files": stamps}, indent=1, sort_keys=True))
            except (OSError, RestoraError) as e:  # a read-only cache only costs a re-hash next time
                log.info("cannot record verified digests in %s: %s", self.cache_dir, e)

    def _load_stamps(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        if self._stamps is None or reload:
            try:
                data = json.loads((self.cache_dir / VERIFIED_NAME).read_text(encoding="utf-8"))
                files = data.get("files") if isinstance(data, dict) else None
                self._stamps = {str(k): v for k, v in files.items() if isinstance(v, dict)} \
                    if isinstance(files, dict) else {}
            except (OSError, ValueError):
                self._stamps = {}  # absent or unreadable: files are simply hashed again
        return self._stamps


_STAMP_FIELDS = ("size", "mtime_ns", "ctime_ns", "inode")


def _stamp_key(path: Path, st: os.stat_result) -> tuple:
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def mirrored_url(url: str, mirror: Optional[str] = None) -> str:
    """Where to fetch a ``url`` source: ``url`` itself, or — when ``mirror`` (else
    ``$RESTORA_URL_MIRROR``) is set, e.g. ``http://127.0.0.1:8000`` — the same file under the
    mirror as ``<mirror>/<original host>/<original path>``, like ``HF_ENDPOINT`` for the hub.
    The catalog's size and sha256 are checked either way, so a mirror cannot change the file."""
    base = (mirror if mirror is not None else os.environ.get(URL_MIRROR_ENV, "")).strip().rstrip("/")
    if not base:
        return url
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _package_files(source: PackageSource) -> Optional[tuple[Path, Optional[Path]]]:
    """``(file, param file)`` inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = root / source.path
    param = root / source.param if source.param else None
    if not weights.is_file() or (param is not None and not param.is_file()):
        return None
    return weights, param


def _entry_from_record(model_id: str, record: dict[str, Any]) -> ModelEntry:
    tasks = record.get("tasks") or ["generalist"]
    return ModelEntry(
        id=model_id, name=str(record.get("name") or model_id), tasks=tuple(tasks),
        architecture=str(record.get("architecture", "unknown")), scale=int(record.get("scale", 1) or 1),
        license="user-supplied", size=int(record.get("size", 0) or 0), sha256=str(record.get("sha256", "")),
        format=str(record.get("format", "pth")), sources=(),
        description=f"imported from {record.get('source', 'a local file')}",
        conditioned=bool(record.get("conditioned", False)),
    )


def _wanted_file(entry: ModelEntry) -> str:
    for source in entry.sources:
        if isinstance(source, HubSource):
            return f"{source.filename} (from {source.repo_id})"
        if isinstance(source, UrlSource):
            return f"{source.filename} (from {source.url})"
        if isinstance(source, PackageSource):
            return f"{source.path} (from the Python package {source.package})"
        return source.path
    return f"its weights file (from {entry.upstream})" if entry.upstream else "its weights file"


def _slug(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return (slug or "imported-model")[:64]


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False




__all__ = ["WeightsManager", "ModelStatus", "VerifyResult", "default_cache_dir", "mirrored_url", "CACHE_ENV",
           "URL_MIRROR_ENV"]
