"""Real noise, never worse: the session tells denoisers the analysed noise level, a stage that
sharpens noise is dropped, a clean photo comes out untouched and no real noisy photo gets worse."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

from engine.analysis.analyser import analyse
from engine.analysis.report import DegradationReport, KindAssessment
from engine.experts.base import Expert, ExpertContext, ExpertInfo, ExpertRegistry
from engine.kinds import KINDS
from engine.pipeline import RestorationSession, build_plan
from testdata import SHARED_DATA

needs_data = pytest.mark.skipif(not (SHARED_DATA / "pairs" / "noise_real_polyu_crops").is_dir(),
                                reason="../shared/data/pairs is not present")


class RecordingExpert(Expert):
    """Returns its input unchanged (or with added noise) and remembers the context it got."""

    def __init__(self, task: str, add_noise: float = 0.0) -> None:
        self.info = ExpertInfo(id=f"rec.{task}", name=task, tasks=(task,))
        self.add_noise = add_noise
        self.contexts: list[ExpertContext] = []

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        self.contexts.append(ctx)
        noise = np.random.default_rng(0).standard_normal(image.shape).astype(np.float32) * self.add_noise
        return np.clip(image + noise, 0, 1).astype(np.float32)


def _noisy_ramp(sigma_255: float = 10.0) -> np.ndarray:
    x = np.linspace(0.1, 0.9, 192, dtype=np.float32)
    clean = np.repeat(np.repeat(x[None, :, None], 160, axis=0), 3, axis=2)
    return np.clip(clean + np.random.default_rng(3).standard_normal(clean.shape).astype(np.float32) * sigma_255 / 255,
                   0, 1).astype(np.float32)


def test_the_session_tells_the_denoiser_the_analysed_noise_map():
    noisy = _noisy_ramp(10.0)
    expert = RecordingExpert("noise")
    registry = ExpertRegistry([expert])
    session = RestorationSession(noisy, registry, analyser=analyse)
    report = session.analyse()
    session.run(build_plan(report, registry, only=["noise"]))
    (ctx,) = expert.contexts
    told = report.kinds["noise"].measurements["sigma_told_255"]
    assert ctx.noise_sigma is not None and ctx.noise_sigma.shape == noisy.shape
    assert float(np.median(ctx.noise_sigma)) * 255 == pytest.approx(told, rel=0.25)
    assert 7.0 < told < 16.0  # white noise of σ = 10 levels


def test_a_stage_that_sharpens_noise_is_dropped_even_when_its_own_severity_falls():
    """The old verdict (own severity down, total down) is fooled by a 'deblurrer' that adds grain;
    the noise-level function is not."""
    image = _noisy_ramp(2.0)

    def fooled_analyser(img: np.ndarray) -> DegradationReport:
        real = analyse(img)
        blur = 0.6 if np.array_equal(img, image) else 0.1
        return DegradationReport({k: KindAssessment(blur if k == "blur" else 0.0, 1.0, real.kinds[k].measurements)
                                  for k in KINDS})

    sharpener = RecordingExpert("blur", add_noise=8 / 255)
    registry = ExpertRegistry([sharpener])
    session = RestorationSession(image, registry, analyser=fooled_analyser)
    (result,) = session.run(build_plan(session.analyse(), registry))
    assert result.dropped and "amplified the noise" in result.reason
    assert np.array_equal(session.compose({"blur": 1.0}), image)


@needs_data
def test_a_clean_photo_comes_out_untouched():
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer
    from training.metrics import psnr

    photo = load_photo(sorted((SHARED_DATA / "clean").glob("bsds500_val_*.jpg"))[0])
    restored, result = Restorer(build_registry()).restore_photo(photo)
    assert psnr(restored.pixels, photo.pixels) >= 45.0, result.stages


@needs_data
@pytest.mark.slow
def test_no_real_noisy_crop_gets_worse():
    """Three real DSLR noise crops (ISO 3200–6400, two of them read as dark scenes): the default
    plan's output is at least as close to the ground truth as the input."""
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer
    from training.metrics import psnr

    folder = SHARED_DATA / "pairs" / "noise_real_polyu_crops"
    restorer = Restorer(build_registry())
    for name in ("Canon5D2_5_160_3200_chair_11.JPG", "Canon80D_8_8_6400_comproom_12.JPG",
                 "NikonD800_5_125_6400_stair_3.JPG"):
        noisy = load_photo(folder / "lq" / name)
        gt = load_photo(folder / "gt" / name).pixels
        restored, result = restorer.restore_photo(noisy)
        out = np.round(restored.pixels * 255) / 255
        assert psnr(out, gt) >= psnr(noisy.pixels, gt) - 0.01, (name, result.stages)


@pytest.mark.skipif(not (SHARED_DATA / "pairs" / "noise_real_polyu_fullsize").is_dir(),
                    reason="../shared/data/pairs is not present")
@pytest.mark.slow
def test_a_real_high_iso_photo_with_exif_is_denoised_and_gains():
    """A real ISO 3200 DSLR photo (centre crop, EXIF kept): its noise is too fine to stand out from
    clean photos' grain, but the EXIF ISO confirmed by the pixels makes it present, the denoiser
    runs and is kept, and the output is closer to the ground truth (mean of many frames)."""
    import dataclasses

    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer
    from training.metrics import psnr

    folder = SHARED_DATA / "pairs" / "noise_real_polyu_fullsize"
    photo = load_photo(folder / "lq" / "Canon5D2_chair.JPG")
    assert photo.metadata is not None and photo.metadata.iso == 3200
    y, x = 640, 1136
    crop = (slice(y, y + 384), slice(x, x + 384))
    noisy = dataclasses.replace(photo, pixels=np.ascontiguousarray(photo.pixels[crop]))
    gt = load_photo(folder / "gt" / "Canon5D2_chair.JPG").pixels[crop]
    restored, result = Restorer(build_registry()).restore_photo(noisy)
    assert result.report.severity("noise") >= 0.15
    assert any(s["stage"] == "noise" and not s["dropped"] for s in result.stages), result.stages
    out = np.round(restored.pixels * 255) / 255
    assert psnr(out, gt) >= psnr(noisy.pixels, gt) + 0.5, result.stages
