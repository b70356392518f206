"""Camera RAW through rawpy: a small DNG written by the test is developed to 16-bit sRGB."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile

from engine.errors import PhotoLoadError
from engine.imageio import default_output_format, load_photo, save_photo

HEIGHT, WIDTH = 64, 96
WHITE = 4095
#: Linear-light colours painted into the four quadrants of the mosaic.
QUADRANTS = {(0, 0): (0.50, 0.10, 0.05), (0, 1): (0.08, 0.40, 0.10),
             (1, 0): (0.05, 0.10, 0.45), (1, 1): (0.25, 0.25, 0.25)}
#: XYZ (D65) → linear sRGB: with this as ColorMatrix1 the "camera" sees linear sRGB.
XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])


def srgb_encode(linear):
    linear = np.asarray(linear, dtype=np.float64)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def signed_rationals(values):
    pairs = []
    for value in values:
        fraction = Fraction(float(value)).limit_denominator(100000)
        pairs += [fraction.numerator, fraction.denominator]
    return pairs


def write_dng(path: Path, orientation: int = 1) -> Path:
    """A 12-bit RGGB Bayer DNG with the tags LibRaw needs to develop it."""
    linear = np.zeros((HEIGHT, WIDTH, 3))
    for (row, col), colour in QUADRANTS.items():
        linear[row * HEIGHT // 2:(row + 1) * HEIGHT // 2, col * WIDTH // 2:(col + 1) * WIDTH // 2] = colour
    mosaic = np.empty((HEIGHT, WIDTH), np.uint16)
    mosaic[0::2, 0::2] = np.round(linear[0::2, 0::2, 0] * WHITE)
    mosaic[0::2, 1::2] = np.round(linear[0::2, 1::2, 1] * WHITE)
    mosaic[1::2, 0::2] = np.round(linear[1::2, 0::2, 1] * WHITE)
    mosaic[1::2, 1::2] = np.round(linear[1::2, 1::2, 2] * WHITE)
    tags = [
        (271, "s", 0, "Restora", True),
        (272, "s", 0, "Synthetic CFA", True),
        (274, "H", 1, orientation, True),
        (33421, "H", 2, (2, 2), True),          # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),    # CFAPattern: R G / G B
        (50706, "B", 4, (1, 4, 0, 0), True),    # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),    # DNGBackwardVersion
        (50708, "s", 0, "Restora Synthetic CFA", True),
        (50714, "H", 1, 0, True),               # BlackLevel
        (50717, "H", 1, WHITE, True),           # WhiteLevel
        (50721, 10, 9, signed_rationals(XYZ_TO_SRGB.ravel()), True),  # ColorMatrix1
        (50728, 5, 3, [1, 1, 1, 1, 1, 1], True),  # AsShotNeutral
        (50778, "H", 1, 21, True),              # CalibrationIlluminant1 = D65
    ]
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags, metadata=None, software=False)
    return path


def quadrant_means(pixels: np.ndarray) -> dict:
    margin = 8
    means = {}
    for (row, col) in QUADRANTS:
        patch = pixels[row * HEIGHT // 2 + margin:(row + 1) * HEIGHT // 2 - margin,
                       col * WIDTH // 2 + margin:(col + 1) * WIDTH // 2 - margin]
        means[(row, col)] = patch.reshape(-1, 3).mean(axis=0)
    return means


def test_dng_develops_to_the_painted_colours(tmp_path):
    photo = load_photo(write_dng(tmp_path / "shot.dng"))
    assert photo.source_format == "raw" and photo.bit_depth == 16
    assert photo.pixels.dtype == np.float32 and photo.pixels.shape == (HEIGHT, WIDTH, 3)
    assert photo.alpha is None and not photo.was_grayscale
    for key, mean in quadrant_means(photo.pixels).items():
        assert np.allclose(mean, srgb_encode(QUADRANTS[key]), atol=0.03), (key, mean)
    assert photo.metadata.camera == "Restora Synthetic CFA"
    # Developed at 16 bits, not 8 bits scaled up (8-bit levels would all be multiples of 257).
    assert np.any(np.round(photo.pixels * 65535).astype(np.int64) % 257 != 0)


def test_dng_orientation_is_applied(tmp_path):
    photo = load_photo(write_dng(tmp_path / "portrait.dng", orientation=6))
    assert photo.pixels.shape == (WIDTH, HEIGHT, 3)
    assert photo.metadata.orientation == 6
    upright = load_photo(write_dng(tmp_path / "landscape.dng"))
    assert np.allclose(photo.pixels, np.rot90(upright.pixels, -1), atol=1e-6)


def test_raw_saves_as_16bit_tiff_by_default(tmp_path):
    photo = load_photo(write_dng(tmp_path / "shot.dng"))
    extension, depth = default_output_format(photo)
    assert (extension, depth) == (".tif", 16)
    back = load_photo(save_photo(photo, tmp_path / f"developed{extension}"))
    assert back.bit_depth == 16
    assert np.abs(back.pixels - photo.pixels).max() <= 0.5 / 65535


def test_corrupt_raw_is_one_line_error(tmp_path):
    data = write_dng(tmp_path / "good.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(data[:200])
    with pytest.raises(PhotoLoadError) as info:
        load_photo(tmp_path / "cut.dng")
    assert "cut.dng" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "fake.nef").write_bytes(b"definitely not a raw file" * 10)
    with pytest.raises(PhotoLoadError) as info:
        load_photo(tmp_path / "fake.nef")
    assert "fake.nef" in str(info.value) and "\n" not in str(info.value)


def test_raw_pixel_budget(tmp_path):
    with pytest.raises(PhotoLoadError, match="too large"):
        load_photo(write_dng(tmp_path / "shot.dng"), max_pixels=1000)
