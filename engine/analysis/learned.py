"""Learned degradation analysis: Restora's bundled analyser CNN, combined with the hand-made one.

:class:`LearnedAnalyser` runs ``models/restora-analyser-v3.onnx`` (see its model card) with
onnxruntime on a grid of native-resolution crops and averages the scores.
:func:`analyse_combined` takes, for each kind, presence and severity each from whichever analysis
— or their agreement — measured better (``benchmarks/results/analysis-choice.md``; the choice and
its numbers are next to :data:`LEARNED_PRESENCE_KINDS`); the hand-made measurements are always
kept, since experts read them.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelError
from ..kinds import KINDS
from ..progress import Progress
from .analyser import analyse as analyse_handmade
from .report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, KindAssessment

#: File name of the bundled analyser, inside the repository's ``models/`` folder.
#: v3 is v2 with v1's blur verdict folded in as a branch on their shared stem (one run; v2 measured
#: worse than v1 for blur: F1 0.73 vs 0.79 on synthetic cases, 15 vs 16 of the 16 real blurred pairs;
#: benchmarks/results/analysis-choice.md, models/cards/restora-analyser-v3.md).
MODEL_FILE = "restora-analyser-v3.onnx"
#: Crop edge the network was trained on (pixels, native resolution).
CROP = 128
#: Crops per axis (a 3 x 3 grid spread over the photo, fewer when the photo is small).
GRID = 3

#: How the combined analysis decides each kind: presence from the network (:data:`LEARNED_PRESENCE_KINDS`),
#: from both agreeing (:data:`AGREE_KINDS`) or from the hand-made analysis (the rest); severity from the
#: network for :data:`LEARNED_SEVERITY_KINDS`. Chosen by ``python -m training.choose_analysis`` →
#: benchmarks/results/analysis-choice.md, from 132 synthetic and 132 camera-realistic cases on 12
#: validation photos, the real validation pairs and all 501 clean photos: the rule must keep clean-photo
#: false positives ≤ 2 %, then the best mean of F1 (synthetic, camera), real-pair detection and
#: 1 − false alarms on the pairs' clean halves wins; the network must beat hand-made by 0.02. Numbers of
#: the shipped network (v3: v2, and v1 for blur), hand / learned / both:
#:
#: ========  ==================  ==================  ==================  =================  ========
#: kind      F1 synthetic        F1 camera           real pairs detect   clean photos FP %  rule
#: ========  ==================  ==================  ==================  =================  ========
#: noise     0.85 / 0.94 / 0.83  0.11 / 0.42 / 0.11  0 / 18 / 0 %        3.0 / 0.6 / 0.0    learned
#: blur      0.84 / 0.79 / 0.77  0.84 / 0.77 / 0.74  100 / 100 / 100 %   0.2 / 2.2 / 0.0    hand
#: jpeg      0.93 / 0.78 / 0.82  0.78 / 0.72 / 0.86  –                   0.2 / 12.2 / 0.0   hand
#: haze      0.89 / 0.95 / 0.98  0.95 / 0.95 / 0.98  80 / 70 / 70 %      2.0 / 1.0 / 0.2    confirm
#: lowlight  0.78 / 0.95 / 0.78  0.81 / 0.95 / 0.81  95 / 100 / 95 %     5.0 / 2.2 / 1.0    both
#: rain      0.91 / 0.93 / 0.92  0.91 / 0.88 / 0.87  57 / 95 / 55 %      4.8 / 0.8 / 0.2    learned
#: ========  ==================  ==================  ==================  =================  ========
#:
#: (JPEG's clean-photo rate in the session is 0.2 %: the file's own quantisation tables decide.
#: Real pairs: PolyU noise crops + full-size, Levin blur, RESIDE haze, LOL low light, rain; the
#: lowlight "learned" rule also flags 16 % of LOL's normal-light halves. Blur was "both" until the
#: hand-made verdict required the sharpest tile to be blurred too (analyser.MIN_SHARPEST_BLUR_PX): before
#: it, hand / both scored F1 0.75 / 0.79 synthetic, 0.80 / 0.77 camera, 8.6 / 1.8 % clean FP.)
LEARNED_PRESENCE_KINDS: frozenset[str] = frozenset({"noise", "rain"})
#: Severity: the network's Spearman ρ with the true strength beats the hand-made one only for rain
#: (noise: 0.82 / 0.35 synthetic / camera vs hand-made 0.70 / 0.67).
LEARNED_SEVERITY_KINDS: frozenset[str] = frozenset({"rain"})
#: Hand-made measurements that, when 1, make the hand-made verdict of their kind stand whole: the EXIF
#: prior confirmed by the pixels (noise_level.prior_confirms_noise) and still-area colour noise above the
#: clean photos' threshold for the file's JPEG quality (noise_level.still_chroma), and luma grain over a
#: large still area above its threshold (noise_level.still_luma).
HANDMADE_EVIDENCE_KEYS: tuple[str, ...] = ("exif_present", "still_chroma_present", "still_luma_present")
#: Kinds reported present only when the hand-made and the learned analysis both say so (each alone
#: raises too many false alarms on clean photos).
AGREE_KINDS: frozenset[str] = frozenset({"lowlight"})
#: Kinds whose hand-made verdict needs the network's confirmation to be present, and otherwise stands
#: whole (its severity and its confidence, hence the stage strength the plan proposes). Haze: on the
#: training-side measures of the table above "both" beats "hand" (F1 0.98 / 0.98 against 0.89 / 0.95 on
#: synthetic and camera-realistic cases of the held-out clean photos; clean-photo false positives 0.2 %
#: against 2.0 %); "hand" had been chosen for its real-pair detection (80 % against 70 % of the RESIDE
#: validation pairs, the one extra being sots_indoor_1400_1, which the default plan left unchanged
#: anyway). The dark channel alone read bright warm indoor crops as haze and the dehazer made them
#: 17–25 dB worse (benchmarks/results/real-noise-all60.md, benchmarks/results/haze-false-positives.md).
#: Unlike :data:`AGREE_KINDS`, the network's confidence does not lower the strength: eased to the
#: network's confidence, the dehazer gained 0.6 dB less on a RESIDE pair.
CONFIRM_KINDS: frozenset[str] = frozenset({"haze"})


def default_model_path() -> Path:
    """``models/restora-analyser-v3.onnx`` as shipped (package data, or the checkout's)."""
    from ..assets import models_dir

    return models_dir() / MODEL_FILE


#: Crop corners sit on multiples of this (the network was trained so: JPEG's 8 x 8 grid keeps its phase).
ALIGN = 8


def crop_grid(height: int, width: int, crop: int = CROP, grid: int = GRID) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to ``grid`` x ``grid`` evenly spread, distinct crops, on
    multiples of :data:`ALIGN` pixels."""
    ys = sorted({int(v) // ALIGN * ALIGN for v in np.linspace(0, max(height - crop, 0), grid)})
    xs = sorted({int(v) // ALIGN * ALIGN for v in np.linspace(0, max(width - crop, 0), grid)})
    return [(y, x) for y in ys for x in xs]


def learned_severity(probability: float, strength: float,
                     threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> float:
    """Map the network's (presence probability, strength) to a report severity in [0, 1]:
    present (p ≥ 0.5) → at least ``threshold``; absent → below ``threshold / 2``."""
    if probability >= 0.5:
        return float(min(max(strength, threshold), 1.0))
    return float(min(strength, threshold) * probability)


class LearnedAnalyser:
    """The bundled analyser network. The ONNX session is created on first use.

    ``model_path``: the ONNX file (default :func:`default_model_path`). ``threads``: onnxruntime
    intra-op threads (``None`` = its default).
    """

    def __init__(self, model_path: Optional[Path | str] = None, threads: Optional[int] = None) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.threads = threads
        self._session: Any = None

    def _open(self, path: Path) -> Any:
        if not path.is_file():
            raise ModelError(f"the bundled analyser model is missing: {path}")
        import onnxruntime as ort

        from ..runtime.onnx_backend import session_options

        return ort.InferenceSession(str(path), sess_options=session_options(self.threads),
                                    providers=["CPUExecutionProvider"])

    def _get_session(self) -> Any:
        if self._session is None:
            self._session = self._open(self.model_path)
        return self._session

    def scores(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, strength)``: float32 vectors of 6 in [0, 1], in :data:`KINDS` order,
        averaged over the crop grid. ``image``: float HxWx3 in [0, 1] (at least 32 px a side)."""
        img = np.asarray(image, dtype=np.float32)[..., :3]
        h, w = img.shape[:2]
        if min(h, w) < 32:
            raise ValueError(f"the learned analyser needs at least 32 x 32 pixels, got {w} x {h}")
        c = min(CROP, h, w)
        crops = np.stack([img[y:y + c, x:x + c] for y, x in crop_grid(h, w, c)])
        x = np.ascontiguousarray(np.clip(crops, 0.0, 1.0).transpose(0, 3, 1, 2))
        out = self._get_session().run(None, {"input": x})[0].mean(axis=0)
        n = len(KINDS)
        return out[:n].astype(np.float32), out[n:].astype(np.float32)

    def report(self, image: np.ndarray) -> DegradationReport:
        """A report from the network alone (measurements: ``probability`` and ``strength``)."""
        prob, strength = self.scores(image)
        return DegradationReport({
            k: KindAssessment(severity=learned_severity(float(p), float(s)), confidence=float(abs(2 * p - 1)),
                              measurements={"probability": float(p), "strength": float(s)})
            for k, p, s in zip(KINDS, prob, strength, strict=True)})


def combine(handmade: DegradationReport, learned: DegradationReport,
            presence_kinds: frozenset[str] = LEARNED_PRESENCE_KINDS,
            severity_kinds: frozenset[str] = LEARNED_SEVERITY_KINDS,
            threshold: float = DEFAULT_PRESENCE_THRESHOLD,
            agree_kinds: Optional[frozenset[str]] = None,
            confirm_kinds: frozenset[str] = CONFIRM_KINDS) -> DegradationReport:
    """Per kind, whether it is present comes from the learned report for ``presence_kinds`` (else the
    hand-made one), and how strong from the learned report for ``severity_kinds`` (else the hand-made
    one). For ``agree_kinds`` (default :data:`AGREE_KINDS`) a kind is present only when *both*
    reports call it present (where each alone raises too many false alarms on clean photos); for
    ``confirm_kinds`` (:data:`CONFIRM_KINDS`) likewise, but a confirmed verdict is the hand-made one
    whole (severity and confidence), and an unconfirmed one keeps the hand-made confidence.
    Where the hand-made measurements say ``exif_present`` (the photo's EXIF confirmed by its
    pixels), ``still_chroma_present`` (colour noise in still areas) or ``still_luma_present`` (luma
    grain over a large still area), which the network does not see, presence and strength both come
    from the hand-made report. A present kind gets at least
    ``threshold``, an absent one at most ``threshold / 2``; a kind taken wholly from one source keeps
    that source's severity unchanged. Confidence follows the presence source (the lower of the two
    for an agreement). Measurements: the hand-made ones plus ``learned_probability`` and
    ``learned_strength``."""
    agree = AGREE_KINDS if agree_kinds is None else agree_kinds
    kinds = {}
    for k in KINDS:
        h, m = handmade.kinds[k], learned.kinds[k]
        measurements = dict(h.measurements) | {f"learned_{name}": v for name, v in m.measurements.items()}
        magnitude = m if k in severity_kinds else h
        if any(h.measurements.get(key, 0.0) >= 1.0 for key in HANDMADE_EVIDENCE_KEYS):
            # EXIF-backed evidence, or colour noise in still areas measured against clean photos saved
            # alike, is something the network cannot see: the hand-made verdict stands whole.
            kinds[k] = KindAssessment(severity=float(h.severity), confidence=h.confidence, measurements=measurements)
            continue
        if k in confirm_kinds and k not in presence_kinds:
            severity = float(h.severity) if m.severity >= threshold else min(float(h.severity), threshold / 2)
            kinds[k] = KindAssessment(severity=severity, confidence=h.confidence, measurements=measurements)
            continue
        if k in agree:
            present = h.severity >= threshold and m.severity >= threshold
            severity = (max(float(magnitude.severity), threshold) if present
                        else min(float(magnitude.severity), threshold / 2))
            kinds[k] = KindAssessment(severity=severity, confidence=min(h.confidence, m.confidence),
                                      measurements=measurements)
            continue
        decide = m if k in presence_kinds else h
        severity = float(decide.severity)
        if decide is not magnitude:
            present = decide.severity >= threshold
            severity = (max(float(magnitude.severity), threshold) if present
                        else min(float(magnitude.severity), threshold / 2))
        kinds[k] = KindAssessment(severity=severity, confidence=decide.confidence, measurements=measurements)
    return DegradationReport(kinds)


def analyse_combined(image: np.ndarray, progress: Optional[Progress] = None,
                     analyser: Optional[LearnedAnalyser] = None, **exif: Optional[float]) -> DegradationReport:
    """Hand-made analysis combined with the network's (see :func:`combine` and
    :data:`LEARNED_PRESENCE_KINDS` / :data:`LEARNED_SEVERITY_KINDS`).

    ``image``: float HxWx3 in [0, 1]. Falls back to the hand-made report alone when the photo is
    smaller than 32 px a side. Raises :class:`ModelError` if the bundled model file is missing.
    ``exif``: ``iso`` / ``exposure_s`` for the hand-made analysis' noise prior, and ``jpeg_quality``
    (the file's IJG quality) for its still-area chroma threshold.
    """
    progress = progress or Progress()
    handmade = analyse_handmade(image, progress.sub(0.0, 0.8), **exif)
    img = np.asarray(image)
    if min(img.shape[:2]) < 32:
        return handmade
    learned = (analyser or LearnedAnalyser()).report(img)
    progress(1.0, "analysis done")
    return combine(handmade, learned)


def learned_available(model_path: Optional[Path] = None) -> bool:
    """Whether the bundled analyser can run here (its file is present and onnxruntime imports)."""
    path = model_path or default_model_path()
    return path.is_file() and importlib.util.find_spec("onnxruntime") is not None


@functools.lru_cache(maxsize=1)
def shared_analyser() -> Optional[LearnedAnalyser]:
    """The process's one bundled-analyser session, or ``None`` when it cannot run here (decided
    once: the analysis runs after every stage, so it must not look for files each time)."""
    return LearnedAnalyser() if learned_available() else None


def analyse_default(image: np.ndarray, progress: Optional[Progress] = None, *, iso: Optional[float] = None,
                    exposure_s: Optional[float] = None, jpeg_quality: Optional[int] = None) -> DegradationReport:
    """The analysis Restora plans with: :func:`analyse_combined` (hand-made + bundled network) when
    the bundled analyser can run, else the hand-made analysis alone. ``image``: float HxWx3 in [0, 1];
    ``iso``/``exposure_s``: the photo's EXIF (a prior on the noise level), ``None`` when unknown;
    ``jpeg_quality``: the IJG quality of the JPEG file it decodes (``None``: not a JPEG)."""
    analyser = shared_analyser()
    if analyser is None:
        return analyse_handmade(image, progress, iso=iso, exposure_s=exposure_s, jpeg_quality=jpeg_quality)
    return analyse_combined(image, progress, analyser=analyser, iso=iso, exposure_s=exposure_s,
                            jpeg_quality=jpeg_quality)
