"""Error the plan left unfixed: a term of the composed map for a kind found in the result that no kept
stage corrected (Qt-free).

A stage's map judges the error left for its own kind; the composed map answers where the final photo
may still be wrong, so it must also see the error of a kind the plan did not fix. For darkness left
(low light found in the result, no low-light stage kept) that error is the exposure the photo lacks:
if the photo's highlights belong at white, each pixel is short of its brightness times the gain that
takes the highlights there (:func:`exposure_gap`). The calibration holds which kinds have a term, its
form and its coefficient (``benchmarks/uncertainty.py left``, fitted on training photos only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD
from ..kinds import KINDS, LOWLIGHT

#: The percentile (of the brightest channel, 0..100) taken as the photo's highlights.
HIGHLIGHT_PERCENTILE = 99.0
#: Floor (in [0, 1]) on the highlights a gain is the inverse of (a black photo gets a bounded gain).
HIGHLIGHT_FLOOR = 0.05
#: The kind whose error left unfixed the exposure gap measures (darkness).
LOWLIGHT_KIND = LOWLIGHT
#: The kinds whose error left unfixed has a term.
LEFT_KINDS = (LOWLIGHT_KIND,)
#: The forms a term may take: the map raised to at least the term, or the term added to it.
FORMS = ("max", "sum")


def left_unfixed(kept: Iterable[str], severities_before: Mapping[str, float], severities_after: Mapping[str, float],
                 threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> dict[str, float]:
    """``{kind: severity in the result}`` of the kinds found (severity at least ``threshold``, 0..1) by
    the analysis of the input (``severities_before``) and still by that of the composed result
    (``severities_after``) for which no stage of that kind was kept (``kept``: the kept stages' names).
    Found in the input too: a reading that appears only in the result (a stage's output analysed
    as dark on a photo that is dark by nature, a training row) is no diagnosis the plan left."""
    kept = set(kept)
    found = {k for k in KINDS if min(float(severities_before.get(k, 0.0)),
                                     float(severities_after.get(k, 0.0))) >= threshold}
    return {k: float(severities_after[k]) for k in KINDS if k in found and k not in kept}


def highlight(image: np.ndarray) -> float:
    """The photo's highlights: the :data:`HIGHLIGHT_PERCENTILE` percentile of each pixel's brightest
    channel (HxWx3 in [0, 1], every 4th pixel each way), at least :data:`HIGHLIGHT_FLOOR`."""
    a = np.asarray(image, np.float32)[::4, ::4]
    if a.size == 0:
        return 1.0
    return max(float(np.percentile(a.max(axis=2), HIGHLIGHT_PERCENTILE)), HIGHLIGHT_FLOOR)


def exposure_gap(image: np.ndarray, highlights: float) -> np.ndarray:
    """Per pixel, how far (8-bit levels, HxW float32 ≥ 0) the brightness (mean over channels) of
    ``image`` (HxWx3 in [0, 1]) is below what the gain 1 / ``highlights`` makes of it, clipped at
    white: the error of darkness left if the photo's highlights belong at white."""
    lum = np.asarray(image, np.float32).mean(axis=2, dtype=np.float32)
    gain = np.float32(1.0 / max(float(highlights), HIGHLIGHT_FLOOR))
    return ((np.minimum(lum * gain, np.float32(1.0)) - lum) * np.float32(255.0)).clip(0.0, None).astype(np.float32)


@dataclass(frozen=True)
class LeftTerm:
    """The composed map's term for one kind left unfixed: ``coef`` × :func:`exposure_gap` (levels),
    combined with the map by ``form`` (``"max"``: at least the term; ``"sum"``: the term added)."""

    coef: float
    form: str = "max"

    def __post_init__(self) -> None:
        if self.form not in FORMS or not np.isfinite(self.coef) or self.coef < 0.0:
            raise ValueError(f"uncertainty calibration: bad left term {self.form!r} × {self.coef}")

    def apply(self, levels: np.ndarray, image: np.ndarray, highlights: float) -> np.ndarray:
        """``levels`` (the map, HxW 8-bit levels) with this term of ``image`` (the composed result on
        the map's grid, HxWx3 in [0, 1]) combined in."""
        term = np.float32(self.coef) * exposure_gap(image, highlights)
        return (np.maximum(levels, term) if self.form == "max" else levels + term).astype(np.float32)

    def to_dict(self) -> dict:
        return {"coef": round(float(self.coef), 4), "form": self.form}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LeftTerm":
        return cls(float(d["coef"]), str(d.get("form", "max")))
