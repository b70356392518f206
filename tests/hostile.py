"""Builders of hostile and unusual input files for the robustness tests (all generated here:
no file from ../shared is needed)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def lzw_encode(data: bytes) -> bytes:
    """TIFF-flavoured LZW (MSB-first codes of 9–12 bits, early change, clear code first)."""
    out = bytearray()
    acc = 0
    nbits = 0

    def emit(code: int, width: int) -> None:
        nonlocal acc, nbits
        acc = (acc << width) | code
        nbits += width
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1

    def fresh() -> dict[bytes, int]:
        return {bytes([i]): i for i in range(256)}

    table, next_code, width = fresh(), 258, 9
    emit(256, width)
    w = b""
    for byte in data:
        wc = w + bytes([byte])
        if wc in table:
            w = wc
            continue
        emit(table[w], width)
        table[wc] = next_code
        next_code += 1
        if next_code == 4094:
            emit(256, width)
            table, next_code, width = fresh(), 258, 9
        elif next_code > (1 << width) - 1:
            width += 1
        w = bytes([byte])
    if w:
        emit(table[w], width)
        next_code += 1
        if next_code > (1 << width) - 1 and width < 12:
            width += 1
    emit(257, width)
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return bytes(out)


def planar_lzw_tiff(path: Path, samples: np.ndarray, *, associated_alpha: bool = True, rows_per_strip: int = 8) -> Path:
    """A little-endian TIFF of ``samples`` (HxWx4 uint16 RGBA) with separate colour planes
    (PlanarConfiguration 2), LZW-compressed strips — the layout of Pillow's
    ``tiff_strip_planar_16bit_RGBa.tiff``."""
    height, width, channels = samples.shape
    strips: list[bytes] = []
    for c in range(channels):
        plane = np.ascontiguousarray(samples[:, :, c]).astype("<u2")
        for top in range(0, height, rows_per_strip):
            strips.append(lzw_encode(plane[top:top + rows_per_strip].tobytes()))
    n = len(strips)
    tags = [  # (tag, type 3 SHORT / 4 LONG, values); StripOffsets filled in below
        (256, 4, [width]), (257, 4, [height]), (258, 3, [16] * channels),
        (259, 3, [5]),                    # LZW
        (262, 3, [2]),                    # RGB
        (273, 4, [0] * n), (277, 3, [channels]), (278, 4, [rows_per_strip]),
        (279, 4, [len(s) for s in strips]),
        (284, 3, [2]),                    # separate planes
        (338, 3, [1 if associated_alpha else 2]),
    ]
    ifd_at = 8
    position = ifd_at + 2 + 12 * len(tags) + 4
    out_of_line: dict[int, int] = {}
    for tag, typ, values in tags:
        size = (2 if typ == 3 else 4) * len(values)
        if size > 4:
            out_of_line[tag] = position
            position += size
    offsets = []
    for strip in strips:
        offsets.append(position)
        position += len(strip)
    tags[5] = (273, 4, offsets)
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", len(tags)))
    blobs = bytearray()
    for tag, typ, values in tags:
        packed = struct.pack("<" + ("H" if typ == 3 else "I") * len(values), *values)
        if tag in out_of_line:
            out += struct.pack("<HHII", tag, typ, len(values), out_of_line[tag])
            blobs += packed
        else:
            out += struct.pack("<HHI", tag, typ, len(values)) + packed.ljust(4, b"\x00")
    out += struct.pack("<I", 0) + blobs
    for strip in strips:
        out += strip
    assert len(out) == position
    path.write_bytes(bytes(out))
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, width: int, height: int) -> Path:
    """A real, valid 8-bit gray PNG of ``width`` x ``height`` black pixels, compressed row by row
    (a few hundred kB on disk for 13000², never held in memory)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = bytearray()
    for _ in range(height):
        idat += compressor.compress(row)
    idat += compressor.flush()
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", bytes(idat)) + png_chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


def png_bomb_header(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A PNG whose header claims ``width`` x ``height`` with a tiny, truncated body."""
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


def bmp_bomb_header(path: Path, width: int = 60_000, height: int = 60_000) -> Path:
    """A BMP whose header claims a huge 24-bit image, with a few bytes of pixels."""
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 16, 2835, 2835, 0, 0)
    path.write_bytes(header + info + b"\x00" * 16)
    return path


def tiff_bomb_header(path: Path, width: int = 200_000, height: int = 200_000) -> Path:
    """A TIFF whose one directory claims a huge uncompressed gray image with one tiny strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 9 * 12 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    out += struct.pack("<I", 0) + b"\x00" * 16
    path.write_bytes(bytes(out))
    return path


def jpeg_bomb_header(path: Path) -> Path:
    """A JPEG whose SOF says 65000 x 65000 (the largest a JPEG can claim), body cut short."""
    image = Image.fromarray(np.full((16, 16, 3), 128, np.uint8))
    image.save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)
    path.write_bytes(bytes(data[: len(data) * 2 // 3]))
    return path


def truncated(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: max(1, int(len(data) * fraction))])
    return target


def bit_flipped(source: Path, target: Path, seed: int, flips: int = 6) -> Path:
    """``source`` with ``flips`` random bits inverted (never in the first 8 bytes, so the
    decoder is still chosen from the signature and has to cope with what follows)."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    for _ in range(flips):
        i = int(rng.integers(min(8, len(data) - 1), len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))
    target.write_bytes(bytes(data))
    return target
