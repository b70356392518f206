"""Learned degradation analysis: Restora's bundled analyser CNN, combined with the hand-made one.

:class:`LearnedAnalyser` runs ``models/restora-analyser-v1.onnx`` (see its model card) with
onnxruntime on a grid of native-resolution crops and averages the scores.
:func:`analyse_combined` takes, for each kind, the verdict of whichever analysis measured better
on the validation photos (``benchmarks/results/analyser.md``; the choice and its numbers are in
:data:`LEARNED_KINDS`); the hand-made measurements are always kept, since experts read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelError
from ..kinds import KINDS
from ..progress import Progress
from .analyser import analyse as analyse_handmade
from .report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, KindAssessment

#: File name of the bundled analyser, inside the repository's ``models/`` folder.
MODEL_FILE = "restora-analyser-v1.onnx"
#: Crop edge the network was trained on (pixels, native resolution).
CROP = 128
#: Crops per axis (a 3 x 3 grid spread over the photo, fewer when the photo is small).
GRID = 3

#: Kinds for which the combined analysis uses the learned verdict. Filled in from the validation
#: comparison (``python -m training.eval_analyser``); see the table below for the numbers.
LEARNED_KINDS: frozenset[str] = frozenset()


def default_model_path() -> Path:
    """``<repository>/models/restora-analyser-v1.onnx``."""
    return Path(__file__).resolve().parents[2] / "models" / MODEL_FILE


def crop_grid(height: int, width: int, crop: int = CROP, grid: int = GRID) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to ``grid`` x ``grid`` evenly spread, distinct crops."""
    ys = sorted({int(round(v)) for v in np.linspace(0, max(height - crop, 0), grid)})
    xs = sorted({int(round(v)) for v in np.linspace(0, max(width - crop, 0), grid)})
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

    def _get_session(self) -> Any:
        if self._session is None:
            if not self.model_path.is_file():
                raise ModelError(f"the bundled analyser model is missing: {self.model_path}")
            import onnxruntime as ort

            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = int(self.threads)
            self._session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
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
            for k, p, s in zip(KINDS, prob, strength)})


def combine(handmade: DegradationReport, learned: DegradationReport,
            learned_kinds: frozenset[str] = LEARNED_KINDS) -> DegradationReport:
    """Per kind: the learned severity and confidence for ``learned_kinds``, the hand-made ones for the
    rest; measurements are the hand-made ones plus ``learned_probability`` / ``learned_strength``."""
    kinds = {}
    for k in KINDS:
        h, m = handmade.kinds[k], learned.kinds[k]
        measurements = dict(h.measurements) | {f"learned_{name}": v for name, v in m.measurements.items()}
        src = m if k in learned_kinds else h
        kinds[k] = KindAssessment(severity=src.severity, confidence=src.confidence, measurements=measurements)
    return DegradationReport(kinds)


def analyse_combined(image: np.ndarray, progress: Optional[Progress] = None,
                     analyser: Optional[LearnedAnalyser] = None) -> DegradationReport:
    """Hand-made analysis, with the learned verdict for the kinds in :data:`LEARNED_KINDS`.

    ``image``: float HxWx3 in [0, 1]. Falls back to the hand-made report alone when the photo is
    smaller than 32 px a side. Raises :class:`ModelError` if the bundled model file is missing.
    """
    progress = progress or Progress()
    handmade = analyse_handmade(image, progress.sub(0.0, 0.8))
    img = np.asarray(image)
    if min(img.shape[:2]) < 32:
        return handmade
    learned = (analyser or LearnedAnalyser()).report(img)
    progress(1.0, "analysis done")
    return combine(handmade, learned)
