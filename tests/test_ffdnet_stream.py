"""FFDNet streamed over its output (issue 14): ``run`` and ``run_in_place`` give the very values
of the whole-array chroma pass and of each other, for every kind of noise level."""

from __future__ import annotations

import numpy as np
import pytest
from testdata import REPO

ONNX = REPO / "models" / "ffdnet-color.onnx"

pytestmark = pytest.mark.skipif(not ONNX.is_file(), reason="the bundled FFDNet is not present")


def _expert(**kw):
    from engine.experts.published import FFDNetExpert

    return FFDNetExpert(ONNX, model_id="ffdnet-color", threads=1, **kw)


def _ctx(**kw):
    from engine.experts.base import ExpertContext

    return ExpertContext(**kw)


def _photo(h: int, w: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    clean = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 7.0)], axis=2)
    return np.clip(clean + rng.normal(0, 0.06, (h, w, 3)), 0, 1).astype(np.float32)


SIGMAS = {
    "uniform": lambda h, w: np.float32(0.06),
    "per channel, close": lambda h, w: np.array([0.05, 0.055, 0.06], np.float32),
    "per channel, apart": lambda h, w: np.array([0.03, 0.06, 0.09], np.float32),
    "map": lambda h, w: np.random.default_rng(4).uniform(0.03, 0.08, (h, w, 1)).astype(np.float32),
}


@pytest.mark.parametrize("kind", sorted(SIGMAS))
@pytest.mark.parametrize("size", [(96, 130), (97, 130), (70, 61)])
def test_streamed_run_and_run_in_place_equal_the_whole_array_chroma_pass(kind, size, monkeypatch):
    """Small tiles (several rows of them) and 3-row chroma bands: every band and tile seam shows
    if the streamed pass differs from the whole-array one (``_with_chroma_pass``) in any bit."""
    import engine.experts.published as published

    monkeypatch.setattr(published, "CHROMA_BAND_ROWS", 3)
    expert = _expert()
    img = _photo(*size)
    sigma = SIGMAS[kind](*size)
    ctx = _ctx(noise_sigma=sigma, tile=32)
    from engine.experts.published import noise_sigma_map

    reference = (expert._with_chroma_pass(img, noise_sigma_map(img, ctx), ctx) if kind != "per channel, apart"
                 else expert._denoise(img, noise_sigma_map(img, ctx), ctx, ctx.progress))
    before = img.copy()
    out = expert.run(img, _ctx(noise_sigma=sigma, tile=32))
    assert img.tobytes() == before.tobytes()  # run leaves its input alone
    assert out.dtype == np.float32
    assert out.tobytes() == reference.astype(np.float32).tobytes()
    own = img.copy()
    assert expert.run_in_place(own, _ctx(noise_sigma=sigma, tile=32)) is own
    assert own.tobytes() == out.tobytes()
    whole = expert.run(img, _ctx(noise_sigma=sigma, tile=512))  # one tile, one band per 32 rows
    assert whole.tobytes() == out.tobytes()


def test_run_in_place_without_chroma_pass_and_below_the_noise_floor():
    img = _photo(64, 80)
    plain = _expert(chroma_pass=False)
    own = img.copy()
    plain.run_in_place(own, _ctx(noise_sigma=np.float32(0.05), tile=32))
    assert own.tobytes() == plain.run(img, _ctx(noise_sigma=np.float32(0.05), tile=48)).tobytes()
    own = img.copy()
    _expert().run_in_place(own, _ctx(noise_sigma=np.float32(0.0)))
    assert own.tobytes() == np.clip(img, 0, 1).tobytes()
