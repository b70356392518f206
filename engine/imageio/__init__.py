"""Loading and saving photos: JPEG, PNG, TIFF, WebP, BMP and camera RAW, 8/16-bit, alpha,
EXIF (with orientation), ICC profiles, atomic writes.

Public API::

    load_photo(path, *, max_pixels=200_000_000) -> Photo
    save_photo(photo, path, *, fmt=None, bit_depth=None, overwrite=False, jpeg_quality=95, lossless=False) -> Path
    default_output_format(photo) -> (extension, bit_depth)
    SUPPORTED_EXTENSIONS, RAW_EXTENSIONS, is_supported(path)
    atomic_output(path, overwrite=False), atomic_write_bytes(path, data), atomic_write_text(path, text)
"""

from .atomic import atomic_output, atomic_write_bytes, atomic_write_text, remove_stale_partials
from .formats import RAW_EXTENSIONS, SUPPORTED_EXTENSIONS, is_raw, is_supported, sniff_format
from .loading import DEFAULT_MAX_PIXELS, load_photo
from .saving import default_output_format, save_photo

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "RAW_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_output_format",
    "is_raw",
    "is_supported",
    "load_photo",
    "remove_stale_partials",
    "save_photo",
    "sniff_format",
]
