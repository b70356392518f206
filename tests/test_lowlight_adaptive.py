"""Low light decided per photo (engine.experts.lowlight_adaptive): a dark scene exposed for its
lights stays dark, an under-exposed photo is brightened, a brightener that clips is passed over,
a colour cast is pulled toward grey, and the app's registry uses the adaptive expert first."""

from __future__ import annotations

import numpy as np
from testdata import scene

from engine.experts.base import Expert, ExpertContext, ExpertInfo
from engine.color import luminance
from engine.experts.classical.lowlight import LIMEEnhance
from engine.experts.lowlight_adaptive import (AdaptiveLowLight, brightening_share, colour_cast, correct_cast,
                                              robust_peak)
from engine.degrade.exposure import lowlight


def night_scene(size: int = 160) -> np.ndarray:
    """A dark street at night: a dim scene (mean luma ~0.06) with a few street lamps at white."""
    img = scene(1, size) * np.float32(0.12)
    for y, x in ((30, 40), (50, 120), (110, 80)):
        img[y - 3:y + 3, x - 3:x + 3] = 1.0
    return img.astype(np.float32)


class _Clipper(Expert):
    """A brightener that blows everything out (gain 20)."""

    info = ExpertInfo(id="test.clipper", name="clipper", tasks=("lowlight",))

    def run(self, image: np.ndarray, ctx: ExpertContext | None = None) -> np.ndarray:
        return np.clip(image * 20.0, 0.0, 1.0)


def test_a_night_scene_exposed_for_its_lights_stays_dark():
    img = night_scene()
    assert robust_peak(img) > 0.9 and brightening_share(robust_peak(img)) < 0.5
    out = AdaptiveLowLight([LIMEEnhance()]).run(img, ExpertContext(severity=1.0))
    mean_in, mean_out = float(luminance(img).mean()), float(luminance(out).mean())
    full = LIMEEnhance().run(img, ExpertContext(severity=1.0))
    assert mean_out < 0.15, mean_out  # still a night scene
    assert mean_out - mean_in < 0.5 * (float(luminance(full).mean()) - mean_in)


def test_an_under_exposed_photo_is_brightened():
    clean = scene(1, 160)
    dark = lowlight(clean, 0.06)
    assert robust_peak(dark) < 0.6 and brightening_share(robust_peak(dark)) == 1.0
    out = AdaptiveLowLight([LIMEEnhance()]).run(dark, ExpertContext(severity=1.0))
    assert float(luminance(out).mean()) > float(luminance(dark).mean()) + 0.15
    err_in, err_out = np.abs(dark - clean).mean(), np.abs(out - clean).mean()
    assert err_out < 0.6 * err_in


def test_a_brightener_that_clips_is_passed_over():
    dark = lowlight(scene(2, 128), 0.06)
    expert = AdaptiveLowLight([_Clipper(), LIMEEnhance()])
    out = expert.run(dark, ExpertContext(severity=1.0))
    assert expert.last_choice == LIMEEnhance.info.id
    assert float((luminance(out) >= 0.98).mean()) < 0.05


def test_colour_cast_is_pulled_toward_grey_and_a_neutral_photo_is_left_alone():
    neutral = scene(3, 128)
    tinted = np.clip(neutral * np.array([1.25, 1.0, 0.7], np.float32), 0, 1)
    cast_before = float(np.abs(colour_cast(tinted) - 1).max())
    fixed = correct_cast(tinted)
    assert float(np.abs(colour_cast(fixed) - 1).max()) < cast_before
    balanced = neutral * (colour_cast(neutral)[None, None, :])
    assert np.allclose(correct_cast(balanced), balanced)


def test_the_app_registry_brightens_with_the_adaptive_expert_first():
    from engine.experts.default import build_registry

    registry = build_registry()
    first = registry.for_task("lowlight")[0]
    assert first.info.id == "lowlight.adaptive"
    assert any(c.info.model_id == "iat-lol-v1" for c in first.candidates)
    assert first.denoiser is not None and first.denoiser.info.model_id == "ffdnet-color"


def test_haze_or_rain_read_only_after_brightening_adds_no_stage_but_noise_does():
    """The follow-up round adds a specialist for what a stage made visible (noise after
    brightening), never for haze or rain: they belong to the scene, and a brightened dark photo's
    lifted shadows read as haze."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.experts.base import ExpertRegistry
    from engine.experts.classical import classical_experts
    from engine.kinds import KINDS
    from engine.pipeline.plan import Plan, Planner, Stage

    after = DegradationReport({k: KindAssessment(severity={"haze": 0.8, "rain": 0.6, "noise": 0.5}.get(k, 0.0),
                                                 confidence=1.0, measurements={}) for k in KINDS})
    plan = Plan((Stage("lowlight", "classical.lowlight.lime", 1.0),))
    planner = Planner(ExpertRegistry(list(classical_experts())))
    assert planner.follow_up(plan, after).names() == ["lowlight", "noise"]


class _Weak(Expert):
    """A brightener that lifts exposure only 1.3x in linear light, as IAT-LOL does on some denoised photos."""

    info = ExpertInfo(id="test.weak", name="weak brightener", tasks=("lowlight",))

    def run(self, image: np.ndarray, ctx: ExpertContext | None = None) -> np.ndarray:
        from engine.degrade._common import linear_to_srgb, srgb_to_linear

        return linear_to_srgb(srgb_to_linear(image) * np.float32(1.3))


def test_a_brightener_that_brightens_too_little_gets_a_bounded_gain_towards_the_target_mean():
    from engine.experts.lowlight_adaptive import MAX_EXPOSURE_GAIN, TARGET_MEAN_LUMA

    clean = scene(4, 160)
    dark = lowlight(clean, 0.3)
    plain = AdaptiveLowLight([_Weak()]).run(dark, ExpertContext(severity=1.0))
    expert = AdaptiveLowLight([_Weak()], exposure_corrected=[_Weak.info.id])
    out = expert.run(dark, ExpertContext(severity=1.0))
    assert 1.0 < expert.last_gain <= MAX_EXPOSURE_GAIN
    assert abs(float(luminance(out).mean()) - TARGET_MEAN_LUMA) < 0.01
    assert np.abs(out - clean).mean() < 0.7 * np.abs(plain - clean).mean()


def test_the_gain_leaves_a_strong_brightening_and_a_dark_scene_alone_and_adds_no_clipping():
    from engine.experts.lowlight_adaptive import MAX_NEW_CLIPPED, exposure_corrected, new_clipped

    dark = lowlight(scene(5, 160), 0.06)
    lime = LIMEEnhance().run(dark, ExpertContext(severity=1.0))  # brightens far more than 1.8x
    assert exposure_corrected(dark, lime)[1] == 1.0
    expert = AdaptiveLowLight([_Weak()], exposure_corrected=[_Weak.info.id])
    night = night_scene()
    assert np.allclose(expert.run(night, ExpertContext(severity=1.0)), night, atol=1e-6)
    lit = lowlight(scene(6, 160), 0.3)
    lit[:, :40] = 0.8  # a quarter of the photo bright (a window): the gain the mean asks for would clip it
    weak = _Weak().run(lit)
    assert new_clipped(lit, weak) == 0.0
    out, gain = exposure_corrected(lit, weak)
    unbounded, _ = exposure_corrected(lit[:, 40:], weak[:, 40:])
    assert 1.0 <= gain and new_clipped(lit, out) <= MAX_NEW_CLIPPED
    assert float(luminance(out[:, 40:]).mean()) < float(luminance(unbounded).mean()) - 0.02


def test_iat_lol_on_a_strongly_under_exposed_photo_gets_no_gain():
    """LOL-like under-exposure (about 4 stops): IAT-LOL brightens it well beyond 1.8x, so the app's expert
    keeps IAT-LOL's own exposure (it was trained on such photos)."""
    import pytest

    from engine.experts.default import build_registry

    expert = build_registry().for_task("lowlight")[0]
    if not any(c.info.model_id == "iat-lol-v1" and c.is_available() for c in expert.candidates):
        pytest.skip("IAT-LOL is not bundled here")
    dark = lowlight(scene(7, 160), 0.06)
    expert.run(dark, ExpertContext(severity=1.0))
    assert expert.last_choice == "neural.iat-lol-v1" and expert.last_gain == 1.0
