"""Decoding raster files (JPEG, PNG, TIFF, WebP, BMP) into integer sample arrays.

Pillow reads headers, metadata and 8-bit pixels; OpenCV decodes 16-bit PNG and compressed
16-bit TIFF (Pillow truncates those to 8 bits); tifffile decodes plain and deflate TIFF of
any depth, including float.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageCms

from ..analysis.jpeg_tables import JpegQuantisation, from_pillow
from ..errors import PhotoLoadError, UnsupportedFormatError
from .checks import check_pixel_budget
from .exif import exif_block_from_image, orientation_of
from .formats import PILLOW_FORMATS, PILLOW_OPEN_FORMATS
from .orientation import valid_orientation
from .quantize import releasable_empty

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

_PNG_GRAY_COLOR_TYPES = (0, 4)
#: TIFF compressions tifffile decodes without the imagecodecs package (none, deflate).
_TIFFFILE_NATIVE_COMPRESSIONS = frozenset({1, 8, 32946})


@dataclass
class Raster:
    """Decoded samples before orientation and float conversion.

    ``samples``: HxWxC, C = 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA); dtype uint8,
    uint16, or float32 in [0, 1]. ``bit_depth``: 8 or 16. ``icc_profile``: the profile that
    describes ``samples`` (``None`` when there was none or it was used to convert CMYK to sRGB).
    ``jpeg``: a JPEG's quantisation tables and chroma sampling, when ``samples`` are its plain
    decoding (``None`` for other formats and for CMYK/RGB-coded JPEGs).
    ``float_samples``: the file stores floats; ``hdr_scale`` (>= 1): float samples were divided
    by it to fit [0, 1] (their maximum when above 1). ``frames``: frames/pages in the file.
    """

    samples: np.ndarray
    bit_depth: int
    source_format: str
    icc_profile: Optional[bytes]
    exif: Optional[bytes]
    orientation: int
    jpeg: Optional[JpegQuantisation] = None
    frames: int = 1
    float_samples: bool = False
    hdr_scale: float = 1.0


def _as_hwc(array: np.ndarray) -> np.ndarray:
    return array[:, :, None] if array.ndim == 2 else array


def _bgr_to_rgb(array: np.ndarray) -> np.ndarray:
    """OpenCV's BGR/BGRA channel order → RGB/RGBA (1- and 2-channel arrays are returned as-is)."""
    array = _as_hwc(array)
    if array.shape[2] == 3:
        return array[:, :, ::-1]
    if array.shape[2] == 4:
        return array[:, :, [2, 1, 0, 3]]
    return array


def _cv2_decode(path: Path, *, releasable: bool = False) -> np.ndarray:
    """RGB(A) samples of ``path`` decoded by OpenCV. ``releasable``: copied band by band (BGR to
    RGB on the way) into a :func:`~engine.imageio.quantize.releasable_empty` array, whose rows the
    float conversion gives back as it goes; OpenCV's own array (it takes no output buffer) is
    freed before the conversion, so decoding a large 16-bit PNG never holds OpenCV's samples
    and the float pixels together."""
    data = np.fromfile(str(path), dtype=np.uint8)
    try:  # libtiff/libpng complain on stderr about what becomes our own one-line error
        from cv2.utils import logging as cv_logging

        level = cv_logging.getLogLevel()
        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    except (ImportError, AttributeError):
        cv_logging = None
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        if cv_logging is not None:
            cv_logging.setLogLevel(level)
    del data
    if decoded is None:
        raise PhotoLoadError(f"{path}: file is truncated or corrupt (the decoder could not read its pixels)")
    if not releasable:
        return _bgr_to_rgb(decoded)
    decoded = _as_hwc(decoded)
    out = releasable_empty(decoded.shape, decoded.dtype)
    for top in range(0, decoded.shape[0], RELEASE_COPY_ROWS):
        band = slice(top, top + RELEASE_COPY_ROWS)
        out[band] = _bgr_to_rgb(decoded[band])
    return out


#: Rows copied at a time out of a decoder's array into a releasable one (OpenCV's in
#: :func:`_cv2_decode` ``releasable``, Pillow's in :func:`_pillow_array`).
RELEASE_COPY_ROWS = 256


def _keep_gray(samples: np.ndarray) -> np.ndarray:
    """Samples a decoder expanded to BGR(A) for a gray source → gray (+ alpha)."""
    if samples.shape[2] == 3:
        return samples[:, :, :1]
    if samples.shape[2] == 4:
        return samples[:, :, [0, 3]]
    return samples


def _depth_of(dtype: np.dtype) -> int:
    return 8 if dtype == np.uint8 else 16


def _cmyk_to_rgb(image: Image.Image, icc: Optional[bytes]) -> tuple[Image.Image, Optional[bytes]]:
    """Convert a CMYK image to sRGB through its embedded CMYK profile when there is one,
    else with Pillow's plain formula. The returned profile is ``None`` (the result is sRGB)."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if source.profile.xcolor_space.strip().upper() == "CMYK":
                converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
                if converted is not None:
                    return converted, None
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass
    return image.convert("RGB"), None


def pillow_samples(image: Image.Image, icc: Optional[bytes]) -> tuple[np.ndarray, int, Optional[bytes]]:
    """Decode a Pillow image into ``(samples HxWxC, bit_depth, icc_profile)`` (see :class:`Raster`)."""
    mode = image.mode
    if mode == "CMYK":
        image, icc = _cmyk_to_rgb(image, icc)
    elif mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
    elif mode in ("L", "RGB") and "transparency" in image.info:
        # a colour key (PNG tRNS): restoration changes the colours it names, so it becomes alpha
        image = image.convert("LA" if mode == "L" else "RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("La",):
        image = image.convert("LA")
    elif mode in ("RGBa",):
        image = image.convert("RGBA")
    elif mode.startswith("I;16"):
        return _as_hwc(np.asarray(image).astype(np.uint16)), 16, icc
    elif mode == "I":
        return _as_hwc(np.clip(np.asarray(image), 0, 65535).astype(np.uint16)), 16, icc
    elif mode == "F":
        return _as_hwc(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)), 16, icc
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    return _as_hwc(_pillow_array(image)), 8, icc


def _pillow_array(image: Image.Image) -> np.ndarray:
    """``np.asarray(image)`` (8-bit modes), copied band by band into a
    :func:`~engine.imageio.quantize.releasable_empty` array: no full-size bytes object on the way,
    and the float conversion can release the samples as it goes."""
    probe = np.asarray(image.crop((0, 0, image.width, min(1, image.height))))
    out = releasable_empty((image.height,) + probe.shape[1:], probe.dtype)
    for top in range(0, image.height, RELEASE_COPY_ROWS):
        bottom = min(top + RELEASE_COPY_ROWS, image.height)
        out[top:bottom] = np.asarray(image.crop((0, top, image.width, bottom)))
    return out


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, color type) from a PNG's IHDR chunk."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise PhotoLoadError(f"{path}: file is truncated or corrupt (bad PNG header)")
    return head[24], head[25]


def load_pillow_raster(path: Path, max_pixels: int, frame: int = 0) -> Raster:
    """Decode a JPEG, PNG, WebP or BMP file (or a TIFF Pillow handles: palette, CMYK, YCbCr;
    ``frame``: the TIFF page that is the photo, :func:`main_tiff_page`)."""
    with Image.open(path, formats=PILLOW_OPEN_FORMATS) as image:
        if frame:
            image.seek(frame)
        check_pixel_budget(path, image.width, image.height, max_pixels)
        source_format = PILLOW_FORMATS[image.format or ""]
        icc = image.info.get("icc_profile") or None
        exif = exif_block_from_image(image)
        orientation = orientation_of(image)
        frames = max(int(getattr(image, "n_frames", 1) or 1), 1)
        if source_format == "png":
            bits, color_type = _png_header(path)
            if bits == 16:
                samples = _cv2_decode(path, releasable=True)
                if color_type in _PNG_GRAY_COLOR_TYPES:
                    samples = _keep_gray(samples)
                _check_decoded(path, samples, image.height, image.width)
                return Raster(samples, 16, source_format, icc, exif, orientation, frames=frames)
        image.load()
        jpeg = from_pillow(image, orientation) if source_format == "jpeg" else None
        samples, depth, icc = pillow_samples(image, icc)
    return Raster(samples, depth, source_format, icc, exif, orientation, jpeg=jpeg, frames=frames)


def _tiff_page_samples(path: Path, page: "tifffile.TiffPage") -> np.ndarray:
    """Samples of a gray or RGB TIFF page as HxWxC (alpha, if any, last)."""
    axes = page.axes
    if axes in ("YX", "YXS") and page.dtype in (np.uint8, np.uint16):
        # decoded into an array whose rows the float conversion can release as it goes
        array = page.asarray(out=releasable_empty(page.shape, page.dtype))
    else:
        array = page.asarray()
    if axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    elif axes not in ("YX", "YXS"):
        raise UnsupportedFormatError(f"{path}: unsupported TIFF layout ({axes})")
    array = _as_hwc(array)
    photometric = page.photometric
    colour_channels = 3 if photometric == tifffile.PHOTOMETRIC.RGB else 1
    extras = tuple(page.extrasamples or ())
    has_alpha = array.shape[2] > colour_channels and bool(extras) and extras[0] in (1, 2)
    array = array[:, :, : colour_channels + (1 if has_alpha else 0)]
    if array.dtype.kind == "f":
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        np.maximum(array, 0.0, out=array)
    elif array.dtype == np.bool_:  # 1-bit bilevel
        array = array.astype(np.uint8) * 255
    elif array.dtype not in (np.uint8, np.uint16):
        raise UnsupportedFormatError(f"{path}: unsupported TIFF sample type ({array.dtype})")
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        top = 1.0 if array.dtype.kind == "f" else np.iinfo(array.dtype).max
        array = array.copy()
        array[:, :, 0] = top - array[:, :, 0]
    if has_alpha and extras[0] == 1:  # associated (premultiplied) alpha → straight alpha
        array = _unpremultiply(array)
    return array


def _unpremultiply(array: np.ndarray) -> np.ndarray:
    top = 1.0 if array.dtype.kind == "f" else float(np.iinfo(array.dtype).max)
    values = array.astype(np.float32)
    alpha = values[:, :, -1:]
    colour = np.where(alpha > 0, values[:, :, :-1] * top / np.maximum(alpha, 1e-12), 0.0)
    if array.dtype.kind == "f":  # float colour may be HDR (above 1): not clipped here
        values[:, :, :-1] = np.maximum(colour, 0.0)
        return values
    values[:, :, :-1] = np.clip(colour, 0, top)
    return np.round(values).astype(array.dtype)


def main_tiff_page(tif: "tifffile.TiffFile") -> tuple[int, "tifffile.TiffPage"]:
    """(index, page) of the photo in a TIFF: its first page that is not a reduced-resolution
    preview (some writers put a thumbnail first), else its first page."""
    for index, page in enumerate(tif.pages):
        if not getattr(page, "is_reduced", False):
            return index, page
    return 0, tif.pages.first


def _tiff_metadata(path: Path, page: "tifffile.TiffPage",
                   index: int = 0) -> tuple[Optional[bytes], Optional[bytes], int]:
    """(icc, exif block, orientation) of page ``index`` of a TIFF, through Pillow when it can parse
    the header. A main image after a preview may carry none of them itself (the file's first page
    does): each missing one is taken from the first page."""
    try:
        with Image.open(path, formats=["TIFF"]) as image:
            icc, exif, orientation = image.info.get("icc_profile") or None, exif_block_from_image(image), \
                orientation_of(image)
            if index:
                image.seek(index)
                icc = image.info.get("icc_profile") or icc
                exif = exif_block_from_image(image) or exif
                orientation = orientation_of(image) if 274 in image.tag_v2 else orientation
            return icc, exif, orientation
    except (OSError, SyntaxError, ValueError, EOFError):
        pass
    icc_tag = page.tags.get(34675)
    orientation_tag = page.tags.get(274)
    icc = bytes(icc_tag.value) if icc_tag is not None else None
    return icc, None, valid_orientation(orientation_tag.value if orientation_tag is not None else 1)


def load_tiff_raster(path: Path, max_pixels: int) -> Raster:
    """Decode the photo of a TIFF file (its first full-resolution page: :func:`main_tiff_page`) at
    its full depth."""
    with tifffile.TiffFile(path) as tif:
        index, page = main_tiff_page(tif)
        check_pixel_budget(path, page.imagewidth, page.imagelength, max_pixels)
        icc, exif, orientation = _tiff_metadata(path, page, index)
        photometric = page.photometric
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE,
                               tifffile.PHOTOMETRIC.RGB):
            raster = load_pillow_raster(path, max_pixels, frame=index)
            raster.source_format = "tiff"
            raster.frames = _tiff_frames(tif)
            return raster
        frames = _tiff_frames(tif)
        try:
            samples = _tiff_page_samples(path, page)
        except (ValueError, KeyError, NotImplementedError):
            if int(page.compression) in _TIFFFILE_NATIVE_COMPRESSIONS:
                raise  # tifffile decodes these itself: the file is damaged
            # A compression tifffile cannot decode without imagecodecs (LZW, JPEG, PackBits …).
            if index:  # OpenCV reads the first page, here a preview
                raise UnsupportedFormatError(f"{path}: cannot decode this TIFF's main image (page {index + 1}, "
                                             "after a preview) without the 'imagecodecs' package; not read") from None
            samples = _fallback_tiff_decode(path, page)
    hdr_scale = 1.0
    if samples.dtype.kind == "f":
        samples = samples.astype(np.float32, copy=True)
        colour = samples.shape[2] - (1 if samples.shape[2] in (2, 4) else 0)
        top = float(samples[:, :, :colour].max()) if samples.size else 0.0
        if top > 1.0:
            hdr_scale = top
            samples[:, :, :colour] /= np.float32(top)
        np.clip(samples, 0.0, 1.0, out=samples)
        return Raster(samples, 16, "tiff", icc, exif, orientation, frames=frames, float_samples=True,
                      hdr_scale=hdr_scale)
    return Raster(samples, _depth_of(samples.dtype), "tiff", icc, exif, orientation, frames=frames)


def _tiff_frames(tif: "tifffile.TiffFile") -> int:
    """Full-resolution images in a TIFF (reduced-resolution previews are not counted)."""
    count = 0
    for page in tif.pages:
        if not getattr(page, "is_reduced", False):
            count += 1
    return max(count, 1)


def _check_decoded(path: Path, samples: np.ndarray, height: int, width: int, channels: Optional[int] = None,
                   dtype: Optional[np.dtype] = None) -> None:
    """Refuse a decoder's result that does not have the shape the header promised."""
    ok = samples.ndim == 3 and samples.shape[:2] == (height, width)
    if channels is not None:
        ok = ok and samples.shape[2] == channels
    if dtype is not None:
        ok = ok and samples.dtype == dtype
    if not ok:
        raise PhotoLoadError(f"{path}: this file's layout cannot be decoded reliably "
                             f"(got {samples.shape} {samples.dtype} for a {width}x{height} image); not read")


def _fallback_tiff_decode(path: Path, page: "tifffile.TiffPage") -> np.ndarray:
    """Decode a TIFF whose compression tifffile cannot handle here, through OpenCV, only for
    layouts OpenCV reads correctly: interleaved (contiguous) 8/16-bit gray, RGB or RGBA.
    Separate colour planes, other depths and extra channels are refused: OpenCV returns
    uninitialised memory for some of them (16-bit planar RGBA) instead of an error."""
    bits = int(page.bitspersample)
    samples_per_pixel = int(page.samplesperpixel)
    photometric = page.photometric
    colour = 3 if photometric == tifffile.PHOTOMETRIC.RGB else 1
    planar = int(page.planarconfig) == int(tifffile.PLANARCONFIG.SEPARATE) and samples_per_pixel > 1
    compression = getattr(page.compression, "name", str(page.compression))
    if planar or bits not in (8, 16) or samples_per_pixel not in (colour, colour + 1) \
            or int(page.sampleformat) != int(tifffile.SAMPLEFORMAT.UINT):
        raise UnsupportedFormatError(
            f"{path}: cannot decode this TIFF layout ({bits}-bit, {samples_per_pixel} samples"
            f"{', separate planes' if planar else ''}, {compression} compression) without the "
            f"'imagecodecs' package; not read")
    samples = _cv2_decode(path)
    if colour == 1:
        samples = _keep_gray(samples)
    _check_decoded(path, samples, int(page.imagelength), int(page.imagewidth),
                   samples_per_pixel, np.dtype(np.uint8 if bits == 8 else np.uint16))
    return samples


def load_raster(path: Path, max_pixels: int) -> Raster:
    """Decode any supported raster file, choosing the decoder from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:4] in TIFF_SIGNATURES:
        return load_tiff_raster(path, max_pixels)
    return load_pillow_raster(path, max_pixels)
