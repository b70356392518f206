"""Performance work that must not change results: the batched kind-split of the conditioned
generalist, the tiler's side input (FFDNet's noise map read window by window), the session's
in-place stage arithmetic, and the memory budget logic. No timings are asserted here."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.tiling import FixedTiles, run_tiled


def _photo(h: int = 96, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 5)], 2) * 0.8 + rng.normal(0, 0.05, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def test_side_input_equals_a_stacked_copy():
    img = _photo()
    side = np.random.default_rng(1).random((96, 120, 1), dtype=np.float32)

    def fn(tile):  # any function of all four channels, with spatial context
        return (tile[:, :3] * tile[:, 3:4] + np.roll(tile[:, :3], 1, axis=3)).astype(np.float32)

    stacked = run_tiled(np.concatenate([img, side], axis=2), fn, strategy=FixedTiles(40), overlap=4)
    lazy = run_tiled(img, fn, strategy=FixedTiles(40), overlap=4, side=side)
    assert np.array_equal(stacked, lazy)
    uniform = np.broadcast_to(np.float32(0.25), (96, 120, 1))
    assert np.array_equal(run_tiled(img, fn, strategy=FixedTiles(40), overlap=4, side=uniform),
                          run_tiled(np.concatenate([img, np.full((96, 120, 1), 0.25, np.float32)], 2), fn,
                                    strategy=FixedTiles(40), overlap=4))
    with pytest.raises(ValueError, match="side input"):
        run_tiled(img, fn, side=side[:10])


def _generalist():
    from engine.experts.default import build_registry

    registry = build_registry()
    expert = next((e for e in registry.for_task("generalist") if getattr(e.info, "model_id", "") and
                   "restora-generalist" in (e.info.model_id or "")), None)
    if expert is None or not expert.is_available():
        pytest.skip("the bundled generalist is not installed here")
    return expert


def test_batched_kind_split_matches_one_run_per_kind():
    from engine.experts.base import ExpertContext

    expert = _generalist()
    img = _photo(80, 72)
    variants = [{"noise": 0.6}, {"blur": 0.4}, {"noise": 0.6, "blur": 0.4}]
    ctx = ExpertContext(tile=48)
    batched = expert.run_variants(img, ctx, variants)
    for v, out in zip(variants, batched):
        alone = expert.run(img, ExpertContext(tile=48, strengths=v))
        assert out.shape == alone.shape
        assert float(np.abs(out - alone).max()) < 1e-5


def test_ffdnet_uniform_noise_level_is_never_materialised():
    from engine.experts.base import ExpertContext
    from engine.experts.published import noise_sigma_map

    img = _photo()
    sigma = noise_sigma_map(img, ExpertContext(noise_sigma=np.array([0.02, 0.03, 0.025], np.float32), strength=0.5))
    assert sigma.shape == (96, 120, 3) and sigma.strides[:2] == (0, 0)  # a view, not 12 bytes a pixel
    assert np.allclose(sigma[5, 7], [0.01, 0.015, 0.0125])
    full = noise_sigma_map(img, ExpertContext(noise_sigma=np.full((96, 120, 1), 0.02, np.float32)))
    assert full.strides[:2] != (0, 0) and np.allclose(full, 0.02)
