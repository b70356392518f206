"""Explainable image statistics behind each degradation verdict.

Every function takes a float32 HxWx3 sRGB-encoded image in [0, 1] (or a list of such tiles)
and returns a ``dict`` of named measurements (plain floats) whose units are stated below. The
mapping from a measurement to a severity lives in :mod:`engine.analysis.calibration`.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..color import REC709_LUMA, channel_max, channel_min, luminance

#: The std of luma of i.i.d. per-channel noise is this factor times σ.
_LUMA_NOISE_GAIN = float(np.sqrt((REC709_LUMA ** 2).sum()))  # ≈ 0.749


def line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A 1-px-wide straight line of ``length`` (odd) pixels at ``angle_deg`` (0 = horizontal,
    counter-clockwise) as a uint8 structuring element for cv2 morphology."""
    length = int(length) | 1
    kernel = np.zeros((length, length), np.uint8)
    c = length // 2
    t = np.arange(-c, c + 1)
    xs = np.round(c + t * np.cos(np.deg2rad(angle_deg))).astype(int)
    ys = np.round(c - t * np.sin(np.deg2rad(angle_deg))).astype(int)
    kernel[ys, xs] = 1
    return kernel


# ---------------------------------------------------------------- noise
def haar_diagonal(channel: np.ndarray) -> np.ndarray:
    """Finest-scale orthonormal Haar diagonal detail (HH) of an H x W float array, float32
    H/2 x W/2 (an odd last row or column is dropped). Its std is that of i.i.d. pixel noise, so
    ``median(|HH|) / 0.6745`` estimates σ (Donoho's wavelet MAD)."""
    h, w = channel.shape[0] // 2 * 2, channel.shape[1] // 2 * 2
    c = channel[:h, :w].astype(np.float32, copy=False)
    return (c[0::2, 0::2] - c[0::2, 1::2] - c[1::2, 0::2] + c[1::2, 1::2]) * 0.5


def noise_level(tiles: Sequence[np.ndarray], block: int = 32, percentile: float = 10.0) -> dict[str, float]:
    """Noise std from the finest diagonal wavelet band.

    Luma is split into ``block``×``block`` pixel blocks; in each, σ = MAD(Haar HH)/0.6745 (HH of
    a 2×2 Haar transform has the std of i.i.d. pixel noise, and texture only adds to it). The
    ``percentile``-th lowest block σ is kept (flat blocks tell the noise, textured blocks
    overstate it); blocks with >5 % clipped pixels are skipped. Divided by the luma gain so it
    reads as a per-channel σ.

    Returns ``sigma_255``: per-channel noise std in 8-bit levels (0..255 scale);
    ``blocks``: number of blocks that were used.
    """
    sigmas: list[np.ndarray] = []
    fallback: list[np.ndarray] = []
    half = block // 2
    for tile in tiles:
        lum = luminance(tile)
        if lum.shape[0] < 2 or lum.shape[1] < 2:
            continue
        hh = haar_diagonal(lum)
        fallback.append(np.abs(hh).ravel())
        nby, nbx = hh.shape[0] // half, hh.shape[1] // half
        if nby == 0 or nbx == 0:
            continue
        coef = hh[:nby * half, :nbx * half].reshape(nby, half, nbx, half).swapaxes(1, 2).reshape(nby * nbx, -1)
        pix = lum[:nby * block, :nbx * block].reshape(nby, block, nbx, block).swapaxes(1, 2).reshape(nby * nbx, -1)
        clipped = ((pix <= 0.005) | (pix >= 0.995)).mean(axis=1)
        block_sigma = np.median(np.abs(coef), axis=1) / 0.6745
        sigmas.append(block_sigma[clipped < 0.05])
    used = np.concatenate(sigmas) if sigmas else np.empty(0)
    if used.size >= 4:
        sigma = float(np.percentile(used, percentile))
    elif fallback:
        sigma = float(np.median(np.concatenate(fallback)) / 0.6745)
    else:
        sigma = 0.0
    return {"sigma_255": sigma / _LUMA_NOISE_GAIN * 255.0, "blocks": float(used.size)}


#: Coarse chroma noise estimates of the clean calibration photos stay below ~1.8 levels
#: (max 1.83, p95 1.41 over benchmarks/calibrate_analysis.py's 42 photos); this floor is
#: subtracted before a coarse estimate can drive the noise severity.
CHROMA_TEXTURE_FLOOR_255 = 2.0


def chroma_noise_level(tiles: Sequence[np.ndarray]) -> dict[str, float]:
    """Noise that is spatially correlated and mostly in colour (real camera noise after
    demosaicing and processing), which the finest luma band misses.

    The chroma planes (R−G)/√2 and (B−G)/√2 are area-downscaled 2× (this also skips the
    blocks that 4:2:0 JPEG chroma subsampling smooths) and measured like :func:`noise_level`; the
    estimate is multiplied by 2 (averaging 4 i.i.d. pixels halves σ) and the larger plane kept.
    Natural texture is mostly luma, so clean photos read near 0 here.

    Returns ``sigma_chroma_255`` (8-bit levels) and ``chroma_excess_255`` =
    ``sigma_chroma_255 − CHROMA_TEXTURE_FLOOR_255``.
    """
    best = 0.0
    for a, b in ((0, 1), (2, 1)):
        planes = []
        for tile in tiles:
            h, w = tile.shape[0] // 2, tile.shape[1] // 2
            if h < 2 or w < 2:
                continue
            plane = np.ascontiguousarray((tile[..., a] - tile[..., b]) * np.float32(1 / np.sqrt(2)) + 0.5)
            small = cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA)
            planes.append(np.repeat(small[:, :, None], 3, axis=2))
        if planes:
            best = max(best, noise_level(planes)["sigma_255"] * _LUMA_NOISE_GAIN * 2.0)
    return {"sigma_chroma_255": best, "chroma_excess_255": best - CHROMA_TEXTURE_FLOOR_255}


# ---------------------------------------------------------------- JPEG
def blockiness(tiles: Sequence[np.ndarray], cap_255: float = 20.0) -> dict[str, float]:
    """8×8 JPEG grid strength.

    For horizontal and vertical luma steps (in 8-bit levels, each capped at ``cap_255`` so real
    edges do not dominate), the mean step is taken separately for each of the 8 column (row)
    phases. A JPEG grid aligned with the image origin makes phase 7 (between pixel 8k−1 and 8k)
    stand out. Tiles must start at multiples of 8.

    Returns ``blockiness``: mean over both axes of log(step at the aligned boundary phase /
    median step of the other phases) (0 = no grid; ≈0.3 at quality 50, ≈0.7 at quality 10);
    ``best_phase_x``/``best_phase_y``: the strongest phase per axis (7 = aligned grid);
    ``misaligned``: log-ratio of the strongest non-aligned phase, for cropped JPEGs.
    """
    sums = np.zeros((2, 8))
    counts = np.zeros((2, 8))
    for tile in tiles:
        lum = luminance(tile) * 255.0
        for axis, arr in enumerate((lum, lum.T)):
            if arr.shape[1] < 16:
                continue
            steps = np.minimum(np.abs(np.diff(arr, axis=1)), cap_255)
            for phase in range(8):
                part = steps[:, phase::8]
                sums[axis, phase] += part.sum()
                counts[axis, phase] += part.size
    if (counts == 0).any():
        return {"blockiness": 0.0, "best_phase_x": -1.0, "best_phase_y": -1.0, "misaligned": 0.0}
    means = sums / counts
    ratios = np.empty((2, 8))
    for axis in range(2):
        for phase in range(8):
            others = np.delete(means[axis], phase)
            ratios[axis, phase] = np.log((means[axis, phase] + 1e-3) / (np.median(others) + 1e-3))
    return {"blockiness": float(ratios[:, 7].mean()),
            "best_phase_x": float(np.argmax(ratios[0])), "best_phase_y": float(np.argmax(ratios[1])),
            "misaligned": float(ratios[:, :7].max(axis=1).mean())}


# ---------------------------------------------------------------- blur
def edge_width(image: np.ndarray, noise_sigma: float = 0.0, window: int = 31,
               percentile: float = 99.0) -> dict[str, float]:
    """Width of the sharpest edges, per direction; blur widens every edge.

    Luma is smoothed (Gaussian σ = 0.7 px, so noise does not pass for detail). For each of
    4 directions (0°, 45°, 90°, 135°) the directional derivative D is divided by the luma range C
    (of the 3×3-median-filtered luma) in a ``window``-px line along that direction: for an edge
    ramp of width w, D/C ≈ 1/w. The
    ``percentile``-th highest D/C among pixels with enough contrast gives that direction's
    sharpest edge; its inverse is the edge width in px. Motion blur widens edges along one
    direction only, so the widest direction is reported. ``noise_sigma`` (0..1 scale) raises
    the contrast threshold.

    Returns ``edge_width_px`` (≈3.2 for sharp photos at their native size; grows with blur),
    ``mean_width_px`` (over directions), ``blur_direction_deg`` and ``edge_pixels`` (how
    many pixels qualified, a confidence cue). ``edge_width_px`` is NaN when no direction had
    enough edges.
    """
    raw = luminance(image)
    lum = cv2.GaussianBlur(raw, (0, 0), 0.7)
    # The range is taken on a 3×3 median: noise and thin bright streaks no longer inflate it,
    # while step edges keep their full height.
    ranged = cv2.medianBlur(raw, 3)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    lo, hi = np.percentile(lum, [1, 99]) if lum.size else (0.0, 0.0)
    threshold = max(float(np.clip(0.3 * (hi - lo), 0.03, 0.12)), 2.0 * noise_sigma)
    widths: dict[float, float] = {}
    total = 0
    for angle in (0.0, 45.0, 90.0, 135.0):
        rad = np.deg2rad(angle)
        deriv = np.abs(np.cos(rad) * gx - np.sin(rad) * gy)
        kernel = line_kernel(window, angle)
        contrast = cv2.dilate(ranged, kernel) - cv2.erode(ranged, kernel)
        mask = contrast > threshold
        n = int(mask.sum())
        total += n
        if n < 50:
            continue
        widths[angle] = 1.0 / max(float(np.percentile(deriv[mask] / contrast[mask], percentile)), 1e-3)
    if not widths:
        return {"edge_width_px": float("nan"), "mean_width_px": float("nan"), "blur_direction_deg": -1.0,
                "edge_pixels": float(total)}
    worst = max(widths, key=widths.get)
    return {"edge_width_px": widths[worst], "mean_width_px": float(np.mean(list(widths.values()))),
            "blur_direction_deg": worst, "edge_pixels": float(total)}


def sharpest_tile_width(image: np.ndarray, grid: int = 3, min_edge_pixels: int = 200) -> dict[str, float]:
    """The edge width (:func:`edge_width`, px) of the sharpest of ``grid`` x ``grid`` tiles that
    have at least ``min_edge_pixels`` qualifying edge pixels. Camera shake widens the edges of
    every tile; a photo with a sharp subject before a soft background (shallow depth of field)
    keeps one tile sharp, and so do most noisy photos (noise is not width). Measured on the
    analysis' working copy: real shaken photos (blur_real_levin, shared/data/real/blurry_*)
    4.1 … 6.2 px; clean photos 2.6 … 3.5; the same with a synthetic shallow depth of field
    2.7 … 4.3 (one in 26 ≥ 4.0); real noisy DSLR crops 2.8 … 5.0 (7 in 20 ≥ 4.0).

    Returns ``sharpest_tile_width_px`` (NaN when no tile has enough edges) and
    ``sharp_tiles_counted`` (how many tiles qualified)."""
    h, w = image.shape[:2]
    widths = []
    for i in range(grid):
        for j in range(grid):
            tile = image[i * h // grid:(i + 1) * h // grid, j * w // grid:(j + 1) * w // grid]
            if min(tile.shape[:2]) < 32:
                continue
            m = edge_width(tile)
            if np.isfinite(m["edge_width_px"]) and m["edge_pixels"] >= min_edge_pixels:
                widths.append(m["edge_width_px"])
    return {"sharpest_tile_width_px": float(min(widths)) if widths else float("nan"),
            "sharp_tiles_counted": float(len(widths))}


# ---------------------------------------------------------------- haze
#: Fraction of the haziest dark-channel pixels the airlight is read from (as the dehazer does).
AIRLIGHT_FRACTION = 0.001


def haze_statistics(image: np.ndarray) -> dict[str, float]:
    """Dark-channel statistics (He et al.): haze-free outdoor photos have, in most patches, some
    pixel that is dark in some channel; haze lifts that floor towards the airlight.

    Returns ``dark_channel_p10``: 10th percentile of the dark channel (min over RGB, then a
    min filter of ~1/40 of the longer side), 0..1; ``dark_channel_mean``; ``contrast``: std of
    luma, 0..0.5; ``saturation``: mean HSV-style saturation, 0..1; and what tells a veil from a
    bright surface (:func:`veil_statistics`): ``veil_floor_chroma`` and ``veil_airlight``.
    """
    mn = channel_min(image)
    mx = channel_max(image)
    size = max(3, int(max(image.shape[:2]) / 40)) | 1
    kernel = np.ones((size, size), np.uint8)
    # a min filter of the channel minimum is the minimum of the channels' min filters: one pass each
    floors = [cv2.erode(np.ascontiguousarray(image[..., c]), kernel) for c in range(3)]
    dark = np.minimum(np.minimum(floors[0], floors[1]), floors[2])
    out = {"dark_channel_p10": float(np.percentile(dark, 10)), "dark_channel_mean": float(dark.mean()),
           "contrast": float(luminance(image).std()),
           "saturation": float(((mx - mn) / (mx + 1e-3)).mean())}
    out.update(veil_statistics(image, dark, floors))
    return out


def veil_statistics(image: np.ndarray, dark: np.ndarray, channel_floors: Sequence[np.ndarray]) -> dict[str, float]:
    """What the lifted dark channel is made of. Haze adds the airlight ``A·(1 − t)`` to every
    channel alike (fog and mist scatter all visible wavelengths about equally), so it lifts the
    floor of the red, green and blue channels together, towards grey; a bright, warm wall or page
    lifts the floor of its own colour (its blue floor far below its red one). And the airlight is
    the brightest thing in a hazy view (the veil lit by daylight); a dim, flat scene has a dim
    "airlight".

    ``image``: float32 HxWx3 in [0, 1]; ``dark``: its dark channel, ``channel_floors``: each channel
    after the min filter the dark channel was made with (see :func:`haze_statistics`). Returns
    ``veil_floor_chroma``: with F_c the 10th
    percentile of channel c after that min filter, (max F − min F) / max F, 0 (a grey floor) .. 1;
    ``veil_airlight``: mean brightness (0..1) of the :data:`AIRLIGHT_FRACTION` pixels of highest
    dark channel, where the dehazer reads its airlight."""
    floors = np.array([np.percentile(f, 10) for f in channel_floors], np.float64)
    chroma = float((floors.max() - floors.min()) / max(floors.max(), 1e-3))
    flat = dark.ravel()
    count = max(int(flat.size * AIRLIGHT_FRACTION), 1)
    idx = np.argpartition(flat, flat.size - count)[-count:]
    airlight = float(image.reshape(-1, 3)[idx].mean())
    return {"veil_floor_chroma": chroma, "veil_airlight": airlight}


#: Least colour-line patches for :func:`colour_line_veil` to give a reading.
MIN_COLOUR_LINES = 20


def colour_line_veil(image: np.ndarray, patch: int = 8, min_std: float = 0.015, min_line: float = 0.9,
                     max_resid: float = 0.03, min_angle_deg: float = 15.0) -> dict[str, float]:
    """Fattal's colour-line evidence of a veil (Fattal 2014, "Dehazing using color-lines"): the
    colours of a small patch of one surface lie on a line ``l·D`` through the origin (shading only
    scales them), and a veil shifts that line by ``A·(1 − t)`` along the airlight, whatever the
    surface's colour. Per ``patch``-px patch of ``image`` (float32 HxWx3 in [0, 1]) with no value
    ≥ 0.9 and one dominant line (first eigenvalue of the colour covariance ≥ ``min_line`` of the
    total, its std ≥ ``min_std``, an all-positive direction at least ``min_angle_deg`` from grey):
    the grey offset where the line passes closest to the grey axis, kept when it passes within
    ``max_resid``. Returns ``veil_lines`` (patches kept) and ``veil_line_offset``: their median
    offset per channel (0 = lines through black, as in a clear view; NaN under
    :data:`MIN_COLOUR_LINES` patches)."""
    h, w = image.shape[:2]
    p = patch
    r, c = h // p, w // p
    if r == 0 or c == 0:
        return {"veil_lines": 0.0, "veil_line_offset": float("nan")}
    x = image[:r * p, :c * p, :3].reshape(r, p, c, p, 3).transpose(0, 2, 1, 3, 4).reshape(r * c, p * p, 3)
    x = x.astype(np.float64)
    m = x.mean(1)
    y = x - m[:, None]
    ev, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", y, y) / (p * p))
    d = vecs[:, :, 2]
    d = d * np.sign(d.sum(1, keepdims=True) + 1e-12)
    a = np.ones(3) / np.sqrt(3)
    da = d @ a
    ok = (x.max(axis=(1, 2)) < 0.9) & (np.sqrt(np.maximum(ev[:, 2], 0)) >= min_std)
    ok &= (ev[:, 2] / (ev.sum(1) + 1e-12) >= min_line) & (d > 0).all(1) & (da < np.cos(np.deg2rad(min_angle_deg)))
    det = np.maximum(1.0 - da * da, 1e-9)
    dm, am = (d * m).sum(1), m @ a
    s = (am - dm * da) / det  # the grey point s·a nearest to the line m + l·d (both unit vectors)
    lam = s * da - dm
    ok &= np.linalg.norm(m + lam[:, None] * d - s[:, None] * a, axis=1) <= max_resid
    v = s[ok] / np.sqrt(3)
    if v.size < MIN_COLOUR_LINES:
        return {"veil_lines": float(v.size), "veil_line_offset": float("nan")}
    return {"veil_lines": float(v.size), "veil_line_offset": float(np.median(v))}


def newly_clipped_fraction(before: np.ndarray, after: np.ndarray, margin: float = 0.002) -> float:
    """Share (0..1) of pixels that a stage drove to black or white in some channel (within ``margin``
    of 0 or 1 in ``after`` but not in ``before``; both float HxWx3 in [0, 1]). Removing a grey veil
    the haze model explains leaves the scene inside the displayable range; where the photo is not a
    veiled scene (a bright warm page read as haze), the inferred scene radiance runs out of it."""
    before = np.asarray(before)
    return newly_clipped_count(before, after, margin) / (before.shape[0] * before.shape[1])


def newly_clipped_count(before: np.ndarray, after: np.ndarray, margin: float = 0.002) -> int:
    """How many pixels :func:`newly_clipped_fraction` counts (so that it can be summed over row bands)."""
    def saturated(x: np.ndarray) -> np.ndarray:
        return ((x <= margin) | (x >= 1.0 - margin)).any(axis=2)

    return int(np.count_nonzero(saturated(np.asarray(after)) & ~saturated(np.asarray(before))))


# ---------------------------------------------------------------- low light
def exposure_statistics(image: np.ndarray) -> dict[str, float]:
    """Brightness of the encoded luma, 0..1.

    Returns ``mean_luma``, ``median_luma``, ``p95_luma`` (the brightest twentieth of the frame: a dim
    scene exposed for its light parts keeps it bright, an under-exposed photo darkens it with the rest),
    ``p99_luma`` (a well exposed photo has highlights near 1 even when the scene is dark) and
    ``exposure_index`` = √(median·p99), the quantity the low-light severity is calibrated on.
    """
    lum = luminance(image)
    p50, p95, p99 = np.percentile(lum, [50, 95, 99])
    return {"mean_luma": float(lum.mean()), "median_luma": float(p50), "p95_luma": float(p95),
            "p99_luma": float(p99), "exposure_index": float(np.sqrt(max(p50, 0.0) * max(p99, 0.0)))}


# ---------------------------------------------------------------- rain
def streak_statistics(image: np.ndarray, width: int = 5, length: int = 11, level: float = 0.03,
                      angles: Sequence[float] = (-20.0, -10.0, 0.0, 10.0, 20.0)) -> dict[str, float]:
    """Thin, long, bright, near-vertical streaks.

    A white top-hat with a ``width``-px horizontal line keeps structures narrower than ``width``;
    an opening with a ``length``-px line at each angle from vertical keeps only those that are
    also long. The same is done for dark thin lines (black top-hat): natural texture has
    bright and dark thin lines alike, rain only bright ones. ``level`` is the luma excess that
    counts as a streak pixel.

    Returns ``streak_excess``: max over angles of (fraction of bright streak pixels − fraction
    of dark streak pixels), about 0 on clean photos; ``streak_angle_deg``: the angle (from
    vertical) where it peaks; ``bright_fraction`` at that angle.
    """
    lum = luminance(image)
    kernel = np.ones((1, width), np.uint8)
    bright = lum - cv2.morphologyEx(lum, cv2.MORPH_OPEN, kernel)
    dark = cv2.morphologyEx(lum, cv2.MORPH_CLOSE, kernel) - lum
    best = (-1.0, 0.0, 0.0)
    for angle in angles:
        line = line_kernel(length, 90.0 - angle)  # positive angle: top leans right
        b = float((cv2.morphologyEx(bright, cv2.MORPH_OPEN, line) > level).mean())
        d = float((cv2.morphologyEx(dark, cv2.MORPH_OPEN, line) > level).mean())
        if b - d > best[0]:
            best = (b - d, angle, b)
    return {"streak_excess": best[0], "streak_angle_deg": best[1], "bright_fraction": best[2]}
