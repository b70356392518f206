"""``load_photo``: any supported file → :class:`engine.photo.Photo`."""

from __future__ import annotations

import os
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..errors import PhotoLoadError, RestoraError, UnsupportedFormatError, one_line
from ..photo import Photo
from .formats import PILLOW_OPEN_FORMATS, SUPPORTED_EXTENSIONS, PathLike, is_raw
from .metadata import read_metadata
from .orientation import apply_orientation
from .quantize import releasable_empty, to_unit_float
from .raster import Raster, load_raster, main_tiff_page
from .raw import load_raw

DEFAULT_MAX_PIXELS = 200_000_000

#: Modules whose warnings while decoding say what the load's error (or its plain result) already
#: says ("Truncated File Read", "Corrupt EXIF data", numpy on a float TIFF's NaNs). Silenced by a
#: process-wide filter, not ``warnings.catch_warnings``: that swaps the interpreter's one filter
#: list, so it is not thread-safe, and the batch decodes the next file on a background thread while
#: the main thread probes sizes: a catch on one thread ended the other's, and a decoder's warning
#: reached stderr between a batch's one-line reports.
DECODER_WARNING_MODULES = ("PIL", "tifffile", "rawpy", "imageio", "engine.imageio")
for _module in DECODER_WARNING_MODULES:
    warnings.filterwarnings("ignore", module=_module.replace(".", r"\.") + r"(\.|$)")


def _check_path(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise PhotoLoadError(f"{path}: no such file") from None
    except OSError as err:
        raise PhotoLoadError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise PhotoLoadError(f"{path}: is a folder, not a photo file")
    if not stat.S_ISREG(mode):  # a FIFO would block the open forever
        raise PhotoLoadError(f"{path}: is not a regular file (a pipe, socket or device); not opened")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFormatError(
            f"{path}: unsupported file type {suffix or '(no extension)'!r} "
            f"(Restora reads JPEG, PNG, TIFF, WebP, BMP and camera RAW files)"
        )


def photo_from_raster(raster: Raster, path: Path) -> Photo:
    """Orient, split alpha and convert a decoded :class:`Raster` into a :class:`Photo`."""
    samples = apply_orientation(raster.samples, raster.orientation)
    channels = samples.shape[2]
    grayscale = channels in (1, 2)
    colour = samples[:, :, :1] if grayscale else samples[:, :, :3]
    alpha = None
    if channels in (2, 4):
        alpha = np.ascontiguousarray(to_unit_float(samples[:, :, -1]))
    # the decoded samples are read no more: released as they are converted where they can be
    pixels = to_unit_float(colour, consume=True)
    if grayscale:
        gray, pixels = pixels, releasable_empty(pixels.shape[:2] + (3,), np.float32)
        pixels[...] = gray
        del gray
    return Photo(
        pixels=np.ascontiguousarray(pixels),
        alpha=alpha,
        bit_depth=raster.bit_depth,
        source_format=raster.source_format,
        exif=raster.exif,
        icc_profile=raster.icc_profile,
        metadata=read_metadata(raster.exif, None, orientation=raster.orientation),
        path=path,
        was_grayscale=grayscale,
        float_samples=raster.float_samples,
        hdr_scale=raster.hdr_scale,
        frames=raster.frames,
        jpeg=raster.jpeg,
    )


def load_photo(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a photo file into a :class:`Photo`; the file itself is never modified.

    Reads JPEG, PNG (8/16-bit), TIFF (8/16-bit, float, gray/RGB/palette/CMYK), WebP, BMP and
    camera RAW (developed to 16-bit sRGB). ``pixels`` are float32 HxWx3 in [0, 1] with the EXIF
    orientation applied once (``metadata.orientation`` keeps the file's value); an alpha
    channel becomes ``alpha`` (float32 HxW); gray sources are repeated into 3 channels with
    ``was_grayscale=True``. Colour values stay in the space the embedded ICC profile
    (``icc_profile``) describes, sRGB when there is none; CMYK is converted to sRGB.

    ``max_pixels`` (width x height) guards against decompression bombs; it is checked from
    the header before pixels are decoded.

    Raises :class:`UnsupportedFormatError` for a file type Restora does not read and
    :class:`PhotoLoadError` (one line naming the file) for a missing, unreadable, truncated,
    corrupt or too large file.
    """
    path = Path(path)
    _check_path(path)
    try:
        if is_raw(path):
            return load_raw(path, max_pixels)
        return photo_from_raster(load_raster(path, max_pixels), path)
    except RestoraError:
        raise
    except PermissionError as err:
        raise PhotoLoadError(f"{path}: cannot read the file (permission denied)") from err
    except Image.DecompressionBombError as err:
        raise PhotoLoadError(f"{path}: image is too large to open safely ({one_line(err)})") from err
    except UnidentifiedImageError as err:
        raise PhotoLoadError(f"{path}: not a readable image (its content is not JPEG, PNG, TIFF, WebP or BMP)") from err
    except tifffile.TiffFileError as err:
        raise PhotoLoadError(f"{path}: TIFF file is truncated or corrupt ({one_line(err)})") from err
    except MemoryError as err:
        raise PhotoLoadError(f"{path}: not enough memory to decode this image") from err
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error, zlib.error,
            cv2.error) as err:
        raise PhotoLoadError(f"{path}: file is truncated or corrupt ({one_line(err)})") from err


def probe_size(path: PathLike) -> Optional[tuple[int, int]]:
    """``(width, height)`` read from the file's header without decoding pixels (before
    orientation), or ``None`` when the header cannot tell (RAW, corrupt, unreadable: loading
    then reports it)."""
    path = Path(path)
    if is_raw(path):
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            with tifffile.TiffFile(path) as tif:
                page = main_tiff_page(tif)[1]
                return int(page.imagewidth), int(page.imagelength)
        with Image.open(path, formats=PILLOW_OPEN_FORMATS) as image:
            return int(image.width), int(image.height)
    except Exception:  # noqa: BLE001 - a probe: whatever fails here, loading reports it properly
        return None
