"""Faint sensor grain behind a camera's JPEG save, read off the file's quantised coefficients.

A camera JPEG re-saved at about IJG q75 can hold grain too faint for the pixel-domain noise
measurements (:mod:`engine.analysis.noise_level`) to tell from clean content saved alike; the
JPEG stage then restores it as if it were clean and leaves the grain in. The file's own quantised
luma coefficients (re-read from the decoded pixels on the file's 8x8 grid) keep a trace of it:

- grain makes non-zero coefficients at mid frequencies in blocks whose means agree with their
  neighbours' (flat blocks), at a rate that, given the table's steps, says how large it is
  (:func:`grain_sigma_255`), and those non-zero coefficients stand isolated, their neighbours at
  the same frequency zero or of the other sign;
- smooth content (gradients, an enlarged photo) leaves flat blocks empty and makes low-frequency
  coefficients that agree in sign from block to block.

No single one of these readings separates the two on training photos
(``benchmarks/results/jpeg-grain-coherence.md``); a small 2-layer network on all of them
(:data:`FEATURES`, ``models/jpeg-grain-detector.json``, fitted on training photos only by
``benchmarks/jpeg_grain_coherence.py --fit-detector``) does, on the cases the rest of the analysis
calls clean. :func:`with_grain_evidence` adds its verdict to a report: where it finds grain on a
camera's save the noise kind is present, and the plan then lets the noise stage restore the file
(``engine.pipeline.plan.noise_serves_jpeg``).

Sample values are on the 0..255 scale. Only the centre :data:`WINDOW`-px window of the photo
(on the file's grid) is read: the size the detector was fitted at.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..kinds import NOISE
from .jpeg_tables import CLEAN_QUALITY, JpegQuantisation, JpegSource, estimate_quality
from .report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport

#: Side (px) of the window the features are read on (the training cases' size).
WINDOW = 512
#: The detector's file, inside the repository's ``models/`` folder.
MODEL_FILE = "jpeg-grain-detector.json"
#: Qualities (IJG, from the file's tables) of a camera's save: below, the JPEG damage dominates and
#: keeps its own stage; from :data:`engine.analysis.jpeg_tables.CLEAN_QUALITY` up there is no JPEG stage.
MIN_QUALITY = 60

_D = np.array([[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)]
               for u in range(8)])
_U, _V = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
_BAND = _U + _V
#: Frequency groups (u + v ranges) of the coherence readings.
GROUPS = {"g1": (1, 1), "g2": (2, 2), "g34": (3, 4)}
#: The detector's inputs, in order (see :func:`grain_features`).
FEATURES: tuple[str, ...] = (
    tuple(f"{g}_{w}" for g in GROUPS for w in ("nz", "iso", "isorate", "agree", "corr"))
    + ("dcflat_share", "act_p10", "act_p25", "acthi_p10", "acthi_p25", "dcflat_act", "dcflat_acthi",
       "dcflat_acthi_any", "sig25_dcflat", "sig36_dcflat", "sig25_half", "sig36_half",
       "still_luma_255", "still_chroma_255", "still_blocks", "quality"))


def quantised_luma(rgb: np.ndarray, luma_table: np.ndarray) -> np.ndarray:
    """The file's stored luma coefficients read back from the decoded pixels: (nby, nbx, 8, 8) integers
    (float64) of the orthonormal 8x8 DCT of Y − 128 (0..255 scale, JPEG's own conversion) divided by
    ``luma_table`` (8x8, natural order) and rounded. ``rgb``: float RGB in [0, 1], the grid at (0, 0)."""
    rgb255 = np.asarray(rgb, np.float64) * 255.0
    y = 0.299 * rgb255[..., 0] + 0.587 * rgb255[..., 1] + 0.114 * rgb255[..., 2] - 128.0
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    b = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return np.rint(np.einsum("ux,abxy,vy->abuv", _D, b, _D) / np.asarray(luma_table, np.float64))


def flat_blocks(c: np.ndarray, luma_table: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Boolean (nby, nbx): the interior blocks whose mean differs least from their 4 neighbours' (the
    ``share`` flattest by |Laplacian of the block means|, 0..255 levels); the border ring is False."""
    dc = c[..., 0, 0] * float(luma_table[0, 0]) / 8.0
    lap = np.full(dc.shape, np.inf)
    lap[1:-1, 1:-1] = np.abs(4 * dc[1:-1, 1:-1] - dc[:-2, 1:-1] - dc[2:, 1:-1] - dc[1:-1, :-2] - dc[1:-1, 2:]) / 4
    finite = lap[np.isfinite(lap)]
    if finite.size == 0:
        return np.zeros(dc.shape, bool)
    return lap <= np.quantile(finite, share)


def grain_sigma_255(c: np.ndarray, luma_table: np.ndarray, blocks: np.ndarray, lo: int, hi: int) -> float:
    """The σ (0..255 levels, DCT units: the per-pixel σ of white noise) of zero-mean Gaussian coefficients
    that would leave the observed share of non-zero quantised coefficients, per frequency u+v in lo..hi over
    ``blocks`` (a share p at step q: σ = q / (2·Φ⁻¹(1 − p/2))); the median over frequencies. NaN with fewer
    than 8 blocks."""
    from scipy.special import ndtri

    if blocks.sum() < 8:
        return float("nan")
    sig = []
    for u in range(8):
        for v in range(8):
            if lo <= u + v <= hi:
                p = float((c[..., u, v][blocks] != 0).mean())
                p = min(max(p, 0.5 / blocks.sum()), 0.999)
                sig.append(float(luma_table[u, v]) / (2.0 * float(ndtri(1.0 - p / 2.0))))
    return float(np.median(sig))


def coherence_features(rgb: np.ndarray, luma_table: np.ndarray) -> dict[str, float]:
    """The coefficient readings of one decoded JPEG window (float RGB in [0, 1], the file's grid at (0, 0))
    and its luma table. Per frequency group of :data:`GROUPS`, over the flattest half of the blocks
    (:func:`flat_blocks`): ``nz`` the share of non-zero coefficients; ``iso`` among them (interior blocks)
    the share with no 4-neighbour of the same sign at the same frequency; ``isorate`` = nz · iso; ``agree``
    among adjacent pairs both non-zero the share of the same sign; ``corr`` the correlation of a coefficient
    with its right / lower neighbour's (pairs with a non-zero). Then how little the quietest blocks hold:
    ``dcflat_share`` the share of blocks whose mean is within 1 level of its neighbours' (interior),
    ``act_p10``/``act_p25`` (u+v 1..4) and ``acthi_p10``/``acthi_p25`` (u+v 2..4) percentiles of the
    non-zero count per block, ``dcflat_act``/``dcflat_acthi``/``dcflat_acthi_any`` the same counts' mean
    (and share > 0) over those blocks; ``sig<lo><hi>_<blocks>``: :func:`grain_sigma_255` over those blocks
    (``dcflat``) or the flattest half (``half``). NaN where undefined."""
    c = quantised_luma(rgb, luma_table)
    flat = flat_blocks(c, luma_table)
    out: dict[str, float] = {}
    for g, (lo, hi) in GROUPS.items():
        fs = [(u, v) for u in range(8) for v in range(8) if lo <= u + v <= hi]
        nz_n = nz_d = iso_n = agree_n = agree_d = 0.0
        xs, ys = [], []
        for u, v in fs:
            p = c[..., u, v]
            s = np.sign(p)
            same = np.zeros(s.shape, bool)
            for n in (np.roll(s, 1, 0), np.roll(s, -1, 0), np.roll(s, 1, 1), np.roll(s, -1, 1)):
                same |= (n == s) & (s != 0)
            nzm = (s != 0) & flat
            nz_n += nzm.sum()
            nz_d += flat.sum()
            iso_n += (nzm & ~same).sum()
            for a, b, fa in ((p[:, :-1], p[:, 1:], flat[:, :-1]), (p[:-1], p[1:], flat[:-1])):
                both = (a != 0) & (b != 0) & fa
                agree_n += (np.sign(a[both]) == np.sign(b[both])).sum()
                agree_d += both.sum()
                anyz = ((a != 0) | (b != 0)) & fa
                xs.append(a[anyz])
                ys.append(b[anyz])
        nz = nz_n / nz_d if nz_d else np.nan
        iso = iso_n / nz_n if nz_n else np.nan
        x, y = np.concatenate(xs), np.concatenate(ys)
        corr = float(np.corrcoef(x, y)[0, 1]) if x.size > 3 and x.std() > 0 and y.std() > 0 else np.nan
        out.update({f"{g}_nz": float(nz), f"{g}_iso": float(iso),
                    f"{g}_isorate": float(nz * iso) if nz_n else 0.0,
                    f"{g}_agree": float(agree_n / agree_d) if agree_d else np.nan, f"{g}_corr": corr})
    act = (np.abs(c) * ((_BAND >= 1) & (_BAND <= 4))).reshape(*c.shape[:2], 64).astype(bool).sum(-1)
    act_hi = (c != 0)[..., (_BAND >= 2) & (_BAND <= 4)].sum(-1)
    dc = c[..., 0, 0] * float(luma_table[0, 0]) / 8.0
    lap = np.abs(4 * dc[1:-1, 1:-1] - dc[:-2, 1:-1] - dc[2:, 1:-1] - dc[1:-1, :-2] - dc[1:-1, 2:]) / 4
    dcflat = lap < 1.0
    inner, inner_hi = act[1:-1, 1:-1], act_hi[1:-1, 1:-1]
    enough = dcflat.sum() >= 8
    out.update({"dcflat_share": float(dcflat.mean()) if dcflat.size else np.nan,
                "act_p10": float(np.quantile(act, 0.1)), "act_p25": float(np.quantile(act, 0.25)),
                "acthi_p10": float(np.quantile(act_hi, 0.1)), "acthi_p25": float(np.quantile(act_hi, 0.25)),
                "dcflat_act": float(inner[dcflat].mean()) if enough else np.nan,
                "dcflat_acthi": float(inner_hi[dcflat].mean()) if enough else np.nan,
                "dcflat_acthi_any": float((inner_hi[dcflat] > 0).mean()) if enough else np.nan})
    full = np.zeros(dc.shape, bool)
    full[1:-1, 1:-1] = dcflat
    for name, blocks in (("dcflat", full), ("half", flat)):
        for lo, hi in ((2, 5), (3, 6)):
            out[f"sig{lo}{hi}_{name}"] = grain_sigma_255(c, luma_table, blocks, lo, hi)
    return out


def still_features(rgb: np.ndarray, quality: int) -> dict[str, float]:
    """The analysis' still-area readings of the window (``still_luma_255``, ``still_chroma_255``,
    ``still_blocks``; :func:`engine.analysis.noise_level.still_evidence`)."""
    from .noise_level import still_evidence

    ev = still_evidence([np.asarray(rgb, np.float32)], quality)
    return {k: float(ev.get(k, np.nan)) for k in ("still_luma_255", "still_chroma_255", "still_blocks")}


def window(decoded: np.ndarray, quant: JpegQuantisation) -> np.ndarray:
    """The centre :data:`WINDOW`-px window (or the whole side where shorter) of a decoded JPEG (upright as
    loaded, float HxWx3 in [0, 1]), in the file's stored orientation, starting on its 8-px grid."""
    from ..experts.classical.jpeg_qcp import to_stored

    stored = to_stored(np.asarray(decoded, np.float32)[..., :3], quant.orientation)
    h, w = stored.shape[:2]
    ny, nx = min(h, WINDOW) // 8 * 8, min(w, WINDOW) // 8 * 8
    y0, x0 = (h - ny) // 2 // 8 * 8, (w - nx) // 2 // 8 * 8
    return np.ascontiguousarray(stored[y0:y0 + ny, x0:x0 + nx])


def grain_features(rgb: np.ndarray, luma_table: np.ndarray, quality: int) -> dict[str, float]:
    """Every input of the detector (:data:`FEATURES`) for a window on the file's grid."""
    return coherence_features(rgb, luma_table) | still_features(rgb, quality) | {"quality": float(quality)}


class GrainDetector:
    """The fitted detector: inputs standardised, a ReLU hidden layer, one logit; grain where the logit
    exceeds the file's ``threshold``. ``model``: the JSON object of ``models/jpeg-grain-detector.json``."""

    def __init__(self, model: dict) -> None:
        if tuple(model["features"]) != FEATURES:
            raise ValueError("the grain detector's file was fitted on other features")
        self.mean = np.asarray(model["mean"], np.float64)
        self.std = np.asarray(model["std"], np.float64)
        self.w1 = np.asarray(model["w1"], np.float64)
        self.b1 = np.asarray(model["b1"], np.float64)
        self.w2 = np.asarray(model["w2"], np.float64)
        self.b2 = float(model["b2"])
        self.threshold = float(model["threshold"])

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "GrainDetector":
        from ..assets import models_dir

        return cls(json.loads((path or models_dir() / MODEL_FILE).read_text()))

    def score(self, features: dict[str, float]) -> float:
        """The logit for :func:`grain_features`' ``features`` (a NaN input counts as −1, as in the fit)."""
        x = np.array([features[f] for f in FEATURES], np.float64)
        x = (np.nan_to_num(x, nan=-1.0) - self.mean) / self.std
        return float(self.w2 @ np.maximum(self.w1 @ x + self.b1, 0.0) + self.b2)


@functools.lru_cache(maxsize=1)
def shared_detector() -> Optional[GrainDetector]:
    """The bundled detector, or ``None`` when its file is missing (decided once per process)."""
    try:
        return GrainDetector.load()
    except (OSError, ValueError, KeyError):
        return None


def camera_save(quant: JpegQuantisation) -> Optional[int]:
    """The file's IJG quality when it is a camera's save (:data:`MIN_QUALITY` up to, not including,
    :data:`engine.analysis.jpeg_tables.CLEAN_QUALITY`), else ``None``."""
    q = estimate_quality(quant).quality
    return q if MIN_QUALITY <= q < CLEAN_QUALITY else None


def with_grain_evidence(report: DegradationReport, source: JpegSource,
                        detector: Optional[GrainDetector] = None) -> DegradationReport:
    """``report`` with the grain the file's coefficients show: where the noise kind is absent, the file
    is a camera's save (:func:`camera_save`) and the detector (default: :func:`shared_detector`) finds
    grain, the noise kind is present (severity :data:`DEFAULT_PRESENCE_THRESHOLD`, or its own if
    higher). ``jpeg_grain_score`` (the logit) and ``jpeg_grain_found`` (1/0) are added to the noise
    measurements whenever the detector ran; otherwise the report is returned as it is."""
    noise = report.kinds.get(NOISE)
    quality = camera_save(source.quantisation)
    detector = detector or shared_detector()
    if noise is None or quality is None or detector is None or noise.severity >= DEFAULT_PRESENCE_THRESHOLD:
        return report
    win = window(source.decoded, source.quantisation)
    if min(win.shape[:2]) < 64:
        return report
    score = detector.score(grain_features(win, source.quantisation.luma, quality))
    found = score > detector.threshold
    measurements = dict(noise.measurements)
    measurements.update({"jpeg_grain_score": score, "jpeg_grain_found": float(found)})
    severity = max(float(noise.severity), DEFAULT_PRESENCE_THRESHOLD) if found else float(noise.severity)
    kinds = dict(report.kinds)
    kinds[NOISE] = replace(noise, severity=severity, measurements=measurements)
    return DegradationReport(kinds)
