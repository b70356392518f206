"""Developing camera RAW files with LibRaw (rawpy) into 16-bit sRGB."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import rawpy
from PIL import Image

from ..errors import PhotoLoadError, one_line
from ..photo import Photo
from .checks import check_pixel_budget
from .exif import exif_block_from_image
from .metadata import metadata_from_tags, read_tags
from .orientation import LIBRAW_FLIP_TO_EXIF

#: sRGB transfer curve as LibRaw's (power, toe slope) pair.
SRGB_GAMMA = (2.4, 12.92)


def develop(raw: "rawpy.RawPy") -> np.ndarray:
    """Develop an unpacked RAW to uint16 HxWx3 sRGB: camera white balance, AHD demosaic,
    sRGB primaries and curve, no automatic brightening (exposure is kept as shot), upright."""
    return raw.postprocess(
        use_camera_wb=True,
        output_color=rawpy.ColorSpace.sRGB,
        output_bps=16,
        gamma=SRGB_GAMMA,
        no_auto_bright=True,
        demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD,
    )


def _raw_exif_block(path: Path) -> Optional[bytes]:
    """The EXIF facts of a TIFF-based RAW (DNG, NEF, CR2, ARW …) as a block, when Pillow can
    parse its first directory; ``None`` for other RAW containers."""
    try:
        with Image.open(path, formats=["TIFF"]) as image:
            return exif_block_from_image(image)
    except Exception:  # noqa: BLE001 - optional metadata from an arbitrary RAW container
        return None


def load_raw(path: Path, max_pixels: int) -> Photo:
    """Decode a camera RAW file into a 16-bit :class:`Photo` with ``source_format="raw"``."""
    raw = rawpy.RawPy()
    try:
        # From a buffer, not a path: LibRaw's char* paths mishandle non-ASCII names on Windows.
        with open(path, "rb") as handle:
            raw.open_buffer(handle)
        sizes = raw.sizes
        check_pixel_budget(path, sizes.width, sizes.height, max_pixels)
        raw.unpack()
        developed = develop(raw)
        flip = int(sizes.flip)
    except rawpy.LibRawFileUnsupportedError as err:
        raise PhotoLoadError(f"{path}: not a RAW file this version of LibRaw can read ({one_line(err)})") from err
    except (rawpy.LibRawError, rawpy.NotSupportedError) as err:
        raise PhotoLoadError(f"{path}: RAW file is truncated or corrupt ({one_line(err)})") from err
    finally:
        raw.close()
    orientation = LIBRAW_FLIP_TO_EXIF.get(flip, 1)
    exif = _raw_exif_block(path)
    tags = read_tags(path) or (read_tags(exif) if exif else {})
    pixels = developed.astype(np.float32)
    pixels /= 65535.0
    return Photo(
        pixels=pixels,
        alpha=None,
        bit_depth=16,
        source_format="raw",
        exif=exif,
        icc_profile=None,
        metadata=metadata_from_tags(tags, orientation=orientation),
        path=path,
        was_grayscale=False,
    )
