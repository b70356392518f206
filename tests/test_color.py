"""The one luma definition: its values, and that they do not depend on the CPU."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.color import REC709_LUMA, is_neutral, luminance, make_neutral


def test_luma_is_rec709_with_one_rounding_per_operation():
    """(R·0.2126 + G·0.7152) + B·0.0722 in float32, the same to the bit for an array, a view with
    strides, a float64 or uint8 array, an alpha channel and a list of pixels; bands of rows give
    what the whole array gives."""
    rng = np.random.default_rng(3)
    image = rng.random((301, 517, 3), dtype=np.float32)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    want = r * REC709_LUMA[0]
    want += g * REC709_LUMA[1]
    want += b * REC709_LUMA[2]
    assert np.array_equal(luminance(image), want)
    assert np.array_equal(luminance(image[7:200:2, 3::3]), want[7:200:2, 3::3])
    rgba = np.concatenate([image, np.ones_like(image[..., :1])], axis=2)
    assert np.array_equal(luminance(rgba), want)
    assert np.array_equal(luminance(image.reshape(-1, 3)), want.reshape(-1))
    assert np.array_equal(luminance(image.astype(np.float64)), want)
    levels = (image * 255).astype(np.uint8)
    assert np.array_equal(luminance(levels), luminance(levels.astype(np.float32)))
    assert luminance(np.zeros((0, 4, 3), np.float32)).shape == (0, 4)


def test_luma_does_not_depend_on_the_blas_kernel():
    """A BLAS product (``image @ weights``) rounds differently on AVX-512 and AVX2 CPUs, and the
    blur kernel estimate turned that one-ulp difference into a different verdict on a real photo
    (`blurry_fountain`: confidence 0.22 against 0.31). The luma must be the same whichever kernel
    OpenBLAS picks."""
    code = ("import hashlib, numpy as np; from engine.color import luminance; "
            "x = np.random.default_rng(5).random((257, 333, 3), dtype=np.float32); "
            "print(hashlib.sha256(luminance(x).tobytes()).hexdigest())")
    flags = set()
    if Path("/proc/cpuinfo").is_file():
        flags = {f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                 for f in line.split(":", 1)[1].split()}
    if platform.machine() not in ("x86_64", "AMD64") or "sse2" not in flags:
        pytest.skip("OpenBLAS core types are chosen here for x86-64 CPUs")
    # only kernels this CPU can run (a forced AVX-512 kernel would crash an AVX2 CPU)
    cores = ["Prescott"] + ["Haswell"] * ("avx2" in flags) + ["SkylakeX"] * ("avx512f" in flags)
    digests = set()
    for core in cores:
        env = {"OPENBLAS_CORETYPE": core, "PATH": "/usr/bin:/bin"}
        digests.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip())
    assert len(digests) == 1


def test_neutral_photos_are_told_and_made():
    gray = np.repeat(np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10, 1), 3, axis=2)
    assert is_neutral(gray)
    assert is_neutral(gray + np.float32([1.4 / 255, 0, 0]))
    assert not is_neutral(gray + np.float32([2 / 255, 0, 0]))
    tinted = gray + np.float32([0.03, 0.0, -0.03])
    make_neutral(tinted)
    assert np.allclose(tinted, gray, atol=1e-6) and is_neutral(tinted, spread=0.0)
