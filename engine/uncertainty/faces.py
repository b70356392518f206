"""Frontal faces, so that the uncertainty summary can say "mostly in the faces" (Qt-free).

The detector is Viola and Jones' boosted Haar cascade with the frontal-face model Rainer Lienhart
trained for OpenCV (``models/haarcascade-frontalface-default.xml``, Intel License Agreement,
card ``models/cards/haarcascade-frontalface-default.md``). OpenCV 5 no longer has
``cv2.CascadeClassifier``, so this module evaluates the cascade itself, the way OpenCV 4's
``detectMultiScale`` does: an image pyramid (scale factor 1.1), the 24×24 window at every
second position, each window's Haar features normalised by its standard deviation, stage by
stage on the windows still alive, then overlapping hits grouped (``groupRectangles``, eps 0.2).
It is tested against OpenCV 4.10's own detections (``tests/test_faces.py``).
"""

from __future__ import annotations

import functools
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import cv2
import numpy as np

CASCADE_NAME = "haarcascade-frontalface-default.xml"
#: sha256 of the bundled cascade (as shipped in opencv-python-headless 4.10.0.84, cv2/data/).
CASCADE_SHA256 = "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0"
#: Pyramid step and the neighbours a face needs (OpenCV's defaults are 1.1 and 3; 5 drops most
#: of the Haar model's false hits on texture).
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 5
#: Faces are searched on a copy whose long side is at most this (pixels): faces under about
#: 24 × (long side / DETECT_SIDE) px are not found, which a summary does not need.
DETECT_SIDE = 640
#: While more than this fraction of the windows is alive, a stage is evaluated on every window
#: with whole shifted tables (fast slices) rather than on the live ones by gathers.
DENSE_FRACTION = 0.15
#: Largest number of table look-ups per vectorised step (bounds memory: 8 bytes each).
_CHUNK = 4_000_000


@dataclass(frozen=True)
class Cascade:
    """A parsed stump cascade: ``window`` (w, h); per weak classifier its stage, feature,
    threshold and two leaves; per feature up to three rectangles ``(x, y, w, h)`` and weights."""

    window: tuple[int, int]
    stage_thresholds: np.ndarray
    stage_ends: np.ndarray
    weak_feature: np.ndarray
    weak_threshold: np.ndarray
    weak_leaves: np.ndarray
    rects: np.ndarray
    weights: np.ndarray


def parse_cascade(text: bytes) -> Cascade:
    """Parse OpenCV's (new-format) XML Haar cascade of stumps (no tilted features)."""
    root = ET.fromstring(text)
    c = root.find("cascade")
    if c is None or (c.findtext("stageType") or "").strip() != "BOOST" \
            or (c.findtext("featureType") or "").strip() != "HAAR":
        raise ValueError("not an OpenCV boosted Haar cascade")
    window = (int(c.findtext("width")), int(c.findtext("height")))
    thresholds, ends, feat, thr, leaves = [], [], [], [], []
    for stage in c.find("stages"):
        thresholds.append(float(stage.findtext("stageThreshold")))
        for weak in stage.find("weakClassifiers"):
            nodes = weak.findtext("internalNodes").split()
            if len(nodes) != 4:
                raise ValueError("only stump cascades are supported")
            feat.append(int(nodes[2]))
            thr.append(float(nodes[3]))
            leaves.append([float(v) for v in weak.findtext("leafValues").split()])
        ends.append(len(feat))
    features = list(c.find("features"))
    rects = np.zeros((len(features), 3, 4), np.int64)
    weights = np.zeros((len(features), 3), np.float64)
    for i, f in enumerate(features):
        if f.findtext("tilted") not in (None, "0"):
            raise ValueError("tilted Haar features are not supported")
        for j, r in enumerate(f.find("rects")):
            v = r.text.split()
            rects[i, j] = [int(float(x)) for x in v[:4]]
            weights[i, j] = float(v[4])
    return Cascade(window, np.asarray(thresholds), np.asarray(ends), np.asarray(feat), np.asarray(thr),
                   np.asarray(leaves), rects, weights)


@functools.lru_cache(maxsize=1)
def default_cascade() -> Cascade:
    """The bundled frontal-face cascade, its sha256 checked."""
    from ..assets import models_dir

    data = (models_dir() / CASCADE_NAME).read_bytes()
    if hashlib.sha256(data).hexdigest() != CASCADE_SHA256:
        raise ValueError(f"{CASCADE_NAME}: sha256 does not match the bundled cascade")
    return parse_cascade(data)


def _windows_at(cascade: Cascade, grey: np.ndarray, step: int) -> np.ndarray:
    """Top-left corners ``(N, 2)`` (x, y) of the windows every stage accepts on ``grey`` (uint8)."""
    ww, wh = cascade.window
    h, w = grey.shape
    if h < wh or w < ww:
        return np.zeros((0, 2), np.int64)
    s, sq = cv2.integral2(grey, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    s, sq = s.ravel(), sq.ravel()
    stride = w + 1
    ys, xs = np.mgrid[0:h - wh + 1:step, 0:w - ww + 1:step]
    base = (ys * stride + xs).ravel()

    def box(table, offset, x, y, bw, bh):
        o = offset + y * stride + x
        return table[o + bh * stride + bw] - table[o + bw] - table[o + bh * stride] + table[o]

    area = float((ww - 2) * (wh - 2))  # OpenCV normalises on the window less a 1-pixel border
    sums, sqsums = box(s, base, 1, 1, ww - 2, wh - 2), box(sq, base, 1, 1, ww - 2, wh - 2)
    nf = area * sqsums - sums * sums
    norm = 1.0 / np.where(nf > 0, np.sqrt(np.maximum(nf, 0.0)), 1.0)
    norm_grid = norm.reshape(ys.shape)
    r = cascade.rects
    tl = r[..., 1] * stride + r[..., 0]
    corners = np.stack([tl, tl + r[..., 2], tl + r[..., 3] * stride, tl + r[..., 3] * stride + r[..., 2]], axis=-1)
    grid = (ys.shape[0], ys.shape[1])
    table = s.reshape(h + 1, w + 1)

    def at(dy, dx):  # the integral at (window corner + (dy, dx)) for every window of the grid
        return table[dy:dy + step * grid[0]:step, dx:dx + step * grid[1]:step]

    alive = np.ones(base.size, bool)
    start = 0
    for stage, end in enumerate(cascade.stage_ends):
        f = cascade.weak_feature[start:end]
        if alive.mean() > DENSE_FRACTION:  # most windows alive: whole shifted tables beat gathers
            total = np.zeros(grid)
            for k, fi in enumerate(f):
                value = np.zeros(grid)
                for (x, y, bw, bh), wt in zip(cascade.rects[fi], cascade.weights[fi], strict=True):
                    if wt == 0.0:
                        continue
                    value += wt * (at(y + bh, x + bw) - at(y, x + bw) - at(y + bh, x) + at(y, x))
                left = value * norm_grid < cascade.weak_threshold[start + k]
                total += np.where(left, cascade.weak_leaves[start + k, 0], cascade.weak_leaves[start + k, 1])
            alive &= total.ravel() >= cascade.stage_thresholds[stage]
            start = end
            continue
        if base.size == alive.size:
            base, norm = base[alive], norm[alive]
        cs, wts = corners[f], cascade.weights[f]  # (n, 3, 4), (n, 3)
        total = np.zeros(base.size)
        per = max(1, _CHUNK // max(cs.size, 1))
        for a in range(0, base.size, per):
            b = base[a:a + per]
            idx = b[None, None, None, :] + cs[..., None]  # (n, 3, 4, m)
            v = s[idx]
            rect_sums = v[:, :, 3] - v[:, :, 1] - v[:, :, 2] + v[:, :, 0]
            value = (wts[..., None] * rect_sums).sum(axis=1) * norm[None, a:a + per]
            left = value < cascade.weak_threshold[start:end, None]
            total[a:a + per] = np.where(left, cascade.weak_leaves[start:end, 0, None],
                                        cascade.weak_leaves[start:end, 1, None]).sum(axis=0)
        keep = total >= cascade.stage_thresholds[stage]
        base, norm = base[keep], norm[keep]
        start = end
        if base.size == 0:
            break
    if base.size == alive.size:
        base = base[alive]
    return np.stack([base % stride, base // stride], axis=1)


def _similar(a, b, eps: float) -> bool:
    delta = eps * (min(a[2], b[2]) + min(a[3], b[3])) * 0.5
    return (abs(a[0] - b[0]) <= delta and abs(a[1] - b[1]) <= delta
            and abs(a[0] + a[2] - b[0] - b[2]) <= delta and abs(a[1] + a[3] - b[1] - b[3]) <= delta)


def group_rectangles(rects: list[tuple[int, int, int, int]], min_neighbours: int,
                     eps: float = 0.2) -> list[tuple[int, int, int, int]]:
    """OpenCV's ``groupRectangles``: cluster similar rectangles, keep the clusters of more than
    ``min_neighbours`` members as their mean, and drop a kept one inside a stronger one."""
    n = len(rects)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if _similar(rects[i], rects[j], eps):
                parent[find(i)] = find(j)
    classes: dict[int, list[int]] = {}
    for i in range(n):
        classes.setdefault(find(i), []).append(i)
    means, counts = [], []
    for members in classes.values():
        if len(members) <= min_neighbours:
            continue
        m = np.asarray([rects[i] for i in members], np.float64).mean(axis=0)
        means.append(tuple(int(np.floor(v + 0.5)) for v in m))
        counts.append(len(members))
    out = []
    for i, (r1, n1) in enumerate(zip(means, counts, strict=True)):
        inside = False
        for j, (r2, n2) in enumerate(zip(means, counts, strict=True)):
            dx, dy = int(np.floor(r2[2] * eps + 0.5)), int(np.floor(r2[3] * eps + 0.5))
            if i != j and n2 > min_neighbours and r1[0] >= r2[0] - dx and r1[1] >= r2[1] - dy \
                    and r1[0] + r1[2] <= r2[0] + r2[2] + dx and r1[1] + r1[3] <= r2[1] + r2[3] + dy \
                    and (n2 > max(3, n1) or n1 < 3):
                inside = True
                break
        if not inside:
            out.append(r1)
    return out


def detect_grey(grey: np.ndarray, cascade: Cascade | None = None, *, scale_factor: float = SCALE_FACTOR,
                min_neighbours: int = MIN_NEIGHBOURS) -> list[tuple[int, int, int, int]]:
    """Faces ``(x, y, w, h)`` in pixels of a uint8 grey image, as OpenCV 4's
    ``CascadeClassifier.detectMultiScale(grey, scale_factor, min_neighbours)``."""
    cascade = cascade or default_cascade()
    ww, wh = cascade.window
    h, w = grey.shape
    hits: list[tuple[int, int, int, int]] = []
    factor = 1.0
    while True:
        win = (int(round(ww * factor)), int(round(wh * factor)))
        size = (int(round(w / factor)), int(round(h / factor)))
        if win[0] > w or win[1] > h or size[0] < ww or size[1] < wh:
            break
        scaled = grey if factor == 1.0 else cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
        step = 1 if factor > 2.0 else 2
        for x, y in _windows_at(cascade, scaled, step):
            hits.append((int(round(x * factor)), int(round(y * factor)), win[0], win[1]))
        factor *= scale_factor
    return group_rectangles(hits, min_neighbours)


def detect_faces(image: np.ndarray, *, max_side: int = DETECT_SIDE,
                 min_neighbours: int = MIN_NEIGHBOURS) -> list[tuple[int, int, int, int]]:
    """Frontal faces ``(x, y, w, h)`` in pixels of ``image`` (HxWx3 float in [0, 1] or uint8),
    searched on a grey copy whose long side is at most ``max_side``."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    grey = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    h, w = grey.shape
    scale = min(1.0, max_side / float(max(h, w)))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)),
                          interpolation=cv2.INTER_AREA)
    faces = detect_grey(grey, min_neighbours=min_neighbours)
    return [(int(round(x / scale)), int(round(y / scale)), int(round(fw / scale)), int(round(fh / scale)))
            for x, y, fw, fh in faces]


def face_mask(shape: tuple[int, int], faces: list[tuple[int, int, int, int]]) -> np.ndarray:
    """HxW bool: True inside any of ``faces``."""
    mask = np.zeros(shape, bool)
    for x, y, w, h in faces:
        mask[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = True
    return mask
