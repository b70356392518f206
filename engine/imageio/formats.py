"""Which files Restora reads and writes, and how extensions map to format names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..errors import PhotoSaveError

PathLike = Union[str, "os.PathLike[str]"]

#: Camera RAW extensions (lower-case, with dot) that LibRaw (through rawpy) decodes.
RAW_EXTENSIONS: frozenset[str] = frozenset({
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".rwl", ".raw", ".pef", ".srw", ".3fr", ".fff", ".iiq", ".mos", ".mef", ".mrw",
    ".erf", ".kdc", ".dcr", ".x3f",
})

#: Raster extension → format name (``Photo.source_format`` values).
RASTER_FORMATS: dict[str, str] = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg",
    ".png": "png",
    ".tif": "tiff", ".tiff": "tiff",
    ".webp": "webp",
    ".bmp": "bmp", ".dib": "bmp",
}

#: Every extension :func:`engine.imageio.load_photo` accepts (lower-case, with dot).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(RASTER_FORMATS) | RAW_EXTENSIONS

#: MIME type of every supported extension (the desktop entry's ``MimeType`` is generated from
#: this table by ``tools/desktop_entry.py``; camera RAW types as shared-mime-info names them).
MIME_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
    ".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp",
    ".bmp": "image/bmp", ".dib": "image/bmp",
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

#: Output format name → (preferred extension, bit depths it can store).
OUTPUT_FORMATS: dict[str, tuple[str, tuple[int, ...]]] = {
    "jpeg": (".jpg", (8,)),
    "png": (".png", (8, 16)),
    "tiff": (".tif", (8, 16)),
    "webp": (".webp", (8,)),
    "bmp": (".bmp", (8,)),
}

_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}

#: Pillow plugins allowed to open a file (multi-picture JPEG, "MPO", opens through "JPEG").
PILLOW_OPEN_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")

#: Pillow's ``Image.format`` → our format name.
PILLOW_FORMATS: dict[str, str] = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp", "BMP": "bmp", "DIB": "bmp",
}


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
    if name not in OUTPUT_FORMATS:
        raise PhotoSaveError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    return name


def output_format_for(path: PathLike, fmt: Optional[str] = None) -> str:
    """The output format name: ``fmt`` if given, else taken from ``path``'s extension."""
    if fmt is not None:
        return normalize_format_name(fmt)
    suffix = Path(path).suffix.lower()
    name = RASTER_FORMATS.get(suffix)
    if name is None:
        raise PhotoSaveError(f"{path}: cannot tell the output format from the extension {suffix or '(none)'!r}; "
                             f"use .jpg, .png, .tif, .webp or .bmp")
    return name


def resolve_bit_depth(fmt: str, requested: Optional[int], source_depth: int) -> int:
    """Bit depth to write: ``requested`` if the format can store it, else the source's depth
    where the format allows, else 8. Asking for a depth a format cannot store raises."""
    depths = OUTPUT_FORMATS[fmt][1]
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
