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


@pytest.mark.parametrize("kind", ["uniform", "per channel, close", "map"])
@pytest.mark.parametrize("band", [1, 3, 32])
def test_run_in_place_with_its_input_on_disk_equals_run(kind, band, monkeypatch, tmp_path):
    """With its input on disk (``ctx.input_on_disk``) and a releasable array, ``run_in_place`` gives
    the photo's rows back for the half-resolution run, keeps that run's result in a file and makes
    the chroma change from it band by band: the very bits of ``run``, any band height, and the
    file is gone afterwards."""
    import engine.experts.published as published
    import engine.imageio.quantize as quantize
    from engine.imageio.quantize import is_releasable, releasable_empty
    from engine.pipeline.spill import ChangeStore

    monkeypatch.setattr(published, "CHROMA_BAND_ROWS", band)
    monkeypatch.setattr(quantize, "RELEASABLE_MIN_BYTES", 0)  # a mapping of its own even this small
    h, w = 150, 136  # rows of 1632 bytes: released pages span whole rows of several bands
    img = _photo(h, w)
    sigma = SIGMAS[kind](h, w)
    expert = _expert()
    reference = expert.run(img, _ctx(noise_sigma=sigma, tile=48))
    own = releasable_empty(img.shape, np.float32)
    assert is_releasable(own)
    own[...] = img
    store = ChangeStore(budget=0, folder=tmp_path)
    parked = store.park(own)
    called = []
    original = published.FFDNetExpert._chroma_pass_from_disk
    monkeypatch.setattr(published.FFDNetExpert, "_chroma_pass_from_disk",
                        lambda self, *a: called.append(1) or original(self, *a))
    assert expert.run_in_place(own, _ctx(noise_sigma=sigma, tile=48, input_on_disk=parked)) is own
    assert called
    assert own.tobytes() == reference.tobytes()
    assert [p.name for p in tmp_path.iterdir()] == [parked.path.name]  # the half-size result's file is gone
    store.close()
