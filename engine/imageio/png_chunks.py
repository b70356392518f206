"""Adding metadata chunks (iCCP, eXIf) to an encoded PNG stream."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Iterable

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
