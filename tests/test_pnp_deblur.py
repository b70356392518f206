"""Blind deblurring: kernel estimation (shake, defocus) with its confidence, plug-and-play HQS
deconvolution with the bundled FFDNet, the expert's safety rules and the notes it leaves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from testdata import REPO, SHARED_DATA, clean_photo

FFDNET = REPO / "models" / "ffdnet-color.onnx"
needs_ffdnet = pytest.mark.skipif(not FFDNET.is_file(), reason="bundled FFDNet is not present")
needs_data = pytest.mark.skipif(not (SHARED_DATA / "clean").is_dir(), reason="../shared/data is not present")


def _shake_kernel(size: int = 13) -> np.ndarray:
    """An L-shaped camera-shake trajectory with a bend, normalised, centred on its mass."""
    from engine.analysis.blur_kernel import center_kernel

    k = np.zeros((size, size), np.float32)
    c = size // 2
    k[c - 1, 2:size - 3] = 1.0
    k[c - 1:c + 4, size - 4] = 1.0
    k = cv2.GaussianBlur(k, (0, 0), 0.5)
    return center_kernel(k / k.sum())


def _blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    return cv2.filter2D(image, -1, flipped, borderType=cv2.BORDER_REFLECT)


def _psnr(a: np.ndarray, b: np.ndarray, border: int = 12) -> float:
    d = (a - b)[border:-border, border:-border]
    return float(10 * np.log10(1.0 / max(float((d ** 2).mean()), 1e-12)))


def _ffdnet():
    from engine.experts.published import FFDNetExpert

    return FFDNetExpert(FFDNET, model_id="ffdnet-color", threads=1)


def test_hqs_with_the_true_kernel_inverts_the_blur_of_a_printed_pattern():
    """The FFT data step and the σ schedule are right: with a plain Gaussian-smoothing prior the
    sharp pattern comes back far closer than the blurry one (a wrong OTF centre or a sign error
    in the data step would make it worse)."""
    from engine.experts.pnp_deblur import hqs_deconvolve

    rng = np.random.default_rng(0)
    sharp = np.repeat(cv2.resize(rng.uniform(0.1, 0.9, (12, 12)).astype(np.float32), (96, 96),
                                 interpolation=cv2.INTER_NEAREST)[..., None], 3, axis=2)
    kernel = _shake_kernel()
    blurry = _blur(sharp, kernel)

    def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 0.3 + 20 * sigma)

    out = hqs_deconvolve(blurry, kernel, 1 / 255, smooth, final_sigma=2 / 255)
    assert out.shape == sharp.shape and out.dtype == np.float32
    assert _psnr(out, sharp) > _psnr(blurry, sharp) + 4.0


@needs_data
def test_kernel_estimate_finds_a_shake_trajectory_and_trusts_it():
    from engine.analysis.blur_kernel import _kernel_agreement, estimate_kernel
    from engine.color import luminance

    sharp = clean_photo(3, 192)
    truth = _shake_kernel()
    est = estimate_kernel(luminance(_blur(sharp, truth)), ksize=19)
    assert est.kernel.shape == (19, 19)
    assert abs(float(est.kernel.sum()) - 1.0) < 1e-4 and float(est.kernel.min()) >= 0.0
    assert _kernel_agreement(est.kernel, truth) > 0.6
    assert est.radius_px > 1.5


@needs_data
def test_kernel_estimate_of_a_sharp_photo_is_a_point():
    from engine.analysis.blur_kernel import estimate_kernel
    from engine.color import luminance

    est = estimate_kernel(luminance(clean_photo(3, 192)), ksize=19)
    assert est.kernel.shape == (1, 1)


def test_kernel_confidence_is_low_on_pure_noise():
    """Noise has no edges to trust: the halves disagree, the expert would leave it alone."""
    from engine.analysis.blur_kernel import estimate_kernel
    from engine.experts.pnp_deblur import DROP_CONFIDENCE

    noise = np.random.default_rng(3).normal(0.5, 0.08, (192, 192)).astype(np.float32)
    est = estimate_kernel(cv2.GaussianBlur(noise, (0, 0), 1.5), ksize=19)
    assert est.kernel.shape == (1, 1) or est.confidence < DROP_CONFIDENCE


@needs_ffdnet
@needs_data
def test_expert_deblurs_a_shaken_photo_and_says_what_it_did():
    from engine.experts.base import ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur

    sharp = clean_photo(3, 192)
    blurry = _blur(sharp, _shake_kernel())
    expert = PnPDeblur(_ffdnet())
    assert expert.info.tasks == ("blur",)
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255))
    before = blurry.copy()
    out = expert.run(blurry, ctx)
    assert np.array_equal(blurry, before)  # input untouched
    assert out.shape == blurry.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert _psnr(out, sharp) > _psnr(blurry, sharp) + 1.0
    assert any("kernel" in n for n in ctx.notes)


@needs_ffdnet
@needs_data
def test_expert_leaves_a_sharp_photo_alone_and_says_why():
    from engine.experts.base import ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur

    sharp = clean_photo(3, 192)
    ctx = ExpertContext()
    out = PnPDeblur(_ffdnet()).run(sharp, ctx)
    assert np.array_equal(out, sharp)
    assert ctx.notes and "no blur" in ctx.notes[0]


@needs_ffdnet
def test_registry_offers_the_pnp_deblurrer_first_for_blur():
    from engine.experts.default import build_registry

    ids = [e.info.id for e in build_registry().for_task("blur")]
    assert ids[0].startswith("deblur.pnp.")
    assert "classical.deblur.wiener" in ids


def test_session_shows_an_experts_notes_as_the_stage_reason():
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.experts.base import Expert, ExpertContext, ExpertInfo, ExpertRegistry
    from engine.kinds import KINDS
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession

    class Cautious(Expert):
        info = ExpertInfo(id="test.cautious", name="cautious", tasks=("blur",))

        def run(self, image, ctx=None):
            ctx = ctx or ExpertContext()
            ctx.note("left unchanged: not sure")
            return image.copy()

    def analyser(image):
        return DegradationReport({k: KindAssessment(severity=0.5 if k == "blur" else 0.0, confidence=1.0)
                                  for k in KINDS})

    session = RestorationSession(np.full((32, 32, 3), 0.5, np.float32), ExpertRegistry([Cautious()]),
                                 analyser=analyser)
    session.analyse()
    session.run(Plan((Stage("blur", "test.cautious"),)))
    result = next(r for r in session.results if r.name == "blur")
    assert result.dropped and "left unchanged: not sure" in result.reason


@needs_ffdnet
@needs_data
def test_shallow_depth_of_field_is_not_deblurred():
    """A sharp subject (the left 130 px) before a shaken rest: the kernel is found, but part of the
    photo is sharp, so the expert leaves it as it is and says why and how to ask (camera shake would
    blur every detailed area). A sharp photo is left for another reason ("no blur found"), which
    this test must not be satisfied by."""
    from engine.analysis.blur_kernel import sharp_tiles
    from engine.color import luminance
    from engine.experts.base import ASK_FOR, ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur

    sharp = clean_photo(3, 320)
    photo = np.where((np.arange(320) < 130)[None, :, None], sharp, _blur(sharp, _shake_kernel())).astype(np.float32)
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255))
    out = PnPDeblur(_ffdnet()).run(photo, ctx)
    assert np.array_equal(out, photo)
    assert any("detailed areas are sharp" in n and ASK_FOR in n for n in ctx.notes), ctx.notes
    # the same check on a photo shaken all over finds no sharp area
    shaken = luminance(_blur(sharp, _shake_kernel()))
    assert sharp_tiles(shaken, _shake_kernel(), 1 / 255)[0] == 0


@needs_data
def test_sharpest_tile_tells_shake_from_a_sharp_subject():
    """Blur everywhere widens every tile's edges; a sharp part keeps the sharpest tile sharp."""
    from engine.analysis.measurements import sharpest_tile_width
    from engine.experts.classical.deconvolution import disk_psf

    sharp = clean_photo(5, 320)
    soft = cv2.filter2D(sharp, -1, disk_psf(5.0), borderType=cv2.BORDER_REFLECT)
    part = np.where((np.arange(320) < 110)[None, :, None], sharp, soft).astype(np.float32)
    everywhere = sharpest_tile_width(soft)["sharpest_tile_width_px"]
    partly = sharpest_tile_width(part)["sharpest_tile_width_px"]
    assert everywhere >= 4.0 > partly


def test_automatic_plan_deblurs_only_when_even_the_sharpest_tile_is_blurred():
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
    from engine.kinds import KINDS
    from engine.pipeline.plan import build_plan

    class Deblur(Expert):
        info = ExpertInfo(id="test.deblur", name="deblur", tasks=("blur",))

        def run(self, image, ctx=None):
            return image.copy()

    def report(width: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(
            severity=0.6 if k == "blur" else 0.0, confidence=1.0,
            measurements={"sharpest_tile_width_px": width} if k == "blur" else {}) for k in KINDS})

    registry = ExpertRegistry([Deblur()])
    assert build_plan(report(5.0), registry).names() == ["blur"]
    assert build_plan(report(3.2), registry).names() == []
    assert build_plan(report(float("nan")), registry).names() == ["blur"]  # nothing measured: no veto
    assert build_plan(report(3.2), registry, strengths={"blur": 1.0}).names() == ["blur"]  # asked for


def _offset_kernel() -> np.ndarray:
    """A horizontal shake that starts at the array's centre and runs 7 px right: its centre of
    mass sits 3 px right of the centre (a trajectory as a camera records it, not re-centred)."""
    k = np.zeros((15, 15), np.float32)
    k[7, 7:14] = 1.0
    k[6:8, 13] = 1.0
    return k / k.sum()


def _shift_between(a: np.ndarray, b: np.ndarray, max_freq: float = 0.08) -> tuple[float, float]:
    """Sub-pixel (dy, dx) by which ``b``'s content sits from ``a``'s: the slope of the cross
    spectrum's phase over the low frequencies (under ``max_freq`` cycles/px, where shifts up to
    5 px do not wrap the phase), weighted by its magnitude; luminance, Hann-windowed."""
    from engine.color import luminance

    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = (np.fft.fft2((luminance(x) - luminance(x).mean()) * win) for x in (a, b))
    cross = np.conj(fa) * fb
    fy, fx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
    use = (np.hypot(fy, fx) < max_freq) & (np.hypot(fy, fx) > 0)
    weight = np.sqrt(np.abs(cross[use]))
    design = -2 * np.pi * np.stack([fy[use], fx[use]], axis=1) * weight[:, None]
    (dy, dx), *_ = np.linalg.lstsq(design, np.angle(cross[use]) * weight, rcond=None)
    return float(dy), float(dx)


def test_deconvolution_keeps_the_photo_registered_with_the_blurry_input():
    """The output sits where the blurry photo sits (the blur moves a photo by its kernel's centre
    of mass), to a fraction of a pixel, whether the kernel is centred in its array or not: a
    shake trajectory that is not centred must not move the restored photo against its input
    (before, the array's centre pixel was the origin: 3.2 px off here uncentred, 0.42 px centred
    to whole pixels)."""
    from engine.analysis.blur_kernel import center_kernel
    from engine.experts.pnp_deblur import hqs_deconvolve
    from testdata import photo

    sharp = photo(4, 160)
    kernel = _offset_kernel()
    blurry = _blur(sharp, kernel)
    assert abs(_shift_between(sharp, blurry)[1]) > 2.5  # the blur did move the photo

    def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 0.3 + 20 * sigma)

    for k in (kernel, center_kernel(kernel)):
        out = hqs_deconvolve(blurry, k, 1 / 255, smooth, final_sigma=2 / 255)
        dy, dx = _shift_between(blurry, out)
        assert abs(dy) < 0.15 and abs(dx) < 0.15, (dy, dx)


@needs_data
def test_blind_estimate_is_centred_and_the_deblurred_photo_stays_registered():
    """Blind estimation on a photo shaken by an off-centre trajectory: the kernel comes back with
    its centre of mass at its centre, and the deblurred photo sits where the blurry input is."""
    from engine.analysis.blur_kernel import estimate_kernel, kernel_centroid
    from engine.color import luminance
    from engine.experts.pnp_deblur import hqs_deconvolve

    sharp = clean_photo(3, 192)
    blurry = _blur(sharp, _offset_kernel())
    est = estimate_kernel(luminance(blurry), ksize=19, check_agreement=False)
    assert est.kernel.shape == (19, 19)
    ey, ex = kernel_centroid(est.kernel)
    assert abs(ey - 9) <= 0.5 and abs(ex - 9) <= 0.5

    def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 0.3 + 20 * sigma)

    out = hqs_deconvolve(blurry, est.kernel, 1 / 255, smooth, final_sigma=2 / 255)
    dy, dx = _shift_between(blurry, out)
    assert abs(dy) < 0.3 and abs(dx) < 0.3, (dy, dx)


@needs_data
def test_kernel_estimate_and_deconvolution_are_deterministic():
    from engine.analysis.blur_kernel import estimate_kernel
    from engine.color import luminance
    from engine.experts.pnp_deblur import hqs_deconvolve

    blurry = _blur(clean_photo(3, 192), _shake_kernel())
    gray = luminance(blurry)
    a, b = estimate_kernel(gray.copy(), ksize=19), estimate_kernel(gray.copy(), ksize=19)
    assert np.array_equal(a.kernel, b.kernel) and a.confidence == b.confidence and a.checks == b.checks

    def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 0.3 + 20 * sigma)

    first = hqs_deconvolve(blurry, a.kernel, 1 / 255, smooth, final_sigma=2 / 255)
    assert np.array_equal(first, hqs_deconvolve(blurry, a.kernel, 1 / 255, smooth, final_sigma=2 / 255))


def test_an_unsure_estimate_is_retried_with_a_window_twice_as_long(monkeypatch):
    """No blur found in the first window: the estimate is tried again on a copy half the size (the
    31 px window then covers a 62 px shake) and kept when it is confident; a small photo is not
    retried, nor a half-size copy with too few detailed areas for its depth-of-field check (its
    estimate could not count), and an estimate that is confident the first time is not redone."""
    import engine.experts.pnp_deblur as pnp
    from engine.analysis.blur_kernel import KernelEstimate

    calls = []
    shake = np.zeros((31, 31), np.float32)
    shake[15, 5:26] = 1 / 21

    def fake(gray, ksize, progress=None, noise_sigma=1 / 255, depth_of_field=True):
        calls.append(gray.shape)
        if len(calls) == 1 and first_finds_blur[0]:
            return KernelEstimate(shake, 0.9, 6.0, 21.0)
        if len(calls) == 1:
            return KernelEstimate(np.ones((1, 1), np.float32), 1.0, 0.0, 1.0, {}, "weak evidence")
        return KernelEstimate(shake, 0.7, 6.0, 21.0, {"sharp_tiles": 0.0, "detailed_tiles": float(tiles[0])})

    tiles = [7]
    monkeypatch.setattr(pnp, "estimate_kernel", fake)
    monkeypatch.setattr(pnp, "detailed_tile_origins", lambda gray: [(0, 0)] * tiles[0])
    expert = pnp.PnPDeblur.__new__(pnp.PnPDeblur)
    first_finds_blur = [False]
    est, factor = expert.estimate(np.zeros((600, 800, 3), np.float32))
    assert calls == [(600, 800), (300, 400)] and factor == 2.0 and est.confidence == 0.7
    assert pnp.upscale_kernel(est.kernel, factor).shape[0] == 63

    calls.clear()
    tiles[0] = 2  # too few detailed areas at half size to tell a sharp subject: not trusted, so not made
    est, factor = expert.estimate(np.zeros((600, 800, 3), np.float32))
    assert calls == [(600, 800)] and factor == 1.0 and est.kernel.shape == (1, 1)
    calls.clear()  # blur removal asked for: no depth-of-field check, so the half-size estimate counts
    est, factor = expert.estimate(np.zeros((600, 800, 3), np.float32), depth_of_field=False)
    assert calls == [(600, 800), (300, 400)] and factor == 2.0 and est.confidence == 0.7

    calls.clear()
    est, factor = expert.estimate(np.zeros((400, 400, 3), np.float32))  # a half-size copy would be too small
    assert calls == [(400, 400)] and factor == 1.0 and est.kernel.shape == (1, 1)

    calls.clear()
    first_finds_blur[0] = True
    est, factor = expert.estimate(np.zeros((600, 800, 3), np.float32))
    assert calls == [(600, 800)] and factor == 1.0 and est.confidence == 0.9


@needs_ffdnet
@needs_data
def test_blur_made_by_the_stages_before_is_not_deblurred():
    """A denoiser's smoothing reads as blur: a photo with a sharp subject, smoothed as the
    deblocking/denoising stages before the deblur would, gives a confident kernel; told the photo
    as loaded (``ExpertContext.original``), which shows no such blur, the expert leaves it alone."""
    from engine.experts.base import ExpertContext
    from engine.experts.classical.deconvolution import disk_psf
    from engine.experts.pnp_deblur import DROP_CONFIDENCE, PnPDeblur

    sharp = clean_photo(5, 320)
    background = cv2.filter2D(sharp, -1, disk_psf(6.0), borderType=cv2.BORDER_REFLECT)
    photo = np.where((np.arange(320) < 150)[None, :, None], sharp, background).astype(np.float32)
    smoothed = cv2.GaussianBlur(photo, (0, 0), 1.0)
    expert = PnPDeblur(_ffdnet())
    est, _ = expert.estimate(smoothed, noise=1 / 255)
    assert est.kernel.shape[0] > 1 and est.confidence >= DROP_CONFIDENCE  # without the check it would deblur
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255), original=photo)
    out = expert.run(smoothed, ctx)
    assert np.array_equal(out, smoothed)
    assert any("photo as loaded does not confirm" in n for n in ctx.notes)


@needs_data
def test_the_wiener_fallback_checks_the_photo_as_loaded_too():
    """The Wiener deblurrer runs where the plug-and-play one fails; after earlier stages it makes the
    same check: a blur the photo as loaded does not show (their smoothing) is left alone, with a note.
    Without stages before, it deblurs as it always did."""
    from engine.experts.base import ExpertContext
    from engine.experts.classical.deblur import WienerDeblur
    from engine.experts.classical.deconvolution import disk_psf

    sharp = clean_photo(5, 320)
    background = cv2.filter2D(sharp, -1, disk_psf(6.0), borderType=cv2.BORDER_REFLECT)
    photo = np.where((np.arange(320) < 150)[None, :, None], sharp, background).astype(np.float32)
    smoothed = cv2.GaussianBlur(photo, (0, 0), 1.0)
    expert = WienerDeblur(tile=256)
    assert not np.array_equal(expert.run(smoothed, ExpertContext(noise_sigma=np.float32(1 / 255))), smoothed)
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255), original=photo)
    assert np.array_equal(expert.run(smoothed, ctx), smoothed)
    assert any("photo as loaded does not confirm" in n for n in ctx.notes)


def test_the_photo_as_loaded_is_checked_first(monkeypatch):
    """After earlier stages the photo as loaded is estimated first: where it shows no blur the
    stage's input is never estimated (the same unchanged output, one estimate instead of two);
    where it does, the stage's input is estimated as well and its kernel decides."""
    import engine.experts.pnp_deblur as pnp
    from engine.analysis.blur_kernel import KernelEstimate
    from engine.experts.base import ExpertContext

    loaded = np.full((64, 64, 3), 0.5, np.float32)
    smoothed = np.full((64, 64, 3), 0.4, np.float32)
    seen = []

    def fake(gray, ksize, progress=None, noise_sigma=1 / 255, depth_of_field=True):
        seen.append(round(float(gray.mean()), 2))
        return KernelEstimate(np.ones((1, 1), np.float32), 1.0, 0.0, 1.0, {}, "weak evidence")

    monkeypatch.setattr(pnp, "estimate_kernel", fake)
    expert = pnp.PnPDeblur.__new__(pnp.PnPDeblur)
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255), original=loaded)
    out = expert.run(smoothed, ctx)
    assert np.array_equal(out, smoothed) and seen == [0.5]
    assert any("photo as loaded does not confirm" in n for n in ctx.notes)

    seen.clear()
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255))  # no stage before: one estimate, of the input
    assert np.array_equal(expert.run(smoothed, ctx), smoothed) and seen == [0.4]


@needs_ffdnet
@needs_data
def test_blur_the_photo_as_loaded_shows_is_still_deblurred_after_earlier_stages():
    from engine.experts.base import ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur

    sharp = clean_photo(3, 192)
    rng = np.random.default_rng(0)
    shaken = np.clip(_blur(sharp, _shake_kernel()) + rng.normal(0, 1 / 255, sharp.shape), 0, 1).astype(np.float32)
    smoothed = cv2.GaussianBlur(shaken, (0, 0), 0.5)  # what a light denoising stage leaves
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255), original=shaken)
    out = PnPDeblur(_ffdnet()).run(smoothed, ctx)
    assert _psnr(out, sharp) > _psnr(smoothed, sharp) + 1.0
    assert not any("does not confirm" in n for n in ctx.notes)


def test_kernel_anisotropy_tells_a_defocus_disc_from_a_shake_trajectory():
    from engine.experts.classical.deconvolution import disk_psf
    from engine.experts.pnp_deblur import ISOTROPIC_MAX_ANISOTROPY, kernel_anisotropy

    assert kernel_anisotropy(disk_psf(4.0)) < 1.05
    assert kernel_anisotropy(_shake_kernel()) > ISOTROPIC_MAX_ANISOTROPY
    line = np.zeros((15, 15), np.float32)
    line[7, 2:13] = 1.0
    assert kernel_anisotropy(line / line.sum()) > 5.0


@needs_ffdnet
@needs_data
def test_missed_focus_over_the_whole_frame_is_deblurred_a_small_isotropic_blur_only_when_asked():
    """A disc blur of the same size over the whole photo is missed focus: deblurred unasked. An
    isotropic blur no larger than a camera's own rendering softness may be the scene's (or the
    lens'): left alone and said why; asked for (``ExpertContext.requested``), it is deblurred."""
    from engine.analysis.blur_kernel import KernelEstimate
    from engine.experts.base import ExpertContext
    from engine.experts.classical.deconvolution import disk_psf
    from engine.experts.pnp_deblur import PnPDeblur, missed_focus

    sharp = clean_photo(3, 192)
    rng = np.random.default_rng(0)
    soft = np.clip(_blur(sharp, disk_psf(3.0)) + rng.normal(0, 1 / 255, sharp.shape), 0, 1).astype(np.float32)
    expert = PnPDeblur(_ffdnet())
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255))
    out = expert.run(soft, ctx)
    assert _psnr(out, sharp) > _psnr(soft, sharp) + 1.0
    assert any("missed focus" in n for n in ctx.notes)
    assert missed_focus(soft, KernelEstimate(disk_psf(3.0), 1.0, 2.1, 7.0, {}), 1.0, 1 / 255) == ""
    assert "rendering softness" in missed_focus(soft, KernelEstimate(disk_psf(1.5), 1.0, 1.1, 3.0, {}), 1.0, 1 / 255)


@needs_data
def test_a_blur_that_varies_over_the_frame_is_not_missed_focus():
    """Depth of field blurs each part of a scene by its own amount; missed focus blurs the whole
    frame alike. ``tile_blur_scales`` reads about the estimated kernel's size on every detailed tile
    of a uniformly blurred photo, and much smaller ones where part of it is only a little blurred."""
    from engine.analysis.blur_kernel import tile_blur_scales
    from engine.experts.classical.deconvolution import disk_psf
    from engine.experts.pnp_deblur import MISSED_FOCUS_MAX_SHARPER_SHARE

    base = clean_photo(3, 256).mean(axis=2).astype(np.float32)
    kernel = disk_psf(4.0)
    uniform = _blur(base, kernel)
    scales = tile_blur_scales(uniform, kernel, 1 / 255)
    assert scales.size >= 12 and np.mean(scales <= 0.5) <= MISSED_FOCUS_MAX_SHARPER_SHARE
    assert 0.7 <= np.median(scales) <= 1.4
    varying = np.where((np.arange(256) < 160)[None, :], _blur(base, disk_psf(1.0)), uniform)
    assert np.mean(tile_blur_scales(varying, kernel, 1 / 255) <= 0.5) > MISSED_FOCUS_MAX_SHARPER_SHARE


@needs_ffdnet
@needs_data
def test_a_cancelled_deblur_stops_inside_its_denoiser_pass():
    """The window's Cancel and the CLI's Ctrl-C reach the denoiser's tiles within each HQS
    iteration, not only between iterations."""
    from engine.errors import Cancelled
    from engine.experts.base import ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur
    from engine.progress import CancelToken, Progress

    blurry = _blur(clean_photo(3, 192), _shake_kernel())
    denoiser = _ffdnet()
    token = CancelToken()
    told = []
    plain = denoiser.run_plain

    def cancelled_meanwhile(image, ctx=None):
        told.append(ctx.progress.cancel)
        token.cancel()  # Cancel pressed while the first denoiser pass runs
        return plain(image, ctx)

    denoiser.run_plain = cancelled_meanwhile
    with pytest.raises(Cancelled):
        PnPDeblur(denoiser).run(blurry, ExpertContext(noise_sigma=np.float32(1 / 255), progress=Progress(cancel=token)))
    assert told == [token]


def test_a_large_kernel_the_halves_disagree_about_is_left_alone(monkeypatch):
    """A kernel estimate wider than ``UNSURE_MAX_RADIUS_PX`` that the photo's two halves agree on
    less than ``UNSURE_MIN_AGREEMENT`` is not deconvolved (unchanged, with a note); the same kernel
    the halves agree on, or a smaller one they disagree on, is."""
    import engine.experts.pnp_deblur as pnp
    from engine.analysis.blur_kernel import KernelEstimate
    from engine.experts.base import ExpertContext

    line = np.zeros((31, 31), np.float32)
    line[15, 2:29] = 1.0 / 27  # a long horizontal shake: anisotropic, so the missed-focus rule stays out
    readings = {}

    def fake(gray, ksize, progress=None, noise_sigma=1 / 255, depth_of_field=True):
        return KernelEstimate(line, 1.0, readings["radius"], 27.0, {"agreement": readings["agreement"]}, "")

    class Identity:
        def run(self, x, ctx):
            return x

    monkeypatch.setattr(pnp, "estimate_kernel", fake)
    expert = pnp.PnPDeblur.__new__(pnp.PnPDeblur)
    expert.denoiser = Identity()
    photo = np.clip(np.random.default_rng(1).uniform(0.2, 0.8, (96, 96, 3)), 0, 1).astype(np.float32)
    photo = cv2.GaussianBlur(photo, (0, 0), 2.0)
    ran = {}
    for radius, agreement in ((pnp.UNSURE_MAX_RADIUS_PX + 2, pnp.UNSURE_MIN_AGREEMENT - 0.2),
                              (pnp.UNSURE_MAX_RADIUS_PX + 2, pnp.UNSURE_MIN_AGREEMENT + 0.05),
                              (pnp.UNSURE_MAX_RADIUS_PX - 1, pnp.UNSURE_MIN_AGREEMENT - 0.2)):
        readings.update(radius=radius, agreement=agreement)
        ctx = ExpertContext(noise_sigma=np.float32(1 / 255))
        out = expert.run(photo, ctx)
        ran[(radius, agreement)] = (not np.array_equal(out, photo), any("halves of the photo disagree about (" in n
                                                                         for n in ctx.notes))
    assert list(ran.values()) == [(False, True), (True, False), (True, False)]


def test_the_large_kernel_rule_is_not_applied_to_an_estimate_from_a_downscaled_copy(monkeypatch):
    """The rule was fitted on estimates made at the photo's own scale; a large kernel the halves
    disagree about, estimated on a copy downscaled 2x (a photo too large for the first window),
    is deconvolved as before."""
    import engine.experts.pnp_deblur as pnp
    from engine.analysis.blur_kernel import KernelEstimate
    from engine.experts.base import ExpertContext

    line = np.zeros((31, 31), np.float32)
    line[15, 2:29] = 1.0 / 27
    unsure = KernelEstimate(line, 1.0, pnp.UNSURE_MAX_RADIUS_PX + 2, 27.0,
                            {"agreement": pnp.UNSURE_MIN_AGREEMENT - 0.2}, "")

    class Identity:
        def run(self, x, ctx):
            return x

    expert = pnp.PnPDeblur.__new__(pnp.PnPDeblur)
    expert.denoiser = Identity()
    photo = np.clip(np.random.default_rng(1).uniform(0.2, 0.8, (96, 96, 3)), 0, 1).astype(np.float32)
    photo = cv2.GaussianBlur(photo, (0, 0), 2.0)
    outcome = {}
    for factor in (1.0, 2.0):
        def estimate(image, progress=None, noise=0.0, factor=factor, depth_of_field=True):
            return unsure, factor

        monkeypatch.setattr(pnp.PnPDeblur, "estimate", staticmethod(estimate))
        ctx = ExpertContext(noise_sigma=np.float32(1 / 255))
        out = expert.run(photo, ctx)
        left = any("halves of the photo disagree about (" in n for n in ctx.notes)
        outcome[factor] = (not np.array_equal(out, photo), left)
    assert outcome == {1.0: (False, True), 2.0: (True, False)}


def _disc_with_spur() -> np.ndarray:
    """A 31 px kernel estimate as the blind estimate returns some defocus discs (training case 176 of
    benchmarks/blur_register_fit.py): the disc (radius 3 px, centred) plus a faint spur, two px wide,
    running 4–14 px to its right at a fifth of the disc's density; it holds 13 % of the mass and pulls the
    centre of mass 1.2 px right of the disc's centre."""
    from engine.degrade.blur import disk_kernel

    disc = disk_kernel(3.0)
    h = disc.shape[0] // 2
    k = np.zeros((31, 31), np.float32)
    k[15 - h:16 + h, 15 - h:16 + h] = disc
    k[15:17, 19:30] = 0.2 * float(disc.max())
    return k / k.sum()


class _SmoothingDenoiser:
    """A stand-in prior for the deblurrer: Gaussian smoothing that grows with the σ it is told."""

    def run(self, x, ctx):
        return cv2.GaussianBlur(x, (0, 0), 0.3 + 20 * float(np.mean(ctx.noise_sigma)))


def _best_shift(out: np.ndarray, ref: np.ndarray, border: int = 12) -> tuple[float, float]:
    """The sub-pixel (dy, dx) by which ``out``'s content sits from ``ref``'s: the shift of ``ref`` (to
    1/8 px, ±4 px) that matches ``out`` best (least squared difference of the means over channels)."""
    a, b = out.mean(axis=2), ref.mean(axis=2)
    inner = (slice(border, -border), slice(border, -border))

    def err(dy: float, dx: float) -> float:
        moved = cv2.warpAffine(b, np.float32([[1, 0, dx], [0, 1, dy]]), b.shape[::-1], flags=cv2.INTER_LANCZOS4,
                               borderMode=cv2.BORDER_REFLECT_101)
        return float(np.mean((a[inner] - moved[inner]) ** 2))

    _, y0, x0 = min((err(dy, dx), dy, dx) for dy in range(-4, 5) for dx in range(-4, 5))
    _, y, x = min((err(y0 + dy, x0 + dx), y0 + dy, x0 + dx)
                  for dy in np.arange(-0.5, 0.51, 0.125) for dx in np.arange(-0.5, 0.51, 0.125))
    return float(y), float(x)


def _deblur_with(monkeypatch, image: np.ndarray, kernel: np.ndarray, centre_of_mass: bool) -> tuple[np.ndarray, list]:
    """The expert's output on ``image`` with its kernel estimate replaced by ``kernel`` (confident, the
    halves agreeing, blur removal asked for) and the smoothing prior; with ``centre_of_mass`` the
    deconvolution's origin is forced to the kernel's centre of mass (the deblurrer before)."""
    import engine.experts.pnp_deblur as pnp
    from engine.analysis.blur_kernel import KernelEstimate, kernel_shape_numbers
    from engine.experts.base import ExpertContext

    radius, length = kernel_shape_numbers(kernel)
    est = KernelEstimate(kernel, 1.0, radius, length, {"agreement": 1.0}, "")
    expert = pnp.PnPDeblur.__new__(pnp.PnPDeblur)
    expert.denoiser = _SmoothingDenoiser()
    ctx = ExpertContext(noise_sigma=np.float32(1 / 255), requested=True)
    with monkeypatch.context() as patch:
        def estimate(image, progress=None, noise=0.0, depth_of_field=True):
            return est, 1.0

        patch.setattr(pnp.PnPDeblur, "estimate", staticmethod(estimate))
        if centre_of_mass:
            patch.setattr(pnp, "deconvolution_origin", lambda kernel, factor=1.0: (None, "centre of mass"))
        return expert.run(image, ctx), ctx.notes


def test_a_spur_on_a_disc_estimate_does_not_move_the_deblurred_photo(monkeypatch):
    """A defocused photo (a centred disc: the blurry photo sits where the sharp one does) deblurred with
    an estimate that has a spur: with the estimate's centre of mass as the origin the output moves
    1.4 px away from the spur's side; with the shipped origin (the peak of the kernel's round core) it
    stays on the input to within 0.3 px (measured 0.25; the measure moves in 1/8 px steps)."""
    from engine.degrade.blur import disk_kernel
    from testdata import photo

    sharp = photo(4, 160)
    blurry = _blur(sharp, disk_kernel(3.0))
    kernel = _disc_with_spur()
    before, _ = _deblur_with(monkeypatch, blurry, kernel, centre_of_mass=True)
    assert abs(_best_shift(before, sharp)[1]) > 0.8  # the defect this guards against
    after, notes = _deblur_with(monkeypatch, blurry, kernel, centre_of_mass=False)
    dy, dx = _best_shift(after, sharp)
    assert abs(dy) <= 0.3 and abs(dx) <= 0.3, (dy, dx)
    assert any("deconvolution origin: the peak of its round core" in n for n in notes)


def test_the_deconvolution_origin_is_a_round_cores_peak_and_a_trajectorys_centre_of_mass():
    """A disc with a spur: the origin is the disc's centre (not the centre of mass the spur pulls 1.2 px
    away); a shake trajectory (an elongated core) keeps its centre of mass (None), so a shaken photo's
    output stays where the blurry photo sits (test_deconvolution_keeps_the_photo_registered_...)."""
    from engine.analysis.blur_kernel import kernel_centroid
    from engine.experts.pnp_deblur import deconvolution_origin

    spur = _disc_with_spur()
    assert kernel_centroid(spur)[1] - 15 > 1.0
    origin, _ = deconvolution_origin(spur)
    assert origin is not None and abs(origin[0] - 15) <= 0.25 and abs(origin[1] - 15) <= 0.25, origin
    for trajectory in (_shake_kernel(), _offset_kernel()):
        assert deconvolution_origin(trajectory)[0] is None


def test_half_strength_on_a_deblurred_edge_is_one_edge_not_two(monkeypatch):
    """The strength slider composes input + s × change (engine.pipeline.session). At 50 % on a
    defocused step edge deblurred with a spur-carrying estimate, the blend's steepest point sits on the
    blurry edge's centre (within 0.5 px; measured 0.1): the sharp edge lies on the soft one, not beside it
    (0.9 px beside it with the centre of mass as the origin: a second, sharper edge next to the soft one)."""
    from engine.degrade.blur import disk_kernel

    edge = np.full((96, 96, 3), 0.2, np.float32)
    edge[:, 48:] = 0.8
    blurry = _blur(edge, disk_kernel(3.0))
    kernel = _disc_with_spur()

    def steepest(image: np.ndarray) -> float:
        d = np.diff(image[20:-20, :, 1].mean(axis=0))
        i = int(np.argmax(d))
        lo, mid, hi = d[i - 1], d[i], d[i + 1]
        return i + 0.5 + 0.5 * (lo - hi) / (lo - 2 * mid + hi)

    d_in = np.diff(blurry[20:-20, :, 1].mean(axis=0))
    centre = float((np.arange(d_in.size) + 0.5) @ d_in / d_in.sum())  # 48 (between columns 47 and 48)
    offsets = {}
    for centre_of_mass in (True, False):
        out, _ = _deblur_with(monkeypatch, blurry, kernel, centre_of_mass)
        half = blurry + 0.5 * (out - blurry)
        offsets[centre_of_mass] = steepest(half) - centre
    assert abs(offsets[True]) > 0.8  # before: the sharp half of the blend sits beside the soft half
    assert abs(offsets[False]) <= 0.5, offsets


@needs_data
def test_sharp_areas_veto_a_kernel_unless_blur_removal_was_asked_for():
    """A photo sharp on its left and shaken elsewhere: automatically, its sharp areas say the blur may
    be the scene's (no kernel, and the note tells how to ask); asked for, they are counted but veto
    nothing."""
    from engine.analysis.blur_kernel import estimate_kernel
    from engine.color import luminance

    sharp = clean_photo(3, 320)
    photo = np.where((np.arange(320) < 130)[None, :, None], sharp, _blur(sharp, _shake_kernel())).astype(np.float32)
    gray = luminance(photo).astype(np.float32)
    vetoed = estimate_kernel(gray, 31, noise_sigma=1 / 255)
    assert vetoed.sharp_areas and vetoed.kernel.shape == (1, 1)
    asked = estimate_kernel(gray, 31, noise_sigma=1 / 255, depth_of_field=False)
    assert not asked.sharp_areas and asked.kernel.shape == (31, 31)
    assert asked.checks["sharp_tiles"] == vetoed.checks["sharp_tiles"] > 0


REAL_FOUNTAIN = SHARED_DATA / "real" / "blurry_fountain.png"


@needs_ffdnet
@pytest.mark.skipif(not REAL_FOUNTAIN.is_file(), reason="../shared/data/real is not present")
def test_a_real_shaken_photo_that_sharp_areas_hold_back_is_deblurred_when_asked():
    """`blurry_fountain` (real camera shake): the longer window finds its shake but 2 of 6 detailed
    areas read as sharp, so the automatic plan leaves it and says how to ask; asked for (the CLI's
    --set blur=1, the window's Blur box), it is deblurred: the 1-4 px band measured 4.0x the input's,
    the analysed blur 0.92 -> 0.37."""
    import cv2 as _cv2
    from PIL import Image

    from engine.analysis import analyse
    from engine.experts.base import ExpertContext
    from engine.experts.pnp_deblur import PnPDeblur

    photo = np.asarray(Image.open(REAL_FOUNTAIN).convert("RGB"), np.float32) / 255
    deblur = PnPDeblur(_ffdnet())
    auto = ExpertContext()
    assert np.array_equal(deblur.run(photo, auto), photo)
    assert any("sharp" in n and "ask for blur removal" in n for n in auto.notes), auto.notes
    asked = ExpertContext(requested=True)
    out = deblur.run(photo, asked)

    def band(x: np.ndarray) -> float:
        g = _cv2.cvtColor(x, _cv2.COLOR_RGB2GRAY)
        return float((_cv2.GaussianBlur(g, (0, 0), 1) - _cv2.GaussianBlur(g, (0, 0), 4)).std())

    assert band(out) > 2.0 * band(photo), asked.notes
    assert analyse(out).severity("blur") < analyse(photo).severity("blur") - 0.3
