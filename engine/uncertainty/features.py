"""Per-pixel features the uncertainty model is fitted on (Qt-free, cheap: a few box filters).

Every feature is computed from what a stage saw and made (its input ``before`` and its output
``after``, HxWx3 float32 in [0, 1]), the analysed noise level and the analysed severity; none
needs another network run. Units are 8-bit levels where a feature is a pixel difference.
"""

from __future__ import annotations

from typing import Union

import cv2
import numpy as np

#: Side of the box (pixels) that turns per-pixel differences into local means. Odd.
WINDOW = 7

#: The feature names, in the order of :func:`feature_stack`'s planes (after the constant 1).
FEATURES = ("change", "texture_after", "texture_before", "noise", "severity", "severity_after", "dark", "bright",
            "luminance", "dark_channel", "dark_channel_before", "texture_x_severity", "texture_x_severity_after",
            "noise_x_severity", "change_x_severity")
#: The planes :func:`raw_planes` computes (those that do not depend on the severities).
RAW = ("change", "texture_after", "texture_before", "noise", "dark", "bright", "luminance", "dark_channel",
       "dark_channel_before")


def _grey(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image, np.float32).mean(axis=2, dtype=np.float32))


def _box(plane: np.ndarray, window: int = WINDOW) -> np.ndarray:
    return cv2.blur(plane, (window, window), borderType=cv2.BORDER_REFLECT)


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy) * np.float32(0.125)  # Sobel's gain is 8 for a unit step


def noise_plane(noise_sigma: Union[None, float, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The analysed noise σ as an HxW plane in 8-bit levels. ``noise_sigma``: ``None`` (unknown:
    0), a number or a per-channel ``(3,)`` vector in [0, 1] units, or an HxWx3 / HxW map."""
    if noise_sigma is None:
        return np.zeros(shape, np.float32)
    s = np.asarray(noise_sigma, np.float32)
    if s.ndim == 3:
        s = s.mean(axis=2)
    if s.ndim == 2 and s.shape == shape:
        return (s * np.float32(255.0)).astype(np.float32)
    return np.full(shape, float(s.mean()) * 255.0, np.float32)


def raw_planes(before: np.ndarray, after: np.ndarray, *, noise_sigma=None) -> np.ndarray:
    """``(len(RAW), H, W)`` float32, the planes of :data:`RAW`:

    - ``change``: log1p of the local mean absolute change |after − before| (levels);
    - ``texture_after`` / ``texture_before``: log1p of the local mean gradient magnitude of the
      output / input grey (levels per pixel);
    - ``noise``: log1p of the analysed noise σ (levels);
    - ``dark`` / ``bright``: how far the local output brightness is below 0.15 / above 0.85
      (clipped tones hide error and cause it); ``luminance``: the local output brightness;
    - ``dark_channel`` / ``dark_channel_before``: the local mean of the smallest channel of the
      output / input (haze left, haze there was)."""
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f"before {before.shape} and after {after.shape} must be the same HxWx3 shape")
    h, w = before.shape[:2]
    before = np.asarray(before, np.float32)
    after = np.asarray(after, np.float32)
    gb, ga = _grey(before), _grey(after)
    change = np.abs(after - before).mean(axis=2, dtype=np.float32)
    lum = _box(ga)
    return np.stack([
        np.log1p(_box(change) * 255.0),
        np.log1p(_box(_gradient(ga)) * 255.0),
        np.log1p(_box(_gradient(gb)) * 255.0),
        np.log1p(noise_plane(noise_sigma, (h, w))),
        np.clip(0.15 - lum, 0.0, None) / 0.15,
        np.clip(lum - 0.85, 0.0, None) / 0.15,
        lum,
        _box(np.ascontiguousarray(after.min(axis=2))),
        _box(np.ascontiguousarray(before.min(axis=2))),
    ]).astype(np.float32, copy=False)


def assemble(raw: np.ndarray, severity: float = 0.0, severity_after: float = 0.0) -> np.ndarray:
    """``(1 + len(FEATURES), ...)``: a constant 1, then :data:`FEATURES` from the :data:`RAW`
    planes and the analysed severity of the kind at the input and at the output (0..1 each: what
    there was and what is left to fix), with the products of texture, noise and change with them
    (detail is where an unfinished fix leaves its error)."""
    r = {name: raw[i].astype(np.float32, copy=False) for i, name in enumerate(RAW)}
    sev, sev_after = np.float32(severity), np.float32(severity_after)
    one = np.ones_like(r["change"])
    planes = [one, r["change"], r["texture_after"], r["texture_before"], r["noise"], one * sev, one * sev_after,
              r["dark"], r["bright"], r["luminance"], r["dark_channel"], r["dark_channel_before"],
              r["texture_before"] * sev, r["texture_after"] * sev_after, r["noise"] * sev, r["change"] * sev]
    return np.stack(planes).astype(np.float32, copy=False)


def feature_stack(before: np.ndarray, after: np.ndarray, *, noise_sigma=None,
                  severity: float = 0.0, severity_after: float = 0.0) -> np.ndarray:
    """``(1 + len(FEATURES), H, W)`` float32: :func:`assemble` of :func:`raw_planes`."""
    return assemble(raw_planes(before, after, noise_sigma=noise_sigma), severity, severity_after)


def absolute_error(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The per-pixel error the model predicts: mean over channels of |output − truth|, in
    8-bit levels (HxW float32)."""
    return (np.abs(np.asarray(output, np.float32) - np.asarray(truth, np.float32)).mean(axis=2)
            * np.float32(255.0)).astype(np.float32)


def change_magnitude(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The viewer's change map before this work (the baseline): mean |after − before| over
    channels, in 8-bit levels."""
    return absolute_error(after, before)
