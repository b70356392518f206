"""Degradation kinds (a DESIGN.md contract: never rename these six)."""

from __future__ import annotations

NOISE = "noise"
BLUR = "blur"
JPEG = "jpeg"
HAZE = "haze"
LOWLIGHT = "lowlight"
RAIN = "rain"

KINDS: tuple[str, ...] = (NOISE, BLUR, JPEG, HAZE, LOWLIGHT, RAIN)

#: Task names of experts that are not tied to one degradation kind.
GENERALIST = "generalist"
UPSCALE = "upscale"
FACE = "face"
#: Task of a model that detects degradations rather than restoring (the bundled analyser).
ANALYSIS = "analysis"

#: Human-readable labels for GUI and CLI text.
LABELS: dict[str, str] = {
    NOISE: "Noise",
    BLUR: "Blur",
    JPEG: "JPEG artefacts",
    HAZE: "Haze",
    LOWLIGHT: "Low light",
    RAIN: "Rain",
    GENERALIST: "Generalist",
    UPSCALE: "Upscale",
    FACE: "Faces",
    ANALYSIS: "Analysis",
}


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is one of :data:`KINDS`, else raise ``ValueError`` naming the valid ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind
