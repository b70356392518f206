"""JPEG compression artefacts from a real encode/decode round trip."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ._common import as_image, finish


def jpeg(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode ``image`` as a baseline JPEG at ``quality`` (1..100, libjpeg scale) with chroma
    ``subsampling`` (``"4:2:0"``, ``"4:2:2"`` or ``"4:4:4"``) using Pillow, and decode it again.

    Input is quantised to 8 bits first. Returns float32 HxWx3 in [0, 1].
    """
    arr = as_image(image)
    q = int(np.clip(round(quality), 1, 100))
    u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, "RGB").save(buf, format="JPEG", quality=q, subsampling=subsampling, optimize=False)
    buf.seek(0)
    with Image.open(buf) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0
    return finish(out)
