"""EXIF orientation (tag 274, values 1..8) applied to pixel arrays."""

from __future__ import annotations

import numpy as np


def valid_orientation(value: object) -> int:
    """``value`` as an EXIF orientation 1..8; anything missing or malformed counts as 1 (upright)."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``array`` (HxW or HxWxC, any dtype) upright for EXIF ``orientation``.

    Matches ``PIL.ImageOps.exif_transpose``: 2 mirror, 3 rotate 180°, 4 flip, 5 transpose,
    6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise. Returns a
    contiguous array (a copy unless ``orientation`` is 1).
    """
    if orientation == 2:
        out = array[:, ::-1]
    elif orientation == 3:
        out = array[::-1, ::-1]
    elif orientation == 4:
        out = array[::-1]
    elif orientation == 5:
        out = array.swapaxes(0, 1)
    elif orientation == 6:
        out = array.swapaxes(0, 1)[:, ::-1]
    elif orientation == 7:
        out = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = array.swapaxes(0, 1)[::-1]
    else:
        return array
    return np.ascontiguousarray(out)


#: LibRaw's ``sizes.flip`` (which rawpy applies itself while developing) → EXIF orientation.
#: Cameras only write these four; any other value is reported as 1.
LIBRAW_FLIP_TO_EXIF: dict[int, int] = {0: 1, 3: 3, 5: 8, 6: 6}
