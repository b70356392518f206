"""Classical (weight-free) experts, one per degradation kind: the offline default.

``classical_experts()`` builds fresh instances; nothing is computed at import time.
"""

from __future__ import annotations

from ..base import Expert
from .deblock import DCTDeblocker
from .deblur import WienerDeblur
from .dehaze import DarkChannelDehaze
from .denoise import SlidingDCTDenoiser
from .derain import StreakMedianDerain
from .lowlight import LIMEEnhance

__all__ = ["classical_experts", "SlidingDCTDenoiser", "WienerDeblur", "DCTDeblocker",
           "DarkChannelDehaze", "LIMEEnhance", "StreakMedianDerain"]


def classical_experts() -> list[Expert]:
    """One classical expert per kind, in :data:`engine.kinds.KINDS` order (noise, blur, jpeg,
    haze, lowlight, rain)."""
    return [SlidingDCTDenoiser(), WienerDeblur(), DCTDeblocker(), DarkChannelDehaze(),
            LIMEEnhance(), StreakMedianDerain()]
