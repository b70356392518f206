"""Where Restora's shipped files are: the bundled models and their catalog (``models/``) and the
icons, style sheet, desktop entry and sample photos (``resources/``).

In the source tree both folders sit at the repository root. An installed wheel (and the
PyInstaller folder) carries them as package data of this package, ``engine/assets/models`` and
``engine/assets/resources`` (``setup.py`` maps the top-level folders there), found through
:mod:`importlib.resources`. The packaged copy is looked for first; a checkout has none, so
running from a checkout (editable install, or ``PYTHONPATH`` pointing at it) uses the
checkout's own folders.

Every function returns a real filesystem :class:`~pathlib.Path` (ONNX Runtime and Qt need file
names), so Restora must be installed unpacked (what pip always does), not imported from a zip.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import RestoraError

#: The two shipped folders, by their name in the source tree and in the package.
MODELS = "models"
RESOURCES = "resources"


class AssetsMissingError(RestoraError):
    """Neither the installed package nor a source checkout holds Restora's shipped files."""


def _packaged_root() -> Path | None:
    root = resources.files(__name__)
    if not isinstance(root, Path):  # imported from a zip or another non-filesystem loader
        return None
    return root if (root / MODELS / "catalog.toml").is_file() else None


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / MODELS / "catalog.toml").is_file() and (root / "pyproject.toml").is_file() else None


def data_root() -> Path:
    """The folder that holds ``models/`` and ``resources/``: the installed package's
    ``engine/assets`` or, when running from a source checkout, the repository root.
    Catalog entries of type ``bundled`` name their file relative to this folder."""
    root = _packaged_root() or _checkout_root()
    if root is None:
        raise AssetsMissingError("Restora's bundled files (models/catalog.toml) are missing from this "
                                 "installation; reinstall the restora package")
    return root


def location() -> str:
    """``"package"`` or ``"checkout"``: where :func:`data_root` found the shipped files."""
    return "package" if _packaged_root() is not None else "checkout"


def models_dir() -> Path:
    """The bundled models folder (``catalog.toml``, weights, ``cards/``, licences)."""
    return data_root() / MODELS


def catalog_path() -> Path:
    """The model catalog shipped with this installation (``models/catalog.toml``)."""
    return models_dir() / "catalog.toml"


def resources_dir() -> Path:
    """Icons, style sheet, desktop entry and sample photos (``resources/``)."""
    return data_root() / RESOURCES


def samples_dir() -> Path:
    """The bundled sample photos (``resources/samples``)."""
    return resources_dir() / "samples"
