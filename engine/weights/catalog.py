"""The model catalog: which third-party and bundled models Restora knows, and where to get them.

The catalog is one TOML file (``models/catalog.toml``, schema in ``models/README.md``). Each
``[[models]]`` table becomes a :class:`ModelEntry`; its ``sources`` are tried in order of
preference by the weights manager. Loading validates everything and raises
:class:`CatalogError` with a one-line message naming the file, the model and the problem.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union
from urllib.parse import unquote, urlsplit

from ..errors import ModelError
from ..kinds import ANALYSIS, FACE, GENERALIST, KINDS, UPSCALE

#: Task names a catalog entry may serve.
TASKS: tuple[str, ...] = KINDS + (GENERALIST, UPSCALE, FACE, ANALYSIS)

#: File formats the manager knows how to verify and hand to a loader.
#: ``mat``: a MatConvNet (MATLAB v7.3) file that its expert converts when it loads it.
FORMATS: tuple[str, ...] = ("safetensors", "pth", "onnx", "ncnn", "mat")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class CatalogError(ModelError):
    """The catalog file is missing, not TOML, or an entry is malformed."""


def default_catalog_path() -> Path:
    """The ``models/catalog.toml`` shipped with Restora (package data, or the checkout's)."""
    from ..assets import catalog_path

    return catalog_path()


def is_sha256(value: str) -> bool:
    """True for a lowercase 64-hex-digit SHA-256 digest."""
    return bool(_SHA256_RE.match(value))


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face repository. ``revision`` is a 40-hex commit when pinned."""

    repo_id: str
    filename: str
    revision: str = "main"
    sha256: Optional[str] = None  # overrides the entry's digest when this source serves another file
    size: Optional[int] = None
    format: Optional[str] = None
    type: str = field(default="hub", init=False)

    @property
    def pinned(self) -> bool:
        return bool(_COMMIT_RE.match(self.revision))

    def describe(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}@{self.revision[:12]}"


@dataclass(frozen=True)
class PackageSource:
    """A file shipped inside an installed Python package (``path`` relative to the package folder).

    ``param`` is the ncnn ``.param`` companion of an ncnn ``.bin``; ``param_sha256`` its digest.
    """

    package: str
    path: str
    param: Optional[str] = None
    param_sha256: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None
    format: Optional[str] = None
    type: str = field(default="package", init=False)

    def describe(self) -> str:
        return f"package {self.package}: {self.path}"


@dataclass(frozen=True)
class BundledSource:
    """A file committed to the repository, ``path`` relative to the repository root."""

    path: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    format: Optional[str] = None
    type: str = field(default="bundled", init=False)

    def describe(self) -> str:
        return f"bundled {self.path}"


@dataclass(frozen=True)
class UrlSource:
    """One exact file an author published at a fixed URL: a GitHub release asset or a file at a
    pinned commit (``https://github.com/<owner>/<repo>/raw/<40-hex commit>/<path>``). ``size``
    (bytes) and ``sha256`` are required: the file is used only if both match."""

    url: str
    size: int
    sha256: str
    format: Optional[str] = None
    type: str = field(default="url", init=False)

    @property
    def filename(self) -> str:
        """The file name the URL ends with (percent-decoded)."""
        return Path(unquote(urlsplit(self.url).path)).name

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def describe(self) -> str:
        return self.url


Source = Union[HubSource, PackageSource, BundledSource, UrlSource]


@dataclass(frozen=True)
class ModelEntry:
    """One known model.

    ``tasks``: names from :data:`TASKS`. ``architecture``: spandrel's architecture id (e.g.
    ``"SCUNet"``). ``scale``: output size / input size. ``size``: bytes of the file the first
    source serves. ``sha256``: its digest, or ``""`` when it could not be verified (then
    ``unverified`` says why, and the manager refuses to download it unless the user opts in).
    ``size_multiple``: input sides must be padded to a multiple of this. ``lead_kinds``: for a
    generalist, the kinds where it measured better than the specialists; the automatic plan
    includes it only when the analysis finds one of them (it then fixes every kind found).
    Empty: always. ``conditioned``: an ONNX model that takes per-kind strengths as a second input
    (a conditioned generalist); loading a model that disagrees is refused.
    """

    id: str
    name: str
    tasks: tuple[str, ...]
    architecture: str
    scale: int
    license: str
    size: int
    sha256: str
    format: str
    sources: tuple[Source, ...]
    size_multiple: int = 1
    unverified: str = ""
    upstream: str = ""
    description: str = ""
    generative: bool = False
    lead_kinds: tuple[str, ...] = ()
    conditioned: bool = False

    @property
    def verified(self) -> bool:
        return bool(self.sha256)

    def sha256_for(self, source: Source) -> str:
        """Expected digest of the file ``source`` serves ("" when unknown)."""
        return source.sha256 if source.sha256 is not None else self.sha256

    def size_for(self, source: Source) -> int:
        """Expected size in bytes of the file ``source`` serves (0 when unknown)."""
        return source.size if source.size is not None else self.size

    def format_for(self, source: Source) -> str:
        return source.format or self.format


class Catalog:
    """Validated catalog entries by id, in file order."""

    def __init__(self, entries: list[ModelEntry], path: Optional[Path] = None) -> None:
        self.path = path
        self._entries = {e.id: e for e in entries}

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    def get(self, model_id: str) -> Optional[ModelEntry]:
        return self._entries.get(model_id)

    def ids(self) -> list[str]:
        return list(self._entries)

    def for_task(self, task: str) -> list[ModelEntry]:
        """Entries serving ``task``, in catalog order (the catalog lists the preferred first)."""
        return [e for e in self if task in e.tasks]


_ENTRY_REQUIRED = ("id", "name", "tasks", "architecture", "scale", "license", "size", "sha256",
                   "format", "sources")
_ENTRY_OPTIONAL = ("size_multiple", "unverified", "upstream", "description", "generative", "lead_kinds",
                   "conditioned")
_SOURCE_FIELDS = {
    "hub": (("repo_id", "filename", "revision"), ("sha256", "size", "format")),
    "package": (("package", "path"), ("param", "param_sha256", "sha256", "size", "format")),
    "bundled": (("path",), ("sha256", "size", "format")),
    "url": (("url", "size", "sha256"), ("format",)),
}


def load_catalog(path: Optional[Union[str, Path]] = None) -> Catalog:
    """Read and validate a catalog TOML file (default: :func:`default_catalog_path`).

    Raises :class:`CatalogError` (a :class:`engine.errors.ModelError`) on any problem: missing
    file, bad TOML, duplicate id, unknown task or format, malformed digest, missing field.
    """
    path = Path(path) if path is not None else default_catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"model catalog not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(f"cannot read model catalog {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"model catalog {path} is not valid TOML: {e}") from None
    return parse_catalog(data, path)


def write_entry(catalog: Path, model_id: str, entry: str) -> None:
    """Replace the ``[[models]]`` table of ``model_id`` in the catalog file ``catalog`` by the
    TOML text ``entry`` (or append it), leaving every other line as it is (atomically)."""
    from ..imageio.atomic import atomic_write_text  # here: engine.imageio loads the image decoders

    blocks = re.split(r"(?m)^(?=\[\[models\]\])", catalog.read_text(encoding="utf-8"))
    mine = [i for i, b in enumerate(blocks) if re.search(rf'(?m)^id = "{re.escape(model_id)}"$', b)]
    if mine:
        blocks[mine[0]] = entry.rstrip("\n") + "\n\n"
    else:
        blocks[-1] = blocks[-1].rstrip("\n") + "\n\n" + entry.rstrip("\n") + "\n"
    atomic_write_text(catalog, "".join(blocks).rstrip("\n") + "\n")


def parse_catalog(data: dict, path: Optional[Path] = None) -> Catalog:
    """Validate an already-parsed catalog mapping (``{"models": [ {...}, ... ]}``)."""
    where = str(path) if path is not None else "catalog"
    models = data.get("models")
    if not isinstance(models, list):
        raise CatalogError(f"{where}: expected a [[models]] array of tables")
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(models):
        label = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        try:
            entry = _parse_entry(raw)
        except CatalogError as e:
            raise CatalogError(f"{where}: model {label!r}: {e}") from None
        if entry.id in seen:
            raise CatalogError(f"{where}: duplicate model id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return Catalog(entries, path)


def _parse_entry(raw: object) -> ModelEntry:
    if not isinstance(raw, dict):
        raise CatalogError("entry is not a table")
    missing = [k for k in _ENTRY_REQUIRED if k not in raw]
    if missing:
        raise CatalogError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_ENTRY_REQUIRED) - set(_ENTRY_OPTIONAL))
    if unknown:
        raise CatalogError(f"unknown field(s): {', '.join(unknown)}")

    model_id = _str(raw, "id")
    if not _ID_RE.match(model_id):
        raise CatalogError("id must be lowercase letters, digits, '.', '_' or '-' (at most 64)")
    tasks = raw["tasks"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise CatalogError("tasks must be a non-empty list of strings")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise CatalogError(f"unknown task(s) {', '.join(map(repr, bad))}; expected {', '.join(TASKS)}")
    scale = _int(raw, "scale", minimum=1)
    size = _int(raw, "size", minimum=0)
    fmt = _format(raw.get("format"))
    sha256, unverified = _digest(raw.get("sha256"), raw.get("unverified", ""))
    if size == 0 and not unverified:
        raise CatalogError("size must be the file's byte count (0 only for an unverified entry)")
    sources_raw = raw["sources"]
    if not isinstance(sources_raw, list):
        raise CatalogError("sources must be a list of tables")
    sources = tuple(_parse_source(s, i) for i, s in enumerate(sources_raw))
    if not sources and not raw.get("upstream"):
        raise CatalogError("an entry without sources must name its upstream (where to get the file)")
    if fmt == "ncnn" and any(isinstance(s, PackageSource) and not s.param for s in sources):
        raise CatalogError("an ncnn package source needs its 'param' file")
    size_multiple = _int(raw, "size_multiple", minimum=1) if "size_multiple" in raw else 1
    generative = raw.get("generative", False)
    if not isinstance(generative, bool):
        raise CatalogError("generative must be true or false")
    conditioned = raw.get("conditioned", False)
    if not isinstance(conditioned, bool):
        raise CatalogError("conditioned must be true or false")
    lead_kinds = raw.get("lead_kinds", [])
    if not isinstance(lead_kinds, list) or not all(k in KINDS for k in lead_kinds):
        raise CatalogError(f"lead_kinds must be a list of kinds ({', '.join(KINDS)})")
    return ModelEntry(
        id=model_id, name=_str(raw, "name"), tasks=tuple(tasks), architecture=_str(raw, "architecture"),
        scale=scale, license=_str(raw, "license"), size=size, sha256=sha256, format=fmt,
        sources=sources, size_multiple=size_multiple, unverified=unverified,
        upstream=str(raw.get("upstream", "")), description=str(raw.get("description", "")),
        generative=generative, lead_kinds=tuple(lead_kinds), conditioned=conditioned,
    )


def _parse_source(raw: object, index: int) -> Source:
    where = f"source #{index + 1}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} is not a table")
    kind = raw.get("type")
    if kind not in _SOURCE_FIELDS:
        raise CatalogError(f"{where}: type must be one of {', '.join(_SOURCE_FIELDS)}, not {kind!r}")
    required, optional = _SOURCE_FIELDS[kind]
    missing = [k for k in required if k not in raw]
    if missing:
        raise CatalogError(f"{where} ({kind}): missing field(s): {', '.join(missing)}")
    unknown = sorted(set(raw) - {"type"} - set(required) - set(optional))
    if unknown:
        raise CatalogError(f"{where} ({kind}): unknown field(s): {', '.join(unknown)}")
    for key in ("sha256", "param_sha256"):
        if key in raw and not (isinstance(raw[key], str) and is_sha256(raw[key])):
            raise CatalogError(f"{where}: {key} must be 64 lowercase hex digits")
    if "size" in raw:
        _int(raw, "size", minimum=1)
    if "format" in raw:
        _format(raw["format"])
    values = {k: raw[k] for k in required + optional if k in raw}
    for k, v in values.items():
        if k != "size" and not isinstance(v, str):
            raise CatalogError(f"{where}: {k} must be a string")
    if kind == "url":
        parts = urlsplit(values["url"])
        if parts.scheme != "https" or not parts.netloc or not Path(unquote(parts.path)).name:
            raise CatalogError(f"{where}: url must be an https:// address of one file, not {values['url']!r}")
        return UrlSource(**values)
    if kind == "hub":
        if not _REPO_RE.match(values["repo_id"]):
            raise CatalogError(f"{where}: repo_id must look like 'owner/name'")
        if not values["revision"]:
            raise CatalogError(f"{where}: revision must not be empty (a 40-hex commit, or a branch)")
        return HubSource(**values)
    for key in ("path", "param"):
        if key in values and (Path(values[key]).is_absolute() or ".." in Path(values[key]).parts):
            raise CatalogError(f"{where}: {key} must be a relative path inside the {kind}")
    if kind == "package":
        return PackageSource(**values)
    return BundledSource(**values)


def _str(raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{key} must be a non-empty string")
    return value


def _int(raw: dict, key: str, minimum: int) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CatalogError(f"{key} must be an integer >= {minimum}")
    return value


def _format(value: object) -> str:
    if value not in FORMATS:
        raise CatalogError(f"format must be one of {', '.join(FORMATS)}, not {value!r}")
    return str(value)


def _digest(sha256: object, unverified: object) -> tuple[str, str]:
    if not isinstance(unverified, str):
        raise CatalogError("unverified must be a string saying why the digest is missing")
    if not isinstance(sha256, str):
        raise CatalogError("sha256 must be a string")
    if sha256 == "":
        if not unverified.strip():
            raise CatalogError("sha256 is empty: fill it in, or say why in 'unverified'")
        return "", unverified.strip()
    if not is_sha256(sha256):
        raise CatalogError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    if unverified:
        raise CatalogError("an entry with a sha256 must not also be marked unverified")
    return sha256, ""
