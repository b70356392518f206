"""Which files Restora reads and writes, and how extensions map to format names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..errors import PhotoSaveError

PathLike = Union[str, "os.PathLike[str]"]

@dataclass(frozen=True)
class ImageFormat:
    """One raster format Restora reads and writes: the one place its facts are declared."""

    name: str  #: ``Photo.source_format`` value and ``--format`` choice (``"jpeg"``)
    label: str  #: what dialogs show (``"JPEG"``)
    extensions: tuple[str, ...]  #: lower-case, with dot; the first is the one Restora writes
    mime_type: str  #: for the desktop entry
    pillow: tuple[str, ...]  #: Pillow's ``Image.format`` names that decode to it
    bit_depths: tuple[int, ...]  #: integer bit depths it stores when written
    alpha: bool  #: whether a written file keeps an alpha channel
    gray: bool  #: whether it stores a gray image as one channel
    #: offered as an output choice (CLI ``--format``, settings, export dialog); the others are
    #: written only to keep an input's own format (``--format same``)
    offered: bool = True

    @property
    def extension(self) -> str:
        """The extension Restora writes (``".jpg"``)."""
        return self.extensions[0]

    @property
    def dialog_filter(self) -> str:
        """A file-dialog filter for this format (``"JPEG (*.jpg *.jpeg *.jpe *.jfif)"``)."""
        return f"{self.label} ({' '.join('*' + e for e in self.extensions)})"


#: Every raster format, in the order output choices are offered (PNG first: lossless, 16-bit).
FORMATS: dict[str, ImageFormat] = {f.name: f for f in (
    ImageFormat("png", "PNG", (".png",), "image/png", ("PNG",), (8, 16), alpha=True, gray=True),
    ImageFormat("tiff", "TIFF", (".tif", ".tiff"), "image/tiff", ("TIFF",), (8, 16), alpha=True, gray=True),
    ImageFormat("jpeg", "JPEG", (".jpg", ".jpeg", ".jpe", ".jfif"), "image/jpeg", ("JPEG", "MPO"), (8,),
                alpha=False, gray=True),
    ImageFormat("webp", "WebP", (".webp",), "image/webp", ("WEBP",), (8,), alpha=True, gray=False),
    ImageFormat("bmp", "BMP", (".bmp", ".dib"), "image/bmp", ("BMP", "DIB"), (8,), alpha=False, gray=True,
                offered=False),
)}

#: The output formats offered as a choice (CLI ``--format``, the settings, the export dialog).
OFFERED_FORMATS: tuple[str, ...] = tuple(name for name, f in FORMATS.items() if f.offered)

#: Camera RAW extension (lower-case, with dot; LibRaw through rawpy decodes them) → MIME type
#: (as shared-mime-info names it).
RAW_MIME_TYPES: dict[str, str] = {
    ".dng": "image/x-adobe-dng", ".cr2": "image/x-canon-cr2", ".cr3": "image/x-canon-cr3",
    ".crw": "image/x-canon-crw", ".nef": "image/x-nikon-nef", ".nrw": "image/x-nikon-nrw",
    ".arw": "image/x-sony-arw", ".srf": "image/x-sony-srf", ".sr2": "image/x-sony-sr2",
    ".raf": "image/x-fuji-raf", ".orf": "image/x-olympus-orf", ".rw2": "image/x-panasonic-rw2",
    ".rwl": "image/x-panasonic-rw2", ".raw": "image/x-panasonic-raw", ".pef": "image/x-pentax-pef",
    ".srw": "image/x-samsung-srw", ".3fr": "image/x-hasselblad-3fr", ".fff": "image/x-hasselblad-fff",
    ".iiq": "image/x-phaseone-iiq", ".mos": "image/x-leaf-mos", ".mef": "image/x-mamiya-mef",
    ".mrw": "image/x-minolta-mrw", ".erf": "image/x-epson-erf", ".kdc": "image/x-kodak-kdc",
    ".dcr": "image/x-kodak-dcr", ".x3f": "image/x-sigma-x3f",
}
RAW_EXTENSIONS: frozenset[str] = frozenset(RAW_MIME_TYPES)
#: What a RAW input is written as when the output keeps the input's format: 16-bit TIFF.
RAW_OUTPUT_FORMAT = "tiff"

#: Raster extension → format name (``Photo.source_format`` values).
RASTER_FORMATS: dict[str, str] = {e: f.name for f in FORMATS.values() for e in f.extensions}

#: Every extension :func:`engine.imageio.load_photo` accepts (lower-case, with dot).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(RASTER_FORMATS) | RAW_EXTENSIONS

#: MIME type of every supported extension (the desktop entry's ``MimeType`` is generated from
#: this table by ``tools/desktop_entry.py``).
MIME_TYPES: dict[str, str] = {**{e: f.mime_type for f in FORMATS.values() for e in f.extensions}, **RAW_MIME_TYPES}

_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}

#: Pillow plugins allowed to open a file (multi-picture JPEG, "MPO", opens through "JPEG").
PILLOW_OPEN_FORMATS: tuple[str, ...] = tuple(f.pillow[0] for f in FORMATS.values())

#: Pillow's ``Image.format`` → our format name.
PILLOW_FORMATS: dict[str, str] = {p: f.name for f in FORMATS.values() for p in f.pillow}


def is_supported(path: PathLike) -> bool:
    """True when ``path``'s extension (any case) is one Restora reads. Looks at the name only."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def is_raw(path: PathLike) -> bool:
    """True when ``path``'s extension is a camera RAW extension."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def normalize_format_name(fmt: str) -> str:
    """``"JPG"`` → ``"jpeg"`` etc.; raises :class:`PhotoSaveError` for a format Restora cannot write."""
    name = fmt.strip().lower().lstrip(".")
    name = _FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise PhotoSaveError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return name


def output_format_for(path: PathLike, fmt: Optional[str] = None) -> str:
    """The output format name: ``fmt`` if given, else taken from ``path``'s extension."""
    if fmt is not None:
        return normalize_format_name(fmt)
    suffix = Path(path).suffix.lower()
    name = RASTER_FORMATS.get(suffix)
    if name is None:
        raise PhotoSaveError(f"{path}: cannot tell the output format from the extension {suffix or '(none)'!r}; "
                             f"use {', '.join(f.extension for f in FORMATS.values())}")
    return name


def same_output_format(content: Optional[str]) -> str:
    """The format an output that keeps its input's format is written in: ``content`` (the
    input's ``Photo.source_format`` or :func:`sniff_format`) itself, :data:`RAW_OUTPUT_FORMAT`
    for ``"raw"``, PNG when the content is unknown."""
    if content == "raw":
        return RAW_OUTPUT_FORMAT
    return content if content in FORMATS else "png"


def resolve_bit_depth(fmt: str, requested: Optional[int], source_depth: int) -> int:
    """Bit depth to write: ``requested`` if the format can store it, else the source's depth
    where the format allows, else 8. Asking for a depth a format cannot store raises."""
    depths = FORMATS[fmt].bit_depths
    if requested is not None:
        if requested not in (8, 16):
            raise PhotoSaveError(f"unsupported bit depth {requested}; expected 8 or 16")
        if requested not in depths:
            raise PhotoSaveError(f"{fmt.upper()} cannot store {requested}-bit images; use PNG or TIFF for 16-bit")
        return requested
    return source_depth if source_depth in depths else 8


def sniff_format(path: PathLike) -> Optional[str]:
    """The format name the file's first bytes announce (``"jpeg" | "png" | "tiff" | "webp" |
    "bmp"``), ``"raw"`` for a camera RAW extension (DNG is TIFF inside), or ``None`` when the
    bytes are none of these or the file cannot be read. Reads at most 16 bytes."""
    if is_raw(path):
        return "raw"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    return None
