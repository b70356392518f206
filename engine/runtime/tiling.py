"""Tiled inference for any image-to-image model at any integer scale, with bounded memory.

The image (numpy float32 HxWxC) is split into a grid of *cores* that partition it. Each tile
runs the model on its core grown by ``feather + overlap`` pixels per side (the *window*), keeps
the output of the core grown by ``feather`` (the *kept* region) and blends neighbouring kept
regions with linear ramps over the ``2 * feather`` band where they overlap. Every kept pixel
therefore saw at least ``overlap`` pixels of real context on every side that is not an image
edge, so for a translation-equivariant network whose receptive-field radius is at most
``overlap`` the tiled result equals the whole-image result.

Model size requirements are honoured by padding the image *virtually* (reflect, bottom and
right only) to a multiple of ``size_multiple`` (and at least ``minimum_size``): grid lines,
windows and margins all fall on multiples of it, so no tile needs padding of its own. Only one
window and its output are alive at a time; the output array is allocated once, at the first
tile, and accumulates weighted sums in place.

The model is any ``fn(tile)`` taking float32 NCHW ``(1, C, h, w)`` and returning float32
``(1, C', h*scale, w*scale)`` numpy arrays, so torch and ONNX Runtime backends plug in alike.
On an out-of-memory error (types given by the backend, never matched by message text) the tile
edge is halved and the failing window is computed in smaller pieces; the rest of the image then
runs at the smaller size and the user is told through ``notify``.
"""

from __future__ import annotations

import logging
import math
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import RestoraError
from ..progress import Progress, cancel_scope
from . import device as devices

log = logging.getLogger(__name__)

#: The model callable: float32 (1, C, h, w) → float32 (1, C', h*scale, w*scale).
TileFn = Callable[[np.ndarray], np.ndarray]

#: Smallest tile edge (input pixels) the out-of-memory fallback goes down to.
MIN_TILE = 32


class TileOutOfMemory(RestoraError):
    """A backend ran out of memory on one tile (raised by backends whose own error types are
    too broad to catch as out-of-memory directly)."""


class OutOfMemoryError(RestoraError):
    """Even the smallest tile does not fit in the device's memory."""


def default_oom_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "this tile did not fit": ``MemoryError``, :class:`TileOutOfMemory`
    and torch's out-of-memory error once torch is imported (before that, no torch code can have
    raised it; importing torch here would cost seconds for ONNX-only plans)."""
    types: list[type[BaseException]] = [MemoryError, TileOutOfMemory]
    torch = sys.modules.get("torch")
    if torch is None:
        return tuple(types)
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None:
        types.append(oom)
    return tuple(types)


# ---------------------------------------------------------------------------------------------
# Tile size strategies


class TileStrategy(ABC):
    """Chooses the tile edge (input pixels, before margins) for one run."""

    @abstractmethod
    def tile_size(self, *, memory_factor: float, margin: int) -> int:
        """Tile edge in input pixels. ``memory_factor``: peak bytes the model needs per window
        pixel; ``margin``: pixels added on each side of a tile to make its window."""


@dataclass(frozen=True)
class FixedTiles(TileStrategy):
    """A fixed tile edge in input pixels (the ``--tile`` option)."""

    size: int

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"tile size must be a positive number of pixels, got {self.size}")

    def tile_size(self, *, memory_factor: float, margin: int) -> int:
        return int(self.size)


@dataclass(frozen=True)
class WholeImage(TileStrategy):
    """One tile covering the whole image (a single pass; for small images and benchmarks)."""

    def tile_size(self, *, memory_factor: float, margin: int) -> int:
        return 1 << 30


@dataclass(frozen=True)
class AutoTiles(TileStrategy):
    """Tile edge from the device's free memory: the window may use ``memory_fraction`` of it at
    ``memory_factor`` bytes per pixel, clamped to ``[min_tile, max_tile]``."""

    device: str = "cpu"
    memory_fraction: float = 0.5
    min_tile: int = 64
    max_tile: int = 2048

    def tile_size(self, *, memory_factor: float, margin: int) -> int:
        return auto_tile_size(devices.free_memory(self.device), memory_factor, margin,
                              memory_fraction=self.memory_fraction, min_tile=self.min_tile,
                              max_tile=self.max_tile)


def auto_tile_size(free_bytes: int, memory_factor: float, margin: int, *, memory_fraction: float = 0.5,
                   min_tile: int = 64, max_tile: int = 2048) -> int:
    """Largest tile edge whose window ``(tile + 2*margin)²`` times ``memory_factor`` bytes fits in
    ``memory_fraction * free_bytes``, clamped to ``[min_tile, max_tile]``."""
    budget_pixels = max(free_bytes, 0) * memory_fraction / max(memory_factor, 1e-9)
    edge = int(math.isqrt(int(budget_pixels))) - 2 * margin
    return int(min(max(edge, min_tile), max_tile))


# ---------------------------------------------------------------------------------------------
# Grid planning


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis, in (virtually padded) input pixels, half-open intervals."""

    core: tuple[int, int]
    keep: tuple[int, int]
    window: tuple[int, int]


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def split_axis(length: int, tile: int, overlap: int, feather: int, multiple: int = 1) -> list[AxisTile]:
    """Split ``[0, length)`` (a multiple of ``multiple``) into cores of at most ``tile`` pixels.

    Cores have near-equal sizes that are multiples of ``multiple``; kept regions grow each core by
    ``feather`` and windows grow the kept region by ``overlap`` (both clipped to the axis). The
    caller passes ``overlap`` and ``feather`` already rounded to ``multiple``.
    """
    units = length // multiple
    tile_units = max(tile // multiple, 1)
    n = max(-(-units // tile_units), 1)
    base, extra = divmod(units, n)
    tiles: list[AxisTile] = []
    start = 0
    for i in range(n):
        stop = start + (base + (1 if i < extra else 0)) * multiple
        k0, k1 = max(start - feather, 0), min(stop + feather, length)
        w0, w1 = max(k0 - overlap, 0), min(k1 + overlap, length)
        tiles.append(AxisTile((start, stop), (k0, k1), (w0, w1)))
        start = stop
    return tiles


def feather_weights(axis_tile: AxisTile, length: int, feather: int, scale: int) -> np.ndarray:
    """Blend weights (float32, one per output pixel of the kept region, ``scale`` per input pixel):
    a linear ramp over each ``2*feather`` band shared with a neighbour, 1 elsewhere. The ramps of
    two neighbours sum to exactly 1."""
    k0, k1 = axis_tile.keep
    c0, c1 = axis_tile.core
    w = np.ones((k1 - k0) * scale, dtype=np.float64)
    band = 2 * feather * scale
    if band > 0:
        ramp = (np.arange(band, dtype=np.float64) + 0.5) / band
        if c0 > 0:
            w[:band] = ramp
        if c1 < length:
            w[len(w) - band:] = ramp[::-1]
    return w.astype(np.float32)


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Source indices for positions ``start..stop-1`` of an axis of ``size`` samples extended on
    the far side by reflection (numpy's ``"reflect"`` mode; a 1-sample axis repeats its sample)."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx % period
    return np.where(idx >= size, period - idx, idx)


class _Source:
    """Reads windows of an image padded virtually (reflect) to ``padded_h x padded_w``; with
    ``side`` (same height and width), each window is the image's channels followed by the side
    input's, so a model with an extra input plane (FFDNet's noise map) never needs a full-size
    stacked copy.

    While a run writes its output over the image (:meth:`_Run.stream` in place), the image rows
    above :attr:`written` hold output; the input rows of them that later tiles still read are kept
    in :attr:`saved` (rows ``saved_start ..`` :attr:`written` ``- 1``) and read from there."""

    def __init__(self, image: np.ndarray, padded_h: int, padded_w: int, side: Optional[np.ndarray] = None) -> None:
        self.image = image
        self.padded_h = padded_h
        self.padded_w = padded_w
        self.side = side
        self.written = 0
        self.saved: Optional[np.ndarray] = None
        self.saved_start = 0

    def read(self, y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        h = self.image.shape[0]
        if self.written and int(reflect_indices(y[0], y[1], h).min()) < self.written:
            window = self._read_overwritten(y, x)
        else:
            window = self._read(self.image, y, x)
        if self.side is None:
            return window
        extra = self._read(self.side, y, x)
        return np.concatenate([window, extra.astype(window.dtype, copy=False)], axis=2)

    def _read_overwritten(self, y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        """A window some of whose input rows were overwritten: those come from :attr:`saved`."""
        h, w = self.image.shape[:2]
        rows = reflect_indices(y[0], y[1], h)
        cols = slice(*x) if x[1] <= w else reflect_indices(x[0], x[1], w)
        old = rows < self.written
        if self.saved is None or int(rows[old].min()) < self.saved_start:
            raise AssertionError("a tile reads input rows that were overwritten and not kept")  # a planning bug
        window = np.empty((len(rows), x[1] - x[0], self.image.shape[2]), self.image.dtype)
        window[old] = self.saved[rows[old] - self.saved_start][:, cols]
        window[~old] = self.image[rows[~old]][:, cols]
        return window

    def overwrite_rows(self, top: int, values: np.ndarray, still_read_from: int) -> None:
        """Write ``values`` over the image rows ``top ..`` (the next unwritten ones), first keeping
        the input rows from ``still_read_from`` on (the first row a later tile reads) in
        :attr:`saved`: only those, so it holds at most the context rows of one row of tiles."""
        stop = top + len(values)
        assert top == self.written, "rows are overwritten top to bottom"
        start = min(max(still_read_from, 0), stop)
        parts = []
        if self.saved is not None and start < self.written:
            parts.append(self.saved[max(start - self.saved_start, 0):])
        if max(start, top) < stop:
            parts.append(self.image[max(start, top):stop])
        self.saved = np.concatenate(parts) if parts else None
        self.saved_start = start
        self.image[top:stop] = values
        self.written = stop

    @staticmethod
    def _read(image: np.ndarray, y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
        h, w = image.shape[:2]
        rows = slice(*y) if y[1] <= h else reflect_indices(y[0], y[1], h)
        cols = slice(*x) if x[1] <= w else reflect_indices(x[0], x[1], w)
        if isinstance(rows, slice) or isinstance(cols, slice):
            # slice first (a view), then gather: only the window is ever copied
            return image[rows][:, cols] if isinstance(rows, slice) else image[:, cols][rows]
        return image[np.ix_(rows, cols)]


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class _Run:
    fn: TileFn
    scale: int
    multiple: int
    overlap: int
    feather: int
    tile: int
    oom_errors: tuple[type[BaseException], ...]
    notify: Optional[Callable[[str], None]]
    on_oom: Optional[Callable[[], None]]
    progress: Progress

    @property
    def margin(self) -> int:
        return self.overlap + self.feather

    def accumulate(self, source: _Source, out_h: int, out_w: int, top_level: bool) -> np.ndarray:
        """Run the grid over ``source`` and return the blended output cropped to
        ``(out_h*scale, out_w*scale, C')``."""
        ph, pw, s = source.padded_h, source.padded_w, self.scale
        feather = self.feather
        tile = max(self.tile // self.multiple * self.multiple, self.multiple)
        # a core must hold both of its ramps: shrink the feather band on tiny tiles
        feather = min(feather, (tile // 2) // self.multiple * self.multiple)
        overlap = self.margin - feather
        rows = split_axis(ph, tile, overlap, feather, self.multiple)
        cols = split_axis(pw, tile, overlap, feather, self.multiple)
        norm_y = _weight_sums(rows, ph, feather, s)
        norm_x = _weight_sums(cols, pw, feather, s)
        out: Optional[np.ndarray] = None
        n = len(rows) * len(cols)
        for i, (ry, rx) in enumerate((ry, rx) for ry in rows for rx in cols):
            if top_level:
                self.progress(i / n, f"tile {i + 1}/{n}")
            else:
                self.progress.check()
            window = source.read(ry.window, rx.window)
            result = self.window_output(window)
            if out is None:
                out = np.zeros((out_h * s, out_w * s, result.shape[2]), dtype=np.float32)
            ky0 = (ry.keep[0] - ry.window[0]) * s
            kx0 = (rx.keep[0] - rx.window[0]) * s
            oy0, ox0 = ry.keep[0] * s, rx.keep[0] * s
            oy1, ox1 = min(ry.keep[1] * s, out_h * s), min(rx.keep[1] * s, out_w * s)
            if oy1 <= oy0 or ox1 <= ox0:
                continue  # the kept region lies entirely in the virtual padding
            wy = feather_weights(ry, ph, feather, s)[: oy1 - oy0] / norm_y[oy0:oy1]
            wx = feather_weights(rx, pw, feather, s)[: ox1 - ox0] / norm_x[ox0:ox1]
            part = result[ky0:ky0 + (oy1 - oy0), kx0:kx0 + (ox1 - ox0)]
            out[oy0:oy1, ox0:ox1] += part * wy[:, None, None] * wx[None, :, None]
        if top_level:
            self.progress(1.0, f"tile {n}/{n}")
        assert out is not None
        return out

    def stream(self, source: _Source, out: np.ndarray, channel: Optional[int], in_place: bool) -> None:
        """Exact tiling (no blend band, scale 1): run the grid over ``source`` and write each
        tile's core into ``out`` (HxWxC', float32), every output pixel once, with no full-size
        array of its own. ``out`` may be the source image itself: then each row of tiles is
        collected in one strip and written over the image once no later tile needs those rows
        (the input rows later windows still read are kept, :meth:`_Source.overwrite_rows`), so
        the run holds one strip of output and the context rows above it, not a second image.
        ``channel``: write only this output channel (a per-channel run). The values are those
        of :meth:`accumulate`'s (``0 + part``, as its zero-initialised sum holds, -0 included)."""
        h, w = out.shape[:2]
        tile = max(self.tile // self.multiple * self.multiple, self.multiple)
        rows = split_axis(source.padded_h, tile, self.margin, 0, self.multiple)
        cols = split_axis(source.padded_w, tile, self.margin, 0, self.multiple)
        n = len(rows) * len(cols)
        zero = np.float32(0.0)
        i = 0
        for r, ry in enumerate(rows):
            oy0, oy1 = ry.core[0], min(ry.core[1], h)
            strip = np.empty((max(oy1 - oy0, 0), w, out.shape[2]), np.float32) if in_place else None
            for rx in cols:
                self.progress(i / n, f"tile {i + 1}/{n}")
                i += 1
                ox0, ox1 = rx.core[0], min(rx.core[1], w)
                if oy1 <= oy0 or ox1 <= ox0:
                    continue  # the core lies entirely in the virtual padding
                result = self.window_output(source.read(ry.window, rx.window))
                part = result[oy0 - ry.window[0]:oy1 - ry.window[0], ox0 - rx.window[0]:ox1 - rx.window[0]]
                dest = strip[:, ox0:ox1] if strip is not None else out[oy0:oy1, ox0:ox1]
                if channel is not None:
                    part, dest = part[..., channel:channel + 1], dest[..., channel:channel + 1]
                np.add(zero, part, out=dest)
                del result, part
            if strip is not None and oy1 > oy0:
                later = [reflect_indices(*t.window, source.image.shape[0]).min() for t in rows[r + 1:]]
                source.overwrite_rows(oy0, strip, int(min(later)) if later else oy1)
        self.progress(1.0, f"tile {n}/{n}")

    def window_output(self, window: np.ndarray) -> np.ndarray:
        """Model output (HWC float32) for one window, splitting it when it exceeds the current
        tile size (after an out-of-memory error)."""
        h, w = window.shape[:2]
        while True:
            if max(h, w) > self.tile + 2 * self.margin:
                return self.accumulate(_Source(window, h, w), h, w, top_level=False)
            try:
                return self.call(window)
            except self.oom_errors as err:
                self.shrink(err)

    def call(self, window: np.ndarray) -> np.ndarray:
        h, w, _c = window.shape
        nchw = np.ascontiguousarray(window.transpose(2, 0, 1)[None], dtype=np.float32)
        with cancel_scope(self.progress.cancel):  # an ONNX Runtime run stops mid-tile when cancelled
            result = np.asarray(self.fn(nchw))
        expected = (h * self.scale, w * self.scale)
        if result.ndim != 4 or result.shape[0] != 1 or tuple(result.shape[2:]) != expected:
            raise RestoraError(f"the model returned shape {tuple(result.shape)} for a {h}x{w} tile; "
                               f"expected (1, C, {expected[0]}, {expected[1]}) at scale {self.scale}")
        return result[0].transpose(1, 2, 0).astype(np.float32, copy=False)

    def shrink(self, err: BaseException) -> None:
        if self.on_oom is not None:
            self.on_oom()
        smaller = (self.tile // 2) // self.multiple * self.multiple
        if smaller < max(MIN_TILE, self.multiple):
            raise OutOfMemoryError(f"out of memory even with {self.tile}-pixel tiles; close other "
                                   f"programs using the device or run on the CPU") from err
        message = f"out of memory with {self.tile}-pixel tiles; retrying with {smaller}-pixel tiles"
        log.warning(message)
        if self.notify is not None:
            self.notify(message)
        self.tile = smaller


def _weight_sums(tiles: list[AxisTile], length: int, feather: int, scale: int) -> np.ndarray:
    total = np.zeros(length * scale, dtype=np.float32)
    for t in tiles:
        total[t.keep[0] * scale:t.keep[1] * scale] += feather_weights(t, length, feather, scale)
    return total


def padded_size(size: int, multiple: int = 1, minimum: int = 0) -> int:
    """``size`` raised to at least ``minimum`` and rounded up to a multiple of ``multiple``."""
    return _round_up(max(size, minimum, 1), multiple)


def run_tiled(image: np.ndarray, fn: TileFn, *, scale: int = 1, size_multiple: int = 1,
              minimum_size: int = 0, overlap: int = 16, feather: Optional[int] = None,
              strategy: Optional[TileStrategy] = None, memory_factor: float = 64.0,
              progress: Optional[Progress] = None, notify: Optional[Callable[[str], None]] = None,
              oom_errors: Optional[tuple[type[BaseException], ...]] = None,
              on_oom: Optional[Callable[[], None]] = None, side: Optional[np.ndarray] = None,
              out: Optional[np.ndarray] = None, channel: Optional[int] = None) -> np.ndarray:
    """Run ``fn`` over ``image`` tile by tile and return the blended output.

    ``image``: float32 HxWxC (any size from 1x1). Returns float32 ``(H*scale, W*scale, C')``,
    not clipped. ``size_multiple`` / ``minimum_size``: the model's input size requirements.
    ``overlap``: context pixels each kept pixel gets on every side (>= the network's receptive
    field radius makes tiling exact); ``feather``: half-width of the blend band (default
    ``overlap // 2``). Both are rounded up to ``size_multiple``. ``strategy``: tile edge choice
    (default :class:`AutoTiles` on the CPU); ``memory_factor``: bytes per window pixel for it.
    ``progress`` is called before every tile (and raises :class:`engine.errors.Cancelled` when
    the job is cancelled). ``oom_errors``: exception types meaning "tile too big" (default
    :func:`default_oom_errors`); ``on_oom`` runs after one (e.g. to empty a GPU cache);
    ``notify`` receives a one-line message each time the tile is halved. ``side``: an HxWxK array
    (a broadcast view is fine) whose channels are appended to each window's, read window by
    window: the same result as running on ``np.concatenate([image, side], axis=2)`` without that
    full-size copy.

    ``out``: with exact tiling only (``feather`` 0, ``scale`` 1), a float32 ``(H, W, C')`` array
    the result is written into, core by core, and returned: no accumulator, weights or other
    full-size array is allocated. It may be ``image`` itself (float32, C' = C): the run then
    writes its output over its input a row of tiles at a time, holding one strip of tiles'
    output and the input rows later tiles still read (:meth:`_Run.stream`), with the same values.
    ``channel``: write only this channel of the model's output into ``out`` (not in place).
    """
    if image.ndim != 3:
        raise ValueError(f"expected an HxWxC image, got shape {image.shape}")
    if scale < 1 or size_multiple < 1:
        raise ValueError("scale and size_multiple must be positive integers")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    m = int(size_multiple)
    overlap_px = _round_up(max(int(overlap), 0), m)
    feather_px = _round_up(max(int(overlap // 2 if feather is None else feather), 0), m)
    strategy = strategy or AutoTiles()
    tile = strategy.tile_size(memory_factor=memory_factor, margin=overlap_px + feather_px)
    tile = max(_round_up(max(int(tile), 1), m), _round_up(minimum_size, m) if minimum_size else m)
    run = _Run(fn=fn, scale=int(scale), multiple=m, overlap=overlap_px, feather=feather_px, tile=tile,
               oom_errors=oom_errors if oom_errors is not None else default_oom_errors(),
               notify=notify, on_oom=on_oom, progress=progress or Progress())
    src = image if image.dtype == np.float32 else image.astype(np.float32)
    if side is not None and side.shape[:2] != (h, w):
        raise ValueError(f"side input of shape {side.shape} does not match the image's {image.shape}")
    source = _Source(src, padded_size(h, m, minimum_size), padded_size(w, m, minimum_size), side)
    if out is None:
        if channel is not None:
            raise ValueError("channel needs an output array (out)")
        return run.accumulate(source, h, w, top_level=True)
    if feather_px != 0 or scale != 1:
        raise ValueError("writing into an output array needs exact tiling: feather 0 and scale 1")
    if out.dtype != np.float32 or out.shape[:2] != (h, w) or not out.flags.writeable:
        raise ValueError(f"out must be a writeable float32 {h}x{w}xC array, got {out.dtype} {out.shape}")
    in_place = np.may_share_memory(out, src)
    if in_place and (channel is not None or out.shape != src.shape or out.strides != src.strides
                     or out.ctypes.data != src.ctypes.data):
        raise ValueError("out may be the image itself (not a per-channel run), or an array of its own")
    run.stream(source, out, channel, in_place)
    return out
