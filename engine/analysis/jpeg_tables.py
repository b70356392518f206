"""What a JPEG file itself says about its compression: the quantisation tables and chroma
sampling stored in the file, the libjpeg (IJG) quality they correspond to, and the JPEG severity
that follows from them.

A decoded JPEG's pixels only hint at how it was compressed (see
:func:`engine.analysis.measurements.blockiness`); the file states it exactly. Pillow exposes the
tables (``Image.quantization``, natural row-major order, one table per table slot) and the
components' sampling factors (``Image.layer``). Only numpy is imported here, so the image loader
can build a :class:`JpegQuantisation` without loading the analysis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from ..kinds import JPEG
from .report import DegradationReport, KindAssessment

#: IJG standard luminance table (Annex K, the "quality 50" table libjpeg scales), row-major.
STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], np.float64).reshape(8, 8)

#: IJG standard chrominance table (Annex K), row-major.
STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99], np.float64).reshape(8, 8)

#: At or above this (IJG-equivalent) quality the file's own quantisation leaves no visible
#: artefacts: the JPEG severity from the tables is 0.
CLEAN_QUALITY = 90
#: A file saved at or above :data:`CLEAN_QUALITY` is still reported as JPEG-damaged when its pixels
#: show a grid this strong (severity from :func:`engine.analysis.measurements.blockiness`): the
#: photo was compressed harder before this save (a re-saved JPEG).
RECOMPRESSED_SEVERITY = 0.5


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The table libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` derives from
    ``base`` (quality 1..100); uint16 8x8."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((base.astype(np.int64) * scale + 50) // 100, 1, 255).astype(np.uint16)


_IJG_LUMA = np.stack([ijg_table(STD_LUMA, q) for q in range(1, 101)]).astype(np.float64)
_IJG_CHROMA = np.stack([ijg_table(STD_CHROMA, q) for q in range(1, 101)]).astype(np.float64)


@dataclass(frozen=True)
class JpegQuantisation:
    """How a JPEG file was quantised, read from the file.

    ``tables``: one 8x8 uint16 quantisation table per colour component (Y, Cb, Cr; or Y alone for
    a grey JPEG), natural row-major order, in the 0..255 sample scale's DCT units (orthonormal
    8x8 DCT of samples minus 128). ``sampling``: each component's (horizontal, vertical) sampling
    factor as the file states it (``((2, 2), (1, 1), (1, 1))`` is 4:2:0). ``orientation``: the EXIF
    orientation (1..8) the loader applied after decoding; the 8x8 grid is aligned with the
    top-left corner of the *stored* (un-rotated) image.
    """

    tables: tuple[np.ndarray, ...]
    sampling: tuple[tuple[int, int], ...]
    orientation: int = 1

    @property
    def luma(self) -> np.ndarray:
        return self.tables[0]

    @property
    def is_colour(self) -> bool:
        return len(self.tables) == 3

    @property
    def chroma_factors(self) -> tuple[int, int]:
        """How many luma samples one chroma sample spans, (vertical, horizontal): (2, 2) for 4:2:0,
        (1, 2) for 4:2:2, (1, 1) for 4:4:4 or grey."""
        if not self.is_colour:
            return (1, 1)
        (h0, v0), (h1, v1) = self.sampling[0], self.sampling[1]
        return (max(v0 // max(v1, 1), 1), max(h0 // max(h1, 1), 1))

    @property
    def subsampling(self) -> str:
        """``"4:2:0" | "4:2:2" | "4:4:4" | "grey"`` or ``"other"``."""
        if not self.is_colour:
            return "grey"
        return {(2, 2): "4:2:0", (1, 2): "4:2:2", (1, 1): "4:4:4"}.get(self.chroma_factors, "other")

    def quality(self) -> "QualityEstimate":
        return estimate_quality(self)

    def tables_key(self) -> str:
        """A short digest of the tables, sampling and orientation (for cache keys)."""
        h = hashlib.sha256()
        for t in self.tables:
            h.update(np.ascontiguousarray(t, np.uint16).tobytes())
        h.update(repr((self.sampling, self.orientation)).encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class QualityEstimate:
    """``quality``: the IJG quality 1..100 whose tables match the file's (exact when
    ``standard``), else the one closest in log step size; ``standard``: every table equals libjpeg's
    at that quality; ``mean_log_error``: mean |log(file step / IJG step)| at that quality (0 when
    standard)."""

    quality: int
    standard: bool
    mean_log_error: float


def estimate_quality(q: JpegQuantisation) -> QualityEstimate:
    """The IJG quality a file's tables correspond to (see :class:`QualityEstimate`).

    Luma is compared with the IJG luminance tables and, for colour files, the chroma tables with
    the IJG chrominance tables; when several qualities fit equally well the highest is reported.
    """
    err = np.abs(np.log(q.luma.astype(np.float64)[None] / _IJG_LUMA)).mean(axis=(1, 2))
    n = 1
    if q.is_colour:
        for t in q.tables[1:]:
            err = err + np.abs(np.log(t.astype(np.float64)[None] / _IJG_CHROMA)).mean(axis=(1, 2))
            n += 1
    err = err / n
    best = int(np.flatnonzero(err <= err.min() + 1e-12)[-1])
    return QualityEstimate(quality=best + 1, standard=bool(err[best] < 1e-12), mean_log_error=float(err[best]))


def severity_from_quality(quality: int) -> float:
    """JPEG severity in [0, 1] for an IJG-equivalent ``quality``: the inverse of the synthetic
    degradation's strength → quality map (``quality = round(95 − 85·strength)``,
    :mod:`engine.degrade.strength`), so both analyses speak the same scale; 0 at
    :data:`CLEAN_QUALITY` and above."""
    if quality >= CLEAN_QUALITY:
        return 0.0
    return float(np.clip((95.0 - quality) / 85.0, 0.0, 1.0))


def from_pillow(image: Any, orientation: int = 1) -> Optional[JpegQuantisation]:
    """The quantisation of an opened Pillow JPEG (``image.quantization``/``image.layer``), or
    ``None`` when it is not a baseline/progressive YCbCr or grey JPEG whose tables are readable
    (CMYK, Adobe RGB-transform files, missing or malformed tables)."""
    tables = getattr(image, "quantization", None)
    layers = getattr(image, "layer", None)
    if not tables or not layers or image.mode not in ("RGB", "L"):
        return None
    if len(layers) == 3 and image.info.get("adobe_transform") == 0:
        return None  # stored as RGB, not YCbCr: the tables do not apply to luma/chroma
    if len(layers) not in (1, 3):
        return None
    try:
        per_component = tuple(np.asarray(tables[int(layer[3])], np.uint16).reshape(8, 8) for layer in layers)
        sampling = tuple((int(layer[1]), int(layer[2])) for layer in layers)
    except (KeyError, ValueError, TypeError, IndexError):
        return None
    if any(int(t.min()) < 1 for t in per_component) or any(min(s) < 1 for s in sampling):
        return None
    return JpegQuantisation(per_component, sampling, int(orientation))


@dataclass(frozen=True)
class JpegSource:
    """What a JPEG stage knows about the file it restores: its ``quantisation`` and ``decoded``,
    the photo exactly as the file decodes (float32 H x W x 3 in [0, 1], upright as loaded). A
    stage that comes after others restores their output but still projects onto the constraints
    of ``decoded``: the original photo lay inside them whatever ran before."""

    quantisation: JpegQuantisation
    decoded: np.ndarray

    @property
    def quality(self) -> int:
        return estimate_quality(self.quantisation).quality


def with_file_evidence(report: DegradationReport, quant: JpegQuantisation) -> DegradationReport:
    """``report`` with its JPEG verdict taken from the file's tables.

    The tables' quality gives a floor, :func:`severity_from_quality`, with confidence 1: the
    pixels cannot be less damaged than the file's own quantisation made them. They can be more
    damaged (an earlier, harsher save: an old photo re-saved at quality 75 still shows its
    original blocks), so a stronger pixel-based verdict is kept; for a file saved at
    :data:`CLEAN_QUALITY` or better, only when it is at least :data:`RECOMPRESSED_SEVERITY`, so
    that a clean high-quality JPEG is not flagged by texture. The pixel measurements are kept and
    ``quality`` (IJG-equivalent, 1..100), ``quality_standard`` (1 when the tables are libjpeg's
    own) and ``from_file`` (1) are added."""
    pixels = report.kinds.get(JPEG) or KindAssessment(0.0, 0.0, {})
    est = estimate_quality(quant)
    severity = severity_from_quality(est.quality)
    confidence = 1.0
    floor = RECOMPRESSED_SEVERITY if est.quality >= CLEAN_QUALITY else severity
    if pixels.severity > severity and pixels.severity >= floor:
        severity, confidence = float(pixels.severity), float(pixels.confidence)
    measurements = dict(pixels.measurements)
    measurements.update({"quality": float(est.quality), "quality_standard": float(est.standard),
                         "from_file": 1.0})
    kinds = dict(report.kinds)
    kinds[JPEG] = replace(pixels, severity=severity, confidence=confidence, measurements=measurements)
    return DegradationReport(kinds)
