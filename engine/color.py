"""Luminance: the one definition of a photo's brightness that every module uses.

Restora's pixels are sRGB-encoded, and sRGB has the Rec. 709 primaries, so the weights are
Rec. 709's (ITU-R BT.709: 0.2126 R + 0.7152 G + 0.0722 B), applied to the encoded values: the
result is luma Y′ (what photo editors plot), not linear-light luminance. JPEG's YCbCr
(:data:`JFIF_YCBCR`, Rec. 601 weights) is the other colour transform here: it is what JPEG
files and in-camera processing use, not Restora's measure of brightness.
"""

from __future__ import annotations

import numpy as np

#: Rec. 709 luma weights (R, G, B).
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)

#: JPEG's (JFIF) RGB → YCbCr matrix, for values in [0, 1] with chroma centred on 0 (rows Y, Cb,
#: Cr; Y is Rec. 601 luma).
JFIF_YCBCR = np.array([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]], np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of an H x W x 3 (or x 4: the fourth channel is ignored) image, float32
    H x W in the input's encoding and scale (values in [0, 1] give luma in [0, 1])."""
    # Plane by plane, not ``image @ REC709_LUMA``: a BLAS product's rounding depends on the CPU's
    # kernel (AVX-512 or AVX2), and the blur kernel estimate amplified that into different verdicts.
    out = np.empty(image.shape[:-1], np.float32)
    if image.ndim != 3:
        _weighted_sum(image, out, np.empty_like(out))
        return out
    rows = max(1, _LUMA_BAND // max(image.shape[1], 1))
    scratch = np.empty((min(rows, image.shape[0]),) + out.shape[1:], np.float32)
    for top in range(0, image.shape[0], rows):  # a band at a time, so that it stays in the cache
        band = out[top:top + rows]
        _weighted_sum(image[top:top + rows], band, scratch[:band.shape[0]])
    return out


#: Pixels :func:`luminance` converts at a time.
_LUMA_BAND = 1 << 16


def _weighted_sum(image: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """``out`` = (R·0.2126 + G·0.7152) + B·0.0722 of ``image`` in float32, one rounding per operation."""
    np.multiply(image[..., 0], REC709_LUMA[0], out=out, dtype=np.float32)
    np.multiply(image[..., 1], REC709_LUMA[1], out=scratch, dtype=np.float32)
    out += scratch
    np.multiply(image[..., 2], REC709_LUMA[2], out=scratch, dtype=np.float32)
    out += scratch


# Per-pixel reductions over the three colour channels. NumPy reduces a short last axis (``axis=2``
# of an H x W x 3 array) one pixel at a time, about 8x slower than the same arithmetic done plane by
# plane; these give the same values to the bit (min and max are exact; the mean adds R, G, B in that
# order and divides by 3 in float32, as ``image.mean(axis=2)`` does for float32 input).


def channel_min(image: np.ndarray) -> np.ndarray:
    """The smallest of R, G, B at each pixel of an H x W x 3 (or more) array: ``image[..., :3].min(axis=2)``."""
    return np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])


def channel_max(image: np.ndarray) -> np.ndarray:
    """The largest of R, G, B at each pixel: ``image[..., :3].max(axis=2)``."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def channel_mean(image: np.ndarray) -> np.ndarray:
    """The mean of R, G, B at each pixel of a float32 H x W x 3 array, float32: ``image.mean(axis=2)``."""
    return (image[..., 0] + image[..., 1] + image[..., 2]) / np.float32(3.0)


#: Largest difference between any two channels (in [0, 1] units) under which a photo counts as
#: neutral, black and white: one and a half 8-bit levels, so that a gray photo stored as RGB
#: (rounded, or decoded from a JPEG's near-zero chroma) counts too.
NEUTRAL_SPREAD = 1.5 / 255


def is_neutral(image: np.ndarray, spread: float = NEUTRAL_SPREAD, rows: int = 256) -> bool:
    """Whether every pixel of ``image`` (float H x W x 3 in [0, 1]) has its three channels within
    ``spread`` of each other: a black-and-white photo. Read ``rows`` rows at a time; a colour photo
    is usually told from its first band."""
    for top in range(0, image.shape[0], rows):
        band = image[top:top + rows]
        if float((channel_max(band) - channel_min(band)).max(initial=0.0)) > spread:
            return False
    return True


def make_neutral(image: np.ndarray, rows: int = 256) -> None:
    """Replace each pixel of ``image`` (float32 H x W x 3, written in place) by the mean of its
    channels, ``rows`` rows at a time: a black-and-white photo's restoration keeps no colour."""
    for top in range(0, image.shape[0], rows):
        band = image[top:top + rows]
        band[...] = channel_mean(band)[..., None]
