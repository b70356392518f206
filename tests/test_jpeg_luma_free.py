"""benchmarks/jpeg_luma_free.py: the features it reads off a camera save, and its classifier fit
(the measurement that says whether the JPEG stage may loosen a camera save's luma intervals)."""

from __future__ import annotations

import io
import sys

import cv2
import numpy as np
from PIL import Image

from engine.experts.classical.jpeg_qcp import constraints
from engine.imageio import load_photo
from testdata import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from jpeg_luma_free import _choose, fit_logistic, luma_noise_features  # noqa: E402


def _saved(tmp_path, name: str, rgb: np.ndarray, quality: int = 75):
    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=quality,
                                                                           subsampling=2)
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return load_photo(path)


def test_features_read_the_noise_a_camera_save_kept_in_its_flat_blocks(tmp_path):
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32) / 128
    flat = np.stack([0.4 + 0.2 * xx, 0.5 - 0.1 * yy, 0.45 + 0.05 * xx], axis=2)
    blotchy = cv2.GaussianBlur(np.random.default_rng(3).normal(0, 0.12, flat.shape).astype(np.float32), (0, 0), 1.0)
    feats = {}
    for name, img in (("clean", flat), ("noisy", flat + blotchy)):
        photo = _saved(tmp_path, name + ".jpg", img)
        estimate = cv2.GaussianBlur(photo.pixels, (0, 0), 3.0)  # a denoiser's flat estimate
        feats[name] = luma_noise_features(estimate, constraints(photo.pixels, photo.jpeg), photo.jpeg)
    assert feats["clean"].shape == feats["noisy"].shape == (12,)
    # flattest quarter, lowest frequencies: the noise the encoder kept, in quantisation steps
    assert feats["noisy"][0] > feats["clean"][0] + 1.0, feats
    assert feats["noisy"][9] > feats["clean"][9], feats  # and in the chroma


def test_a_grey_file_reads_no_chroma(tmp_path):
    grey = np.repeat(np.random.default_rng(4).uniform(0.3, 0.7, (64, 64, 1)), 3, axis=2).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray((grey[..., 0] * 255).astype(np.uint8), "L").save(buf, "JPEG", quality=75)
    (tmp_path / "g.jpg").write_bytes(buf.getvalue())
    photo = load_photo(tmp_path / "g.jpg")
    f = luma_noise_features(photo.pixels, constraints(photo.pixels, photo.jpeg), photo.jpeg)
    assert np.all(f[9:] == -7.0) and np.all(f[:9] > -7.0)


def test_threshold_keeps_the_clean_budget_and_no_costly_clean_flag():
    rng = np.random.default_rng(0)
    xc = rng.normal(0.0, 1.0, (200, 3))
    xn = rng.normal(1.5, 1.0, (200, 3))
    loss_clean = np.where(xc[:, 0] > 1.5, -0.3, -0.01)  # the cleans that look noisiest lose most
    gain_noisy = np.where(xn[:, 0] > 1.0, 0.2, -0.1)
    *_, t, score = _choose(xc, loss_clean, xn, gain_noisy, l2=1.0)
    flagged = score(xc) > t
    assert flagged.mean() <= 0.02 and not (flagged & (loss_clean < -0.1)).any()
    assert (score(xn) > t).mean() > 0.1  # it still flags some noisy cases


def test_logistic_fit_finds_the_separating_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(float)
    w = fit_logistic(x, y, l2=0.1)
    assert w[0] > 0 > w[1] and abs(w[1] / w[0] + 0.5) < 0.15
    assert np.mean(((np.hstack([x, np.ones((400, 1))]) @ w) > 0) == (y > 0)) > 0.97

