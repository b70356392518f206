"""Adding metadata chunks (iCCP, eXIf) to an encoded PNG stream, and encoding the one kind of PNG
OpenCV cannot: gray with alpha."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Iterable

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, IHDR length+type, 13 data bytes, CRC


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, 4-letter type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def iccp_chunk(icc_profile: bytes, name: bytes = b"ICC profile") -> bytes:
    """An ``iCCP`` chunk embedding ``icc_profile`` (deflate-compressed, as the PNG spec requires)."""
    return png_chunk(b"iCCP", name + b"\x00\x00" + zlib.compress(icc_profile))


def exif_chunk(exif_block: bytes) -> bytes:
    """An ``eXIf`` chunk holding a TIFF-header EXIF block (no ``Exif\\0\\0`` prefix)."""
    return png_chunk(b"eXIf", exif_block)


def write_png_with_chunks(handle: BinaryIO, encoded: memoryview, chunks: Iterable[bytes]) -> None:
    """Write the PNG stream ``encoded`` to ``handle`` with ``chunks`` inserted right after IHDR
    (where iCCP must be, before any PLTE or IDAT)."""
    if bytes(encoded[: len(PNG_SIGNATURE)]) != PNG_SIGNATURE or bytes(encoded[12:16]) != b"IHDR":
        raise ValueError("encoder did not produce a PNG stream")
    handle.write(encoded[:_IHDR_END])
    for chunk in chunks:
        handle.write(chunk)
    handle.write(encoded[_IHDR_END:])


def gray_alpha_png(samples: np.ndarray, level: int = 6, rows: int = 256) -> bytes:
    """A PNG stream (colour type 4: gray and alpha) of ``samples``, uint8 or uint16 H x W x 2,
    deflated at ``level`` (0-9) ``rows`` rows at a time. Each row uses the "Sub" filter (each
    byte minus the byte one pixel to its left), which suits photos."""
    if samples.ndim != 3 or samples.shape[2] != 2 or samples.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8/uint16 H x W x 2 samples, got {samples.dtype} {samples.shape}")
    height, width = samples.shape[:2]
    depth = 8 * samples.dtype.itemsize
    pixel_bytes = 2 * samples.dtype.itemsize
    header = struct.pack(">IIBBBBB", width, height, depth, 4, 0, 0, 0)
    deflate = zlib.compressobj(level)
    parts = []
    for top in range(0, height, rows):
        raw = np.ascontiguousarray(samples[top:top + rows], dtype=samples.dtype.newbyteorder(">"))
        raw = raw.view(np.uint8).reshape(raw.shape[0], width * pixel_bytes)
        lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        lines[:, 0] = 1  # the Sub filter
        lines[:, 1:1 + pixel_bytes] = raw[:, :pixel_bytes]
        np.subtract(raw[:, pixel_bytes:], raw[:, :-pixel_bytes], out=lines[:, 1 + pixel_bytes:])
        parts.append(deflate.compress(lines.tobytes()))
    parts.append(deflate.flush())
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")
