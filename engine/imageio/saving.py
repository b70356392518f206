"""``save_photo``: :class:`engine.photo.Photo` → file, atomically, with ICC and EXIF carried over."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from ..errors import PhotoSaveError, RestoraError, one_line
from ..photo import Photo
from .atomic import atomic_output
from .exif import EXIF_PREFIX, JPEG_EXIF_LIMIT, exif_bytes, exif_for_output
from .formats import FORMATS, RASTER_FORMATS, PathLike, output_format_for, resolve_bit_depth, same_output_format
from .png_chunks import exif_chunk, gray_alpha_png, iccp_chunk, write_png_with_chunks
from .quantize import quantize
from .tiff_output import write_tiff

#: Formats that can store a gray image as gray / an alpha channel.
_GRAY_FORMATS = frozenset(name for name, f in FORMATS.items() if f.gray)
_ALPHA_FORMATS = frozenset(name for name, f in FORMATS.items() if f.alpha)
#: zlib level for PNG: 2 is about twice as fast as 4-6 on photos for files ~3 % larger.
_PNG_COMPRESSION = 2


@dataclass
class _Output:
    """What gets encoded: ``samples`` HxWxC (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) at ``bit_depth``."""

    samples: np.ndarray
    bit_depth: int
    icc_profile: Optional[bytes]
    exif: Optional[Image.Exif]


def default_output_format(photo: Photo) -> tuple[str, int]:
    """``(extension, bit_depth)`` that keeps the input's format and precision: e.g.
    ``(".png", 16)`` for a 16-bit PNG, ``(".jpg", 8)`` for a JPEG, ``(".tif", 16)`` for RAW.
    The input's own spelling of the extension (``.jpeg``, ``.tiff``) is kept when it has one."""
    fmt = same_output_format(photo.source_format)
    extension, depths = FORMATS[fmt].extension, FORMATS[fmt].bit_depths
    if photo.source_format == "raw":
        return extension, 16
    if photo.path is not None and RASTER_FORMATS.get(Path(photo.path).suffix.lower()) == fmt:
        extension = Path(photo.path).suffix.lower()
    return extension, photo.bit_depth if photo.bit_depth in depths else 8


def _resized_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """``alpha`` (float32 HxW in [0, 1]) resized to ``height`` x ``width`` (after an upscale)."""
    if alpha.shape == (height, width):
        return alpha
    growing = height * width > alpha.shape[0] * alpha.shape[1]
    resized = cv2.resize(alpha.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC if growing else cv2.INTER_AREA)
    return np.clip(resized, 0.0, 1.0)


def _icc_colour_space(icc: Optional[bytes]) -> Optional[bytes]:
    return bytes(icc[16:20]) if icc and len(icc) >= 128 else None


def _matching_icc(icc: Optional[bytes], gray: bool) -> Optional[bytes]:
    """The profile if it fits the output (a GRAY profile for gray, an RGB one for colour)."""
    space = _icc_colour_space(icc)
    return icc if space == (b"GRAY" if gray else b"RGB ") else None


def _channel_spread(colour: np.ndarray) -> int:
    """Largest difference between any two channels of any pixel (integer HxWx3 samples)."""
    red, green, blue = colour[:, :, 0], colour[:, :, 1], colour[:, :, 2]
    return int(max(cv2.absdiff(red, green).max(), cv2.absdiff(green, blue).max(), cv2.absdiff(red, blue).max()))


def _prepare(photo: Photo, fmt: str, bit_depth: int, consume: bool = False) -> _Output:
    """The samples to encode; ``consume``: ``photo.pixels`` are read no more once converted (a
    gray source's are read twice: its neutrality is checked on the converted samples)."""
    pixels = photo.pixels
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise PhotoSaveError(f"cannot save pixels of shape {pixels.shape}; expected height x width x 3")
    height, width = pixels.shape[:2]
    colour = quantize(pixels, bit_depth, consume=consume and not photo.was_grayscale)
    gray = False
    if photo.was_grayscale and fmt in _GRAY_FORMATS and _channel_spread(colour) <= 1:
        # Still neutral after restoration (within one level): write it as the gray it was.
        colour = quantize(pixels.mean(axis=2, dtype=np.float32), bit_depth)[:, :, None]
        gray = True
    layers = [colour]
    if photo.alpha is not None and fmt in _ALPHA_FORMATS:
        alpha = quantize(_resized_alpha(photo.alpha, height, width), bit_depth)[:, :, None]
        layers.append(alpha)
    if gray and fmt == "webp":
        layers[0] = np.repeat(colour, 3, axis=2)
    samples = layers[0] if len(layers) == 1 else np.concatenate(layers, axis=2)
    return _Output(
        samples=samples,
        bit_depth=bit_depth,
        icc_profile=_matching_icc(photo.icc_profile, samples.shape[2] in (1, 2)),
        exif=exif_for_output(photo.exif, width, height),
    )


def _prepare_float(photo: Photo) -> _Output:
    """Float32 samples for a float TIFF: the pixels times ``hdr_scale`` (the file's own range,
    HDR values above 1 included), alpha in [0, 1] last."""
    colour = photo.pixels.astype(np.float32) * np.float32(photo.hdr_scale)
    gray = photo.was_grayscale and float(np.abs(colour - colour.mean(axis=2, keepdims=True)).max()) <= 1e-6
    layers = [colour[:, :, :1] if gray else colour]
    if photo.alpha is not None:
        height, width = colour.shape[:2]
        layers.append(_resized_alpha(photo.alpha, height, width)[:, :, None].astype(np.float32))
    samples = layers[0] if len(layers) == 1 else np.concatenate(layers, axis=2)
    return _Output(samples=np.ascontiguousarray(samples), bit_depth=32,
                   icc_profile=_matching_icc(photo.icc_profile, samples.shape[2] in (1, 2)),
                   exif=exif_for_output(photo.exif, colour.shape[1], colour.shape[0]))


def keeps_float(photo: Photo, fmt: str, bit_depth: Optional[int]) -> bool:
    """True when a save keeps float samples: a float source written as TIFF with no bit depth asked."""
    return photo.float_samples and fmt == "tiff" and bit_depth is None


def not_kept_on_save(photo: Photo, path: PathLike, *, fmt: Optional[str] = None,
                     bit_depth: Optional[int] = None) -> list[str]:
    """What saving ``photo`` to ``path`` (with these ``fmt``/``bit_depth``, as for
    :func:`save_photo`) cannot keep from it, one short phrase each; empty when all is kept.
    Raises :class:`PhotoSaveError` where :func:`save_photo` would refuse."""
    name = output_format_for(Path(path), fmt)
    depth = resolve_bit_depth(name, bit_depth, photo.bit_depth)
    label = name.upper()
    lost: list[str] = []
    if photo.frames > 1:
        lost.append(f"frames 2-{photo.frames} (only the first of {photo.frames} frames/pages is restored)")
    if photo.alpha is not None and name not in _ALPHA_FORMATS:
        lost.append(f"transparency ({label} has no alpha channel)")
    if photo.float_samples and not keeps_float(photo, name, bit_depth):
        lost.append(f"floating-point samples (written as {depth}-bit integers)")
        if photo.hdr_scale > 1.0:
            lost.append(f"values above 1.0 (HDR, up to {photo.hdr_scale:.3g}; clipped)")
    elif photo.bit_depth > depth:
        lost.append(f"{photo.bit_depth}-bit precision (written as {depth}-bit {label})")
    if name == "bmp" and (photo.exif or photo.icc_profile):
        lost.append("EXIF and ICC profile (BMP stores neither)")
    return lost


def _pillow_image(samples: np.ndarray) -> Image.Image:
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[2]]
    data = samples[:, :, 0] if samples.shape[2] == 1 else samples
    return Image.fromarray(np.ascontiguousarray(data), mode=mode)


def _swap_red_blue(samples: np.ndarray, rows: int = 256) -> None:
    """RGB(A) → BGR(A) in place, ``rows`` rows at a time (no full-size copy)."""
    for top in range(0, samples.shape[0], rows):
        band = samples[top:top + rows]
        red = band[:, :, 0].copy()
        band[:, :, 0] = band[:, :, 2]
        band[:, :, 2] = red


def _write_png(path: Path, out: _Output, **_: object) -> None:
    samples = np.ascontiguousarray(out.samples)
    if samples.shape[2] == 2:  # OpenCV cannot encode gray with alpha
        encoded = gray_alpha_png(samples, _PNG_COMPRESSION)
    else:
        if samples.shape[2] in (3, 4):
            _swap_red_blue(samples)  # the samples were made for this write alone
        ok, encoded = cv2.imencode(".png", samples, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION])
        if not ok:
            raise PhotoSaveError(f"{path}: the PNG encoder failed")
    chunks = []
    if out.icc_profile:
        chunks.append(iccp_chunk(out.icc_profile))
    block = exif_bytes(out.exif) if out.exif is not None else None
    if block:
        chunks.append(exif_chunk(block))
    with open(path, "wb") as handle:
        write_png_with_chunks(handle, memoryview(encoded).cast("B"), chunks)


def _write_jpeg(path: Path, out: _Output, *, jpeg_quality: int, **_: object) -> None:
    samples = out.samples[:, :, :3] if out.samples.shape[2] >= 3 else out.samples[:, :, :1]
    options: dict[str, object] = {
        "quality": jpeg_quality,
        # Full-resolution colour at high quality: chroma subsampling would soften restored detail.
        "subsampling": 0 if jpeg_quality >= 90 else 2,
    }
    if out.icc_profile:
        options["icc_profile"] = out.icc_profile
    block = exif_bytes(out.exif, limit=JPEG_EXIF_LIMIT) if out.exif is not None else None
    if block:
        options["exif"] = EXIF_PREFIX + block
    _pillow_image(samples).save(path, format="JPEG", **options)


def _write_webp(path: Path, out: _Output, *, jpeg_quality: int, lossless: bool, **_: object) -> None:
    options: dict[str, object] = {"lossless": lossless, "quality": 100 if lossless else jpeg_quality}
    if lossless:
        options["exact"] = True  # keep colour under fully transparent pixels
    if out.icc_profile:
        options["icc_profile"] = out.icc_profile
    block = exif_bytes(out.exif) if out.exif is not None else None
    if block:
        options["exif"] = block
    _pillow_image(out.samples).save(path, format="WEBP", **options)


def _write_bmp(path: Path, out: _Output, **_: object) -> None:
    samples = out.samples[:, :, :3] if out.samples.shape[2] >= 3 else out.samples[:, :, :1]
    _pillow_image(samples).save(path, format="BMP")


def _write_tiff(path: Path, out: _Output, **_: object) -> None:
    write_tiff(path, out.samples, icc_profile=out.icc_profile, exif=out.exif)


_WRITERS = {"png": _write_png, "jpeg": _write_jpeg, "webp": _write_webp, "bmp": _write_bmp, "tiff": _write_tiff}


def save_photo(
    photo: Photo,
    path: PathLike,
    *,
    fmt: Optional[str] = None,
    bit_depth: Optional[int] = None,
    overwrite: bool = False,
    jpeg_quality: int = 95,
    lossless: bool = False,
    consume: bool = False,
) -> Path:
    """Write ``photo`` to ``path`` atomically and return the path written.

    ``fmt``: ``"png" | "tiff" | "jpeg" | "webp" | "bmp"`` (``"jpg"``/``"tif"`` accepted); by
    default taken from ``path``'s extension. ``bit_depth``: 8 or 16; by default the photo's
    own depth where the format can store it (PNG, TIFF), else 8; asking JPEG, WebP or BMP for
    16 raises :class:`PhotoSaveError`. Values are rounded to the nearest level. A photo read
    from float samples is written as a float32 TIFF (``pixels * hdr_scale``, so HDR values
    survive) when the format is TIFF and no bit depth is asked. What a format cannot keep is
    listed by :func:`not_kept_on_save`.
    ``jpeg_quality`` (1..100) is also the WebP quality; ``lossless`` makes WebP lossless.

    Carried over: alpha (PNG, TIFF, WebP; resized with the pixels if their size changed),
    gray (when the photo was gray and still is, within one level), the ICC profile (where
    it matches gray/colour output), and EXIF with orientation reset to 1 (JPEG, PNG, TIFF, WebP).
    BMP stores neither alpha nor metadata.

    The file appears complete or not at all; missing folders are created. An existing file
    raises :class:`OutputExistsError` unless ``overwrite``.

    ``consume``: the photo's float pixels are freed (:meth:`Photo.release_pixels`) as soon as
    they are converted to the file's samples, before encoding, so the encoder's buffers do not
    come on top of them (a one-shot save: the CLI and the batch). The file is the same.
    """
    target = Path(path)
    name = output_format_for(target, fmt)
    depth = resolve_bit_depth(name, bit_depth, photo.bit_depth)
    if not 1 <= int(jpeg_quality) <= 100:
        raise PhotoSaveError(f"JPEG quality must be between 1 and 100, not {jpeg_quality}")
    try:
        with atomic_output(target, overwrite=overwrite) as temp:
            if keeps_float(photo, name, bit_depth):
                writer, output = _write_tiff, _prepare_float(photo)
            else:
                writer, output = _WRITERS[name], _prepare(photo, name, depth, consume)
            if consume:
                photo.release_pixels()
            writer(temp, output, jpeg_quality=int(jpeg_quality), lossless=lossless)
            del output
    except RestoraError:
        raise
    except MemoryError as err:
        raise PhotoSaveError(f"{target}: not enough memory to encode the image") from err
    except (OSError, ValueError, TypeError, KeyError, struct.error, cv2.error) as err:
        raise PhotoSaveError(f"{target}: could not write the file ({one_line(err)})") from err
    return target
