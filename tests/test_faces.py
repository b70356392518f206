"""The face detector behind the uncertainty summary (engine/uncertainty/faces.py): the bundled
Haar cascade, evaluated without OpenCV 4's CascadeClassifier, finds the faces OpenCV 4.10 finds,
and the summary names faces when the uncertain pixels are in them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from engine.uncertainty import describe, summarise
from engine.uncertainty.faces import CASCADE_NAME, CASCADE_SHA256, default_cascade, detect_faces, detect_grey

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "astronaut_hazy.png"
CLEAN = REPO.parent / "shared" / "data" / "clean"

#: What OpenCV 4.10.0's ``CascadeClassifier(haarcascade_frontalface_default.xml)
#: .detectMultiScale(grey, 1.1, 3)`` returned (opencv-python-headless 4.10.0.84, run by hand;
#: grey = ``cv2.imread(path, IMREAD_GRAYSCALE)`` of the photo, or RGB→grey of the sample).
OPENCV_410 = {
    "bsds500_test_100039.jpg": [(285, 154, 72, 72)],
    "bsds500_test_14085.jpg": [(271, 140, 116, 116), (76, 161, 66, 66)],
    "bsds500_test_15011.jpg": [(346, 89, 31, 31), (182, 93, 49, 49), (108, 87, 43, 43), (312, 224, 66, 66)],
}
OPENCV_410_SAMPLE = [(132, 50, 71, 71)]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def sample_rgb() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(SAMPLE).convert("RGB"))


def test_bundled_cascade_is_the_published_file():
    from engine.assets import models_dir

    data = (models_dir() / CASCADE_NAME).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CASCADE_SHA256
    assert b"Intel License Agreement" in data[:2000]
    c = default_cascade()
    assert c.window == (24, 24) and len(c.stage_ends) == 25 and c.rects.shape == (2913, 3, 4)
    assert c.stage_ends[-1] == c.weak_feature.size and c.weak_feature.max() < 2913


def test_finds_the_face_in_the_bundled_sample_as_opencv_does():
    import cv2

    grey = cv2.cvtColor(sample_rgb(), cv2.COLOR_RGB2GRAY)
    found = detect_grey(grey, scale_factor=1.1, min_neighbours=3)
    assert len(found) == len(OPENCV_410_SAMPLE)
    assert iou(found[0], OPENCV_410_SAMPLE[0]) > 0.9
    # the default settings (5 neighbours, float input) find it too, and nothing on a face-free image
    assert len(detect_faces(sample_rgb().astype(np.float32) / 255.0)) == 1
    rng = np.random.default_rng(0)
    assert detect_faces(rng.uniform(0, 1, (160, 200, 3)).astype(np.float32)) == []


@pytest.mark.skipif(not CLEAN.is_dir(), reason="shared/data/clean is not available")
@pytest.mark.parametrize("name", sorted(OPENCV_410))
def test_same_faces_as_opencv_on_real_photos(name):
    import cv2

    grey = cv2.imread(str(CLEAN / name), cv2.IMREAD_GRAYSCALE)
    found = detect_grey(grey, scale_factor=1.1, min_neighbours=3)
    want = OPENCV_410[name]
    assert len(found) == len(want)
    for box in want:
        assert max(iou(box, f) for f in found) > 0.85


def test_summary_names_the_face_when_the_uncertain_pixels_are_in_it():
    img = sample_rgb().astype(np.float32) / 255.0
    faces = detect_faces(img)
    x, y, w, h = faces[0]
    levels = np.full(img.shape[:2], 2.0, np.float32)
    levels[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4] = 20.0  # uncertain only inside the face
    text = describe(levels, img, faces=faces)
    assert text.endswith("mostly in the face"), text
    s = summarise(levels, faces=faces)
    assert s["faces"] == 1 and s["fraction_in_faces"] == 1.0
    # the same amount of uncertainty in the sky (top left corner, no face there) is not the face's
    elsewhere = np.full(img.shape[:2], 2.0, np.float32)
    elsewhere[:h // 2, :w // 2] = 20.0
    assert "face" not in describe(elsewhere, img, faces=faces)
    assert summarise(elsewhere, faces=faces)["fraction_in_faces"] == 0.0
    # a face filling most of the frame holds most of a map that is high everywhere: not "mostly"
    everywhere = np.full(img.shape[:2], 20.0, np.float32)
    big = [(0, 0, 320, 320)]
    assert summarise(everywhere, faces=big)["fraction_in_faces"] > 0.6
    assert "face" not in describe(everywhere, img, faces=big)
    # without faces the keys are absent (the JSON's contract stays the three numbers)
    assert set(summarise(levels)) == {"mean", "p95", "fraction_above"}
