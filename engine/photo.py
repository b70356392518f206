"""The in-memory photo every engine stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from .analysis.jpeg_tables import JpegQuantisation


@dataclass(frozen=True)
class PhotoMetadata:
    """Human-facing camera facts read from EXIF (``None`` where the file does not say).

    ``exposure_s`` is in seconds, ``aperture_f`` is the f-number, ``focal_length_mm`` in mm.
    """

    camera: Optional[str] = None
    lens: Optional[str] = None
    iso: Optional[int] = None
    exposure_s: Optional[float] = None
    aperture_f: Optional[float] = None
    focal_length_mm: Optional[float] = None
    date: Optional[str] = None
    orientation: int = 1

    def summary(self) -> str:
        """A short one-line description, e.g. ``"Canon EOS 40D · ISO 400 · 1/125 s · f/5.6 · 50 mm"``."""
        parts: list[str] = []
        if self.camera:
            parts.append(self.camera)
        if self.iso:
            parts.append(f"ISO {self.iso}")
        if self.exposure_s:
            parts.append(f"1/{round(1 / self.exposure_s)} s" if self.exposure_s < 1 else f"{self.exposure_s:g} s")
        if self.aperture_f:
            parts.append(f"f/{self.aperture_f:g}")
        if self.focal_length_mm:
            parts.append(f"{self.focal_length_mm:g} mm")
        return " · ".join(parts)


@dataclass
class Photo:
    """A decoded photo.

    ``pixels``: float32 array HxWx3, sRGB-encoded values in [0, 1], orientation already applied.
    ``alpha``: float32 HxW in [0, 1] or ``None``; restoration never touches it.
    ``bit_depth``: 8 or 16, the precision of the source (RAW developments are 16).
    ``source_format``: ``"jpeg" | "png" | "tiff" | "webp" | "bmp" | "raw"``.
    ``float_samples``: the file held floating-point samples (a float TIFF); a TIFF output keeps
    them as float. ``hdr_scale`` (>= 1): ``pixels * hdr_scale`` are the file's own values, so
    HDR samples above 1.0 survive a float output unclipped. ``frames``: how many frames or
    pages the file holds (only the first is restored).
    ``exif``: the original EXIF block (bytes starting with the TIFF header, no ``Exif\\0\\0``
    prefix) or ``None``. ``icc_profile``: the embedded ICC profile bytes or ``None``.
    ``jpeg``: for a photo whose ``pixels`` are a JPEG file's own decoding, the file's quantisation
    tables and chroma sampling (exact JPEG quality, deblocking constraints); ``None`` otherwise,
    and dropped by :meth:`with_pixels`.
    """

    pixels: np.ndarray
    alpha: Optional[np.ndarray] = None
    bit_depth: int = 8
    source_format: str = "png"
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None
    metadata: PhotoMetadata = field(default_factory=PhotoMetadata)
    path: Optional[Path] = None
    was_grayscale: bool = False
    jpeg: Optional["JpegQuantisation"] = None
    float_samples: bool = False
    hdr_scale: float = 1.0
    frames: int = 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6

    def release_pixels(self) -> None:
        """Free ``pixels`` and ``alpha`` of a photo that nothing reads again (a one-shot save once
        they are converted to the file's samples): ``pixels`` becomes an empty float32 HxWx0
        array, so :attr:`width` and :attr:`height` still answer; ``alpha`` becomes ``None``."""
        self.pixels = np.empty(self.pixels.shape[:2] + (0,), np.float32)
        self.alpha = None

    def with_pixels(self, pixels: np.ndarray) -> "Photo":
        """A copy carrying new pixels (same metadata). A different size drops nothing but the alpha
        is resized by the caller when the scale changes. New pixels are no longer the file's
        decoding, so ``jpeg`` is dropped."""
        return replace(self, pixels=pixels, jpeg=None)
