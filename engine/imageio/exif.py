"""The raw EXIF block: extracting it from files and preparing it for an output file.

An EXIF block here is ``bytes`` in TIFF-header form (``II*\\0`` or ``MM\\0*`` …), without the
``Exif\\0\\0`` prefix JPEG uses. Pillow parses and re-serialises it; the thumbnail (IFD1) is not
carried over, so no stale thumbnail or thumbnail size can contradict the new pixels.
"""

from __future__ import annotations

import struct
from typing import Optional

from PIL import ExifTags, Image

EXIF_PREFIX = b"Exif\x00\x00"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")

ORIENTATION_TAG = 0x0112
_EXIF_IFD = int(ExifTags.IFD.Exif)
_GPS_IFD = int(ExifTags.IFD.GPSInfo)
_INTEROP_IFD = int(ExifTags.IFD.Interop)
_PIXEL_X_DIMENSION = 0xA002
_PIXEL_Y_DIMENSION = 0xA003
_MAKER_NOTE = 0x927C

#: IFD0 tags worth keeping when the EXIF comes from a TIFF or RAW file's own image directory
#: (whose other tags describe that file's strips, compression and layout, not the photo).
_DESCRIPTIVE_IFD0_TAGS = frozenset({
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    ORIENTATION_TAG,
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
    _EXIF_IFD,
    _GPS_IFD,
})

#: JPEG's APP1 segment holds at most 65533 bytes of payload (including the prefix).
JPEG_EXIF_LIMIT = 65533 - len(EXIF_PREFIX)


def normalize_exif_block(data: Optional[bytes]) -> Optional[bytes]:
    """``data`` without an ``Exif\\0\\0`` prefix, or ``None`` if it is not a TIFF-structured block."""
    if not data:
        return None
    data = bytes(data)
    if data.startswith(EXIF_PREFIX):
        data = data[len(EXIF_PREFIX):]
    return data if data[:4] in _TIFF_HEADERS else None


def exif_block_from_image(image: Image.Image) -> Optional[bytes]:
    """The EXIF block of an opened (not necessarily decoded) Pillow image, or ``None``.

    JPEG, PNG and WebP carry a separate EXIF block, returned as stored. TIFF (and TIFF-based
    RAW) files keep camera facts in their own first directory; the descriptive tags and the
    EXIF/GPS sub-directories are copied into a fresh block.
    """
    stored = normalize_exif_block(image.info.get("exif"))
    if stored is not None or image.format not in ("TIFF", "MPO"):
        return stored
    source = image.getexif()
    exif = Image.Exif()
    for tag, value in source.items():
        if tag in _DESCRIPTIVE_IFD0_TAGS and tag not in (_EXIF_IFD, _GPS_IFD):
            exif[tag] = value
    for pointer, directory in sub_ifds(source).items():
        exif[pointer] = directory
    if not any(tag != ORIENTATION_TAG for tag in exif):
        return None
    return normalize_exif_block(exif.tobytes())


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation recorded for an opened Pillow image (1 when absent or malformed)."""
    from .orientation import valid_orientation

    return valid_orientation(image.getexif().get(ORIENTATION_TAG, 1))


def exif_for_output(block: Optional[bytes], width: int, height: int) -> Optional[Image.Exif]:
    """A Pillow ``Exif`` ready to embed in an output of ``width`` x ``height`` pixels.

    Orientation is set to 1 (the pixels are already upright), ``PixelXDimension`` /
    ``PixelYDimension`` are set to the output size where present, the thumbnail is dropped.
    Returns ``None`` when there is no block or it cannot be parsed (better no EXIF than a
    wrong one).
    """
    block = normalize_exif_block(block)
    if block is None:
        return None
    exif = Image.Exif()
    try:
        exif.load(block)
        exif[ORIENTATION_TAG] = 1
        sub = exif.get_ifd(_EXIF_IFD)
        if _PIXEL_X_DIMENSION in sub:
            sub[_PIXEL_X_DIMENSION] = int(width)
        if _PIXEL_Y_DIMENSION in sub:
            sub[_PIXEL_Y_DIMENSION] = int(height)
        exif.tobytes()  # fail here, not inside an encoder, if a tag cannot be written back
    except (SyntaxError, ValueError, TypeError, KeyError, OSError, struct.error):
        return None
    return exif


def exif_bytes(exif: Image.Exif, *, limit: Optional[int] = None) -> Optional[bytes]:
    """Serialise ``exif`` to a TIFF-header block; over ``limit`` bytes, drop the maker note
    (the usual bulk), and if still too long return ``None``."""
    data = normalize_exif_block(exif.tobytes())
    if limit is None or data is None or len(data) <= limit:
        return data
    sub = exif.get_ifd(_EXIF_IFD)
    if _MAKER_NOTE in sub:
        del sub[_MAKER_NOTE]
        data = normalize_exif_block(exif.tobytes())
        if data is not None and len(data) <= limit:
            return data
    return None


def sub_ifds(exif: Image.Exif) -> dict[int, dict[int, object]]:
    """The EXIF and GPS sub-directories of ``exif`` (tag → value), keyed by their pointer tag.

    A nested Interop pointer is replaced by its directory (a dict, which Pillow serialises as
    a sub-directory), never left as an offset into the old block.
    """
    found: dict[int, dict[int, object]] = {}
    for pointer in (_EXIF_IFD, _GPS_IFD):
        if pointer not in exif:
            continue
        values = dict(exif.get_ifd(pointer))
        if pointer == _EXIF_IFD and _INTEROP_IFD in values and not isinstance(values[_INTEROP_IFD], dict):
            interop = dict(exif.get_ifd(_INTEROP_IFD))
            if interop:
                values[_INTEROP_IFD] = interop
            else:
                del values[_INTEROP_IFD]
        if values:
            found[pointer] = values
    return found
