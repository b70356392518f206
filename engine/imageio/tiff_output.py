"""Writing TIFF files with tifffile, including ICC profile and EXIF sub-directories.

tifffile does not write the EXIF (34665) and GPS (34853) directory pointers itself. They are
written as placeholder LONG tags with neighbouring codes (so the directory stays sorted), the
sub-directories serialised by Pillow are appended to the file, and the placeholders are then
patched in place to the real codes and offsets.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np
import tifffile
from PIL import Image, TiffImagePlugin

from .exif import sub_ifds

_ICC_TAG = 34675
_UNDEFINED = 7
_LONG = 4
#: real pointer tag → placeholder code written first (adjacent, so tag order is unchanged).
_PLACEHOLDERS = {34665: 34664, 34853: 34852}
#: IFD0 text tags copied from the source EXIF into the TIFF's own directory.
_TEXT_TAGS = (270, 271, 272, 306, 315, 33432)
_SOFTWARE = 305
#: Beyond this much pixel data tifffile writes BigTIFF, whose 8-byte offsets Pillow's
#: EXIF serialiser cannot produce; such files are written without EXIF sub-directories.
_CLASSIC_TIFF_LIMIT = 3 * 2**30


def _text_tags(exif: Optional[Image.Exif]) -> list[tuple]:
    tags: list[tuple] = []
    if exif is None:
        return tags
    for code in _TEXT_TAGS:
        value = exif.get(code)
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        if isinstance(value, str) and value.strip("\x00 "):
            tags.append((code, "s", 0, value.strip("\x00"), True))
    return tags


def _ifd_bytes(values: dict[int, object], group: int, offset: int) -> bytes:
    """A little-endian TIFF directory holding ``values``, laid out to start at file ``offset``."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=group)
    for tag, value in values.items():
        ifd[tag] = value
    return ifd.tobytes(offset)


def _append_sub_ifds(path: Path, directories: dict[int, dict[int, object]]) -> None:
    """Append EXIF/GPS directories to the TIFF at ``path`` and point its placeholders at them."""
    with tifffile.TiffFile(path) as tif:
        entries = {tag.code: tag.offset for tag in tif.pages.first.tags if tag.code in _PLACEHOLDERS.values()}
    with open(path, "r+b") as handle:
        end = handle.seek(0, 2)
        for pointer, values in directories.items():
            if end % 2:
                handle.write(b"\x00")
                end += 1
            data = _ifd_bytes(values, pointer, end)
            handle.seek(end)
            handle.write(data)
            entry = entries[_PLACEHOLDERS[pointer]]
            handle.seek(entry)
            handle.write(struct.pack("<HHII", pointer, _LONG, 1, end))
            end += len(data)
            handle.seek(end)


def write_tiff(path: Path, samples: np.ndarray, *, icc_profile: Optional[bytes], exif: Optional[Image.Exif]) -> None:
    """Write ``samples`` (HxWxC uint8/uint16/float32; C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a
    deflate-compressed, little-endian TIFF with orientation 1, the ICC profile and the EXIF
    directories of ``exif`` (text tags such as Make and Model go into the main directory)."""
    channels = samples.shape[2]
    photometric = "rgb" if channels >= 3 else "minisblack"
    data = samples[:, :, 0] if channels == 1 else samples
    extratags: list[tuple] = [(274, "H", 1, 1, True)]
    if icc_profile:
        extratags.append((_ICC_TAG, _UNDEFINED, len(icc_profile), icc_profile, True))
    extratags += _text_tags(exif)
    classic = samples.nbytes < _CLASSIC_TIFF_LIMIT
    directories = sub_ifds(exif) if (exif is not None and classic) else {}
    for pointer in directories:
        extratags.append((_PLACEHOLDERS[pointer], _LONG, 1, 0, True))
    software = exif.get(_SOFTWARE) if exif is not None else None
    tifffile.imwrite(
        path,
        data,
        photometric=photometric,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib",
        predictor=samples.dtype.kind != "f",  # the float predictor needs imagecodecs
        byteorder="<",
        bigtiff=not classic,
        metadata=None,
        software=software if isinstance(software, str) and software.strip("\x00 ") else False,
        extratags=extratags,
    )
    if directories:
        _append_sub_ifds(path, directories)
