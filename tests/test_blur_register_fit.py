"""The measures of the deconvolution-origin fit (benchmarks/blur_register_fit.py): where a blurred
photo should sit, and the shift between an output and that reference."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from blur_register_fit import best_shift, content_shift, reference, shifted  # noqa: E402


def _scene(size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = cv2.resize(rng.uniform(0.1, 0.9, (16, 16, 3)).astype(np.float32), (size, size),
                   interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(x, (0, 0), 1.0)


def test_both_measures_read_a_known_sub_pixel_shift():
    scene = _scene()
    moved = shifted(scene, 1.25, -0.5)
    assert abs(best_shift(moved, scene) - float(np.hypot(1.25, 0.5))) <= 0.1
    dy, dx = content_shift(scene, moved, 0.05)
    assert abs(dy - 1.25) <= 0.15 and abs(dx + 0.5) <= 0.15, (dy, dx)
    assert best_shift(scene, scene) == 0.0


def test_the_reference_is_the_sharp_photo_moved_by_the_kernels_centre_of_mass():
    """A kernel centred in its array leaves the reference where the sharp photo is; a trajectory whose
    mass sits 2 px right of its array's centre moves it 2 px right, as blurring by it moves the photo."""
    scene = _scene()
    disc = np.ones((5, 5), np.float32) / 25
    assert np.allclose(reference(scene, disc), scene, atol=1e-6)
    line = np.zeros((9, 9), np.float32)
    line[4, 5:8] = 1 / 3  # centre of mass at column 6, the array's centre at 4
    assert abs(best_shift(reference(scene, line), shifted(scene, 0.0, 2.0))) <= 0.01
    blurred = cv2.filter2D(scene, -1, np.ascontiguousarray(line[::-1, ::-1]), borderType=cv2.BORDER_REFLECT_101)
    dy, dx = content_shift(scene, blurred, 0.05)
    assert abs(dy) <= 0.15 and abs(dx - 2.0) <= 0.15, (dy, dx)
