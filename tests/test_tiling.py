"""Tiled inference equals whole-image inference for translation-equivariant conv nets."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")
spandrel = pytest.importorskip("spandrel")

from engine.errors import Cancelled  # noqa: E402
from engine.progress import CancelToken, Progress  # noqa: E402
from engine.runtime.tiling import (  # noqa: E402
    AutoTiles, FixedTiles, OutOfMemoryError, WholeImage, auto_tile_size, feather_weights, padded_size,
    reflect_indices, run_tiled, split_axis,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compact_descriptor(scale: int, seed: int = 0, num_feat: int = 8, num_conv: int = 2):
    """A random-weight SRVGG (Real-ESRGAN Compact) loaded through spandrel's registry."""
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    net = Compact(num_feat=num_feat, num_conv=num_conv, upscale=scale)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    return ModelLoader().load_from_state_dict(net.state_dict()).eval()


def esrgan_descriptor(scale: int, seed: int = 0):
    """A random-weight one-block RRDBNet (ESRGAN) loaded through spandrel's registry."""
    from spandrel import ModelLoader
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    shuffle = {1: 4, 2: 2, 4: None}[scale]
    net = ESRGAN(in_nc=3 * (shuffle or 1) ** 2, out_nc=3, num_filters=8, num_blocks=1,
                 scale=4 if shuffle else scale, shuffle_factor=shuffle)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.3)
    return ModelLoader().load_from_state_dict(net.state_dict()).eval()


def raw_fn(descriptor):
    """The bare network (no clamping), so that differences are not hidden by saturation."""
    def fn(tile: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return descriptor.model(torch.from_numpy(tile)).numpy()
    return fn


def whole(fn, image: np.ndarray, scale: int, multiple: int) -> np.ndarray:
    """Reference: reflect-pad to the size multiple, one pass, crop."""
    h, w = image.shape[:2]
    ph, pw = padded_size(h, multiple), padded_size(w, multiple)
    padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="reflect")
    out = fn(np.ascontiguousarray(padded.transpose(2, 0, 1)[None]))
    return out[0].transpose(1, 2, 0)[: h * scale, : w * scale]


def image(h: int, w: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(37, 53), (1, 1), (3, 200), (64, 64)])
@pytest.mark.parametrize("tile", [8, 16, 40])
def test_compact_tiled_equals_whole(scale, size, tile):
    fn = raw_fn(compact_descriptor(scale))
    img = image(*size)
    ref = whole(fn, img, scale, 1)
    # receptive field of 4 stacked 3x3 convolutions: radius 4
    out = run_tiled(img, fn, scale=scale, overlap=4, strategy=FixedTiles(tile))
    assert out.shape == (size[0] * scale, size[1] * scale, 3)
    assert np.abs(out - ref).max() < 1e-4


@pytest.mark.parametrize("scale,multiple,overlap", [(4, 1, 20), (2, 2, 40)])
@pytest.mark.parametrize("size", [(37, 53), (3, 90), (1, 1)])
def test_esrgan_tiled_equals_whole(scale, multiple, overlap, size):
    desc = esrgan_descriptor(scale)
    assert desc.scale == scale and desc.size_requirements.multiple_of in (1, 4)
    fn = raw_fn(desc)
    img = image(*size, seed=3)
    ref = whole(fn, img, scale, multiple)
    out = run_tiled(img, fn, scale=scale, size_multiple=multiple, overlap=overlap, strategy=FixedTiles(16))
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4


def test_esrgan_scale1_unshuffle_respects_size_multiple():
    """Real-ESRGAN at 1x works on 4x4 pixel-unshuffled input: grid lines must fall on multiples of 4."""
    desc = esrgan_descriptor(1)
    assert desc.scale == 1 and desc.size_requirements.multiple_of == 4
    fn = raw_fn(desc)
    img = image(150, 131, seed=5)
    ref = whole(fn, img, 1, 4)
    out = run_tiled(img, fn, scale=1, size_multiple=4, overlap=72, strategy=FixedTiles(36))
    assert np.abs(out - ref).max() < 1e-4


def test_too_little_overlap_differs():
    """The property test can fail: with no context the seams show."""
    fn = raw_fn(compact_descriptor(2))
    img = image(40, 40)
    out = run_tiled(img, fn, scale=2, overlap=0, strategy=FixedTiles(8))
    assert np.abs(out - whole(fn, img, 2, 1)).max() > 1e-3


def test_feather_ramps_sum_to_one():
    tiles = split_axis(100, 30, overlap=6, feather=4)
    total = np.zeros(200)
    for t in tiles:
        total[t.keep[0] * 2:t.keep[1] * 2] += feather_weights(t, 100, 4, 2)
        assert t.window[0] <= t.keep[0] <= t.core[0] < t.core[1] <= t.keep[1] <= t.window[1]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert [t.core for t in tiles] == [(0, 25), (25, 50), (50, 75), (75, 100)]


def test_split_axis_respects_multiple():
    for t in split_axis(96, 20, overlap=8, feather=8, multiple=8):
        assert all(v % 8 == 0 for v in t.core + t.keep + t.window)


def test_reflect_indices_match_numpy():
    for size in (1, 2, 3, 7):
        ref = np.pad(np.arange(size), (0, 20), mode="reflect")
        np.testing.assert_array_equal(np.arange(size)[reflect_indices(0, size + 20, size)], ref)


def test_progress_before_every_tile_and_cancel():
    fn = raw_fn(compact_descriptor(1))
    seen: list[float] = []
    out = run_tiled(image(40, 40), fn, overlap=4, strategy=FixedTiles(16),
                    progress=Progress(lambda f, m: seen.append(f)))
    assert out.shape == (40, 40, 3)
    assert len(seen) == 9 + 1 and seen == sorted(seen) and seen[-1] == 1.0

    token = CancelToken()
    calls = []

    def cancelling(f, m):
        calls.append(f)
        if len(calls) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        run_tiled(image(40, 40), fn, overlap=4, strategy=FixedTiles(16), progress=Progress(cancelling, token))
    assert len(calls) == 3


class FakeOrtAllocationError(RuntimeError):
    """Stands in for a backend's allocation failure type."""


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, FakeOrtAllocationError])
def test_oom_halves_tile_and_resumes(error):
    net = raw_fn(compact_descriptor(2))
    sizes = []

    def fn(tile):
        sizes.append(tile.shape[2:])
        if max(tile.shape[2:]) > 48:
            raise error("out of memory")
        return net(tile)

    img = image(150, 120)
    messages: list[str] = []
    freed = []
    out = run_tiled(img, fn, scale=2, overlap=4, strategy=FixedTiles(128), notify=messages.append,
                    oom_errors=(torch.cuda.OutOfMemoryError, FakeOrtAllocationError),
                    on_oom=lambda: freed.append(1))
    assert np.abs(out - whole(net, img, 2, 1)).max() < 1e-4
    assert messages and "retrying with 64-pixel tiles" in messages[0]
    assert len(messages) == len(freed) == 2  # 128 -> 64 -> 32
    # after the fallback no call is made with a window larger than the failing limit twice
    assert sum(max(s) > 48 for s in sizes) == len(messages)


def test_oom_at_minimum_tile_is_a_clear_error():
    def fn(tile):
        raise MemoryError()

    with pytest.raises(OutOfMemoryError, match="out of memory even with"):
        run_tiled(image(64, 64), fn, strategy=FixedTiles(64))


def test_other_errors_are_not_retried():
    def fn(tile):
        raise ValueError("bug")

    with pytest.raises(ValueError):
        run_tiled(image(64, 64), fn, strategy=FixedTiles(32))


def test_wrong_output_shape_is_reported():
    with pytest.raises(Exception, match="expected"):
        run_tiled(image(20, 20), lambda t: t, scale=2, strategy=WholeImage())


def test_auto_tile_size_from_memory():
    assert auto_tile_size(10**12, 64.0, 16) == 2048
    assert auto_tile_size(0, 64.0, 16) == 64
    mid = auto_tile_size(4 * 1024**2, 16.0, 16, memory_fraction=1.0)
    assert mid == 512 - 32
    assert AutoTiles().tile_size(memory_factor=1e9, margin=8) == 64


def test_large_image_memory_is_bounded_by_tile():
    """1500x1100 with 128-pixel tiles: numpy peak beyond the output stays far below what a
    whole-image pass would hold (here: 8-channel features of the full image)."""
    fn = raw_fn(compact_descriptor(1, num_feat=8, num_conv=1))
    h, w = 1500, 1100
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = run_tiled(img, fn, overlap=3, strategy=FixedTiles(128))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    output_bytes = out.nbytes
    window_bytes = (128 + 2 * (3 + 2)) ** 2 * 3 * 4
    whole_image_features = h * w * 8 * 4
    assert peak - output_bytes < 6 * window_bytes
    assert peak - output_bytes < whole_image_features / 20
    assert np.isfinite(out).all()
