"""The streaming tiler (``run_tiled(out=...)``): the same values as the accumulating run, into a
preallocated output or over its own input, with scratch bounded by a row of tiles."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from engine.runtime.tiling import FixedTiles, run_tiled


def window_dependent(tile: np.ndarray) -> np.ndarray:
    """Not translation-equivariant on purpose: every output pixel depends on the whole window
    (its mean and size), so any difference in what a tile reads shows; -0.0 where x == 0.25."""
    mean = np.float32(tile.mean())
    return (0.25 - tile) * np.float32(-1.0) + mean * np.float32(1e-3) * np.float32(tile.shape[2] + tile.shape[3])


def conv_like(tile: np.ndarray) -> np.ndarray:
    """A 5x5 box (receptive radius 2) with edge padding, two channels in → two out."""
    x = tile[0]
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")
    acc = np.zeros_like(x)
    for dy in range(5):
        for dx in range(5):
            acc += padded[:, dy:dy + x.shape[1], dx:dx + x.shape[2]]
    return (acc / np.float32(25.0))[None]


def photo(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).random((h, w, c), dtype=np.float32)
    img[0, 0, 0] = 0.25  # an output of -0.0 from window_dependent's first term
    return img


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (5, 200), (130, 90), (64, 64)])
@pytest.mark.parametrize("tile", [4, 16, 40])
@pytest.mark.parametrize("multiple,minimum", [(1, 0), (2, 0), (4, 48)])
def test_stream_and_in_place_equal_the_accumulating_run_bit_for_bit(size, tile, multiple, minimum):
    """Into a new array and over the input itself, for tiles smaller than the context (windows
    reaching back over several rows of tiles) and reflect padding up to a minimum size."""
    img = photo(*size)
    kw = dict(size_multiple=multiple, minimum_size=minimum, overlap=6, feather=0, strategy=FixedTiles(tile))
    for fn in (window_dependent, conv_like):
        expected = run_tiled(img, fn, **kw)
        into = np.full_like(img, np.nan)
        assert run_tiled(img, fn, out=into, **kw) is into
        assert into.tobytes() == expected.tobytes()
        own = img.copy()
        assert run_tiled(own, fn, out=own, **kw) is own
        assert own.tobytes() == expected.tobytes()


def test_per_channel_run_writes_only_its_channel():
    img = photo(40, 30)
    out = np.full_like(img, 7.0)
    run_tiled(img, conv_like, out=out, channel=1, overlap=4, feather=0, strategy=FixedTiles(16))
    whole = run_tiled(img, conv_like, overlap=4, feather=0, strategy=FixedTiles(16))
    assert out[..., 1].tobytes() == whole[..., 1].tobytes()
    assert (out[..., [0, 2]] == 7.0).all()


def test_out_needs_exact_tiling_and_a_matching_array():
    img = photo(20, 20)
    with pytest.raises(ValueError):
        run_tiled(img, conv_like, out=np.empty_like(img), overlap=4, feather=2)
    with pytest.raises(ValueError):
        run_tiled(img, conv_like, out=np.empty((20, 21, 3), np.float32), overlap=4, feather=0)
    with pytest.raises(ValueError):
        run_tiled(img, conv_like, out=img, channel=0, overlap=4, feather=0)
    with pytest.raises(ValueError):
        run_tiled(img, conv_like, out=img[:, :10], overlap=4, feather=0)


def test_in_place_scratch_is_a_row_of_tiles_not_an_image():
    """Over its input, a 2400x900 run with 96-px tiles allocates (numpy, traced) about one strip
    of output and the windows, far less than the 26 MB photo; the accumulating run allocates the
    whole output and more."""
    h, w, tile, overlap = 2400, 900, 96, 6
    img = photo(h, w)
    kw = dict(overlap=overlap, feather=0, strategy=FixedTiles(tile))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run_tiled(img, conv_like, out=img, **kw)
        in_place = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = run_tiled(img, conv_like, **kw)
        accumulating = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    strip = tile * w * 3 * 4
    window = (tile + 2 * overlap) ** 2 * 3 * 4
    assert in_place < strip + 2 * overlap * w * 3 * 4 + 40 * window
    assert in_place < img.nbytes / 6
    assert accumulating >= out.nbytes
