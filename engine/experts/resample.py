"""Plain resampling upscalers: the fallback when no upscaling network is installed."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..kinds import UPSCALE
from .base import Backend, Expert, ExpertContext, ExpertInfo


class LanczosUpscaler(Expert):
    """Lanczos-4 interpolation by an integer ``scale`` (2 or 4). Adds no detail."""

    def __init__(self, scale: int) -> None:
        self.info = ExpertInfo(id=f"classical.upscale.lanczos-x{scale}", name=f"Lanczos {scale}×",
                               tasks=(UPSCALE,), backend=Backend.CLASSICAL, scale=scale,
                               tile_overlap=0,
                               description="Lanczos-4 interpolation; sharp edges, no invented detail.")

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        h, w = image.shape[:2]
        s = self.info.scale
        out = cv2.resize(image, (w * s, h * s), interpolation=cv2.INTER_LANCZOS4)
        ctx.progress(1.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
