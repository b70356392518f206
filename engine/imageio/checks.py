"""Guards shared by the decoders: pixel budgets."""

from __future__ import annotations

from pathlib import Path

from ..errors import PhotoLoadError

def check_pixel_budget(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Raise :class:`PhotoLoadError` when ``width * height`` exceeds ``max_pixels`` (a guard
    against decompression bombs, checked from the header before any pixel is decoded)."""
    pixels = int(width) * int(height)
    if width <= 0 or height <= 0:
        raise PhotoLoadError(f"{path}: file is corrupt (image size {width}x{height})")
    if pixels > max_pixels:
        raise PhotoLoadError(
            f"{path}: image is too large ({width}x{height} = {pixels / 1e6:.0f} megapixels; "
            f"the limit is {max_pixels / 1e6:g} megapixels)"
        )
