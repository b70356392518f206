"""benchmarks/real_noise_headroom.py and benchmarks/jpeg_after_sigma.py: which crops the headroom
measurement takes from a plan's JSON lines, the band reading of a camera save's noise, and the
σ rule and its interpolated gain that the post-JPEG-stage fit scores."""

from __future__ import annotations

import io
import json
import sys

import cv2
import numpy as np
from PIL import Image

from engine.experts.classical.jpeg_qcp import constraints
from engine.imageio import load_photo
from testdata import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from jpeg_after_sigma import AFTER_SIGMAS, band_feature, gain_at, rule_sigma  # noqa: E402
from real_noise_headroom import jpeg_only  # noqa: E402


def _stage(name: str, dropped: bool) -> dict:
    return {"stage": name, "dropped": dropped}


def test_only_crops_whose_plan_kept_the_jpeg_stage_and_no_noise_stage_are_taken(tmp_path):
    lines = [
        {"input": "/x/a.JPG", "output": "/o/a.jpg", "stages": [_stage("jpeg", False)]},
        {"input": "/x/b.JPG", "output": "/o/b.jpg", "stages": [_stage("noise", False)]},
        {"input": "/x/c.JPG", "output": "/o/c.jpg", "stages": [_stage("jpeg", False), _stage("noise", False)]},
        {"input": "/x/d.JPG", "output": "/o/d.jpg", "stages": [_stage("jpeg", True), _stage("noise", False)]},
        {"input": "/x/e.JPG", "output": "/o/e.jpg", "stages": [_stage("jpeg", False), _stage("blur", True),
                                                                _stage("noise", True)]},
        {"input": "/x/f.JPG", "output": None, "error": "failed", "stages": []},
    ]
    plan = tmp_path / "plan.json"
    plan.write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    assert [p.name for p, _ in jpeg_only([plan])] == ["a.JPG", "e.JPG"]


def test_the_rule_tells_nothing_below_its_offset_and_is_capped():
    assert rule_sigma(3.0, 8.0, 4.0) == 0.0
    assert rule_sigma(4.5, 8.0, 4.0) == 4.0
    assert rule_sigma(9.0, 8.0, 4.0) == 6.0
    assert rule_sigma(float("nan"), 8.0, 4.0) == 0.0


def test_gain_is_interpolated_from_the_stage_alone_at_sigma_zero():
    row = {"jpeg": 1.0} | {str(s): 1.0 + 0.1 * s for s in AFTER_SIGMAS}
    assert gain_at(row, 0.0) == 0.0
    assert abs(gain_at(row, 0.5) - 0.05) < 1e-9
    assert abs(gain_at(row, 2.5) - 0.25) < 1e-9
    assert abs(gain_at(row, 50.0) - 0.1 * AFTER_SIGMAS[-1]) < 1e-9


def test_band_reads_more_for_a_save_that_kept_more_noise(tmp_path):
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32) / 128
    flat = np.stack([0.4 + 0.2 * xx, 0.5 - 0.1 * yy, 0.45 + 0.05 * xx], axis=2)
    noise = np.random.default_rng(5).normal(0, 0.03, flat.shape).astype(np.float32)
    bands = {}
    for name, img in (("clean", flat), ("noisy", flat + noise)):
        buf = io.BytesIO()
        Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=75,
                                                                              subsampling=2)
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(buf.getvalue())
        photo = load_photo(path)
        estimate = cv2.GaussianBlur(photo.pixels, (0, 0), 3.0)  # a denoiser's flat estimate
        bands[name] = band_feature(estimate, constraints(photo.pixels, photo.jpeg))
    assert bands["clean"] < 1.0 < 3.0 < bands["noisy"]
