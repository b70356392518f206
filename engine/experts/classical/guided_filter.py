"""He et al.'s guided filter (edge-preserving smoothing steered by a guide image).

Plain functions on float32 arrays; box means come from ``cv2.boxFilter`` so the cost is O(1)
per pixel whatever the radius.
"""

from __future__ import annotations

import cv2
import numpy as np


def box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (reflected borders), float32 in, float32 out."""
    k = 2 * int(radius) + 1
    return cv2.boxFilter(a, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter_gray(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``src`` (H x W float32) steered by a single-channel ``guide`` (H x W float32).

    ``eps`` is the regularisation in squared guide units (guide in [0, 1] → eps ~1e-4..1e-2).
    """
    guide = guide.astype(np.float32, copy=False)
    src = src.astype(np.float32, copy=False)
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def guided_filter_color(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``src`` (H x W float32) steered by a colour ``guide`` (H x W x 3 float32, [0, 1]).

    The colour guide keeps edges that only differ in hue, which a grey guide would blur.
    """
    guide = guide.astype(np.float32, copy=False)
    src = src.astype(np.float32, copy=False)
    mean_i = [box_mean(guide[..., c], radius) for c in range(3)]
    mean_p = box_mean(src, radius)
    cov = [box_mean(guide[..., c] * src, radius) - mean_i[c] * mean_p for c in range(3)]
    var = np.empty(guide.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            v = box_mean(guide[..., i] * guide[..., j], radius) - mean_i[i] * mean_i[j]
            var[..., i, j] = var[..., j, i] = v
    var += np.eye(3, dtype=np.float32) * eps
    a = np.linalg.solve(var, np.stack(cov, axis=-1)[..., None])[..., 0]
    b = mean_p - sum(a[..., c] * mean_i[c] for c in range(3))
    return sum(box_mean(np.ascontiguousarray(a[..., c]), radius) * guide[..., c] for c in range(3)) \
        + box_mean(b, radius)
