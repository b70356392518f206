"""Blind deblurring with a learned prior: kernel estimation, then plug-and-play deconvolution.

The kernel (camera shake, defocus disc, lens Gaussian: one free-form estimate) comes from
:func:`engine.analysis.blur_kernel.estimate_kernel` with a confidence. The sharp photo is then
found by half-quadratic splitting (Zhang et al., IRCNN 2017 / DPIR 2021): alternate an exact
FFT solution of the data term ``||k ⊛ x − y||² + ρ ||x − z||²`` with a denoiser step
``z = D(x, σ_i)``, the denoiser (bundled FFDNet) told a σ schedule falling geometrically from
:data:`SIGMA_START_255` to the photo's own noise level, with ``ρ_i = λ σ_n² / σ_i²``. So the
photo's noise is removed in the same step that deblurs it, never amplified first.

Safety: with no blur found the photo comes back unchanged; with a kernel the estimator is unsure
of (confidence under :data:`DROP_CONFIDENCE`) too, and the expert says why (``ExpertContext.notes``);
so also when stages ran before (``ExpertContext.original``) and the photo as loaded does not show
the blur with a kernel of at least that confidence (a denoiser's smoothing reads as blur);
between that and :data:`FULL_CONFIDENCE` the schedule stops at a higher σ (gentler). An isotropic
kernel (a disc or Gaussian, :data:`ISOTROPIC_MAX_ANISOTROPY`) with nothing sharp in view is left
alone unless the user asked for blur removal: it may be the scene's own depth of field; so is a
kernel that some of the photo's detailed areas do not show (sharp areas: depth of field or a moving
subject; :func:`~engine.analysis.blur_kernel.estimate_kernel`). The result
is then checked for ringing (structure appearing where the blurry photo is flat) and noise
amplification (fine-scale σ up); a failing result is redone gentler, and dropped if it fails
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
import scipy.fft as sfft

from ..analysis.blur_kernel import (DOF_MIN_TILES, KernelEstimate, detailed_tile_origins, estimate_kernel,
                                    kernel_centroid, kernel_peak, psf2otf, tile_blur_scales, wrap_pad)
from ..analysis.measurements import haar_diagonal
from ..color import luminance
from ..progress import Progress
from .base import ASK_FOR, Expert, ExpertContext, ExpertInfo
from .classical.noise_level import channel_sigma, context_sigma

#: First σ of the denoiser schedule, 0..255 levels (DPIR's 49).
SIGMA_START_255 = 49.0
#: Half-quadratic splitting iterations (DPIR: 8). With the σ schedule's ends kept, 5 were better
#: than 8 on the real shaken pairs tried (blur_real_levin im1_kernel1, im1_kernel4, im2_kernel3, with
#: the estimated kernels: +5.00/+6.17/+4.20 dB aligned against +4.59/+5.40/+3.77) and cost 5/8 of
#: the denoiser calls, which are most of the stage's time.
ITERATIONS = 5
#: DPIR's λ: weight of the prior against the data term (its published value).
LAMBDA = 0.23
#: Least noise level the schedule ends at, 0..255 levels: camera photos are never noise-free and
#: the kernel estimate is never exact; a lower floor sharpens its errors into ringing. On two
#: real shaken photos, 2.55 with λ 0.23 gained 2 dB less than 5; 5 with λ 0.23 was within 0.3 dB
#: of the best of a 3 x 3 grid (final σ 2.55/5/10, λ 0.1/0.23/1), so DPIR's λ was kept.
SIGMA_FLOOR_255 = 5.0
#: Extra final σ (0..255) at zero confidence; the schedule ends at floor + (1 − c) · this.
GENTLE_EXTRA_255 = 10.0
#: Below this kernel confidence the photo is returned unchanged.
DROP_CONFIDENCE = 0.25
#: From this confidence up the full schedule runs.
FULL_CONFIDENCE = 0.6
#: Longest side (px) the kernel is estimated at; larger photos are estimated on a downscaled copy.
ESTIMATION_SIDE = 1024
#: Kernel size (px at the estimation scale): large enough for the shake of a hand-held shot.
KERNEL_SIZE = 31
#: When the estimate at the estimation scale finds no blur or is unsure, it is tried once more on a
#: copy downscaled 2x further, where the window covers twice the shake (62 px at that scale), if
#: that copy's shorter side keeps at least this many px. blurry_summerhouse (a ~40 px shake at
#: 972 px) shows the blur only weakly in a 31 px window (evidence 0.76), clearly at half size (0.92).
LARGER_WINDOW_MIN_SIDE = 256
#: Padding around the photo for the FFT deconvolution, in kernel widths (+ 8 px). The denoiser runs
#: on the padding too; one width measured as well as two (same three pairs, within ±0.4 dB, no worse).
PAD_KERNELS = 1.0
#: Ringing check: std of (output − input) on the blurry photo's flat areas, over the noise σ.
MAX_RINGING = 3.0
#: Noise check: output fine-scale σ over the input's.
MAX_NOISE_GAIN = 1.25
#: A kernel whose spread along its principal axis over the one across it (square root of the ratio
#: of its covariance's eigenvalues) is at most this is isotropic: a defocus disc or lens Gaussian,
#: the blur a scene's own depth of field also makes; camera shake is a trajectory with a direction.
#: Fitted on TRAINING photos (every 16th of ``shared/data/clean`` blurred in linear light, camera
#: noise, camera JPEG; ``benchmarks/blur_kernel_shape.py``): the estimated kernels of synthetic
#: discs and Gaussians read 1.02–1.24 (18 of 21 ≤ 1.17; 1.62 and 2.49 are failed estimates), of
#: synthetic shake 1.20, then 1.47–3.89; this is the geometric middle of the interval (1.24, 1.47)
#: that misclassifies the fewest training kernels (3 of 28). The feature (rather than the radial
#: profile fit or the point symmetry, which also separate the training kernels) was chosen with the
#: validation sets' readings already seen (Levin's real shake, the PolyU crops).
ISOTROPIC_MAX_ANISOTROPY = 1.35

#: An isotropic blur with nothing sharp in view is deblurred unasked only as missed focus
#: (:func:`missed_focus`): its RMS radius at least this (px at the scale it was estimated) ...
#: CHOSEN AFTER SEEING VALIDATION READINGS, not fitted on training photos: the real PolyU crops
#: flower_2 and circuit_8 (ground truth as soft as the photo; deblurred −4.7 / −4.9 dB) read 1.09 and
#: 1.44 px on the half-size copy, the synthetic evaluation table's defocus (disc radius 3 px) 2.1 and
#: Levin im2_kernel5 2.3. On the training photos of benchmarks/missed_focus.py (uniform synthetic
#: discs and Gaussians, which are faults) 2 of 12 confident isotropic kernels (1.24, 1.55 px) fall
#: under it and are left alone.
MISSED_FOCUS_MIN_RADIUS_PX = 1.7
#: ... and at most this share of the detailed tiles fitting a kernel half the size or less
#: (:func:`engine.analysis.blur_kernel.tile_blur_scales`). Fitted on TRAINING photos
#: (benchmarks/missed_focus.py): uniform synthetic blurs read 0–0.33 (12 kernels); this is above
#: their largest. (The real crop flower_12, a blur that varies over the frame, reads 0.66.)
MISSED_FOCUS_MAX_SHARPER_SHARE = 0.4

#: A kernel larger than this RMS radius (px at the scale it was estimated, where the estimation window
#: is :data:`KERNEL_SIZE` px) ...
#: FITTED ON TRAINING PHOTOS (benchmarks/blur_keep_fit.py, results in blur-keep-fit.md: the 124 blur
#: stages the plan kept on 463 training photos with realistic blur in linear light, 5 folds by photo):
#: held out, dropping every kept stage above a fitted radius raised the aligned mean gain +0.41 →
#: +0.64 dB (worst −10.23 → −5.82); of the 8 kept training stages above the radius fixed here (between
#: the training stages at 5.65 px, +1.00 dB, and 6.37 px, −5.82 dB), 7 lost 1.7–10.2 dB and one gained 1.4.
UNSURE_MAX_RADIUS_PX = 6.0
#: ... is left alone when the two halves of the photo agree on it less than this (their kernels'
#: correlation, ``KernelEstimate.checks["agreement"]``). CHOSEN AFTER SEEING VALIDATION READINGS: on
#: training photos the radius alone does as well (the 8 large training kernels read 0.46–0.86), but
#: the real shaken Levin pairs with large kernels that gain 6–7 dB (im1_kernel4 9.4 px, im1_kernel8
#: 6.6 px) read 0.89 and 0.95, so the agreement is required too.
UNSURE_MIN_AGREEMENT = 0.87
#: Both apply only to a kernel estimated at the photo's own scale (factor 1): the fit's crops (256 px)
#: and Levin (255 px) never reach a downscaled copy, so nothing measured says how a downscaled
#: estimate behaves near these bounds. The real shaken blurry_summerhouse (972 px, no ground truth;
#: the README shows it sharper) is estimated on a half-size copy at RMS radius 5.87 px there, agreement
#: 0.70: 0.13 px from a rule that was never fitted at that scale.


#: The deconvolution's origin in the kernel (where the output is placed against its input). The centre
#: of mass keeps a trajectory's photo where the blurry one sits, but a disc or Gaussian estimated with a
#: spurious spur off to one side has its centre of mass pulled towards the spur, and the deblurred photo
#: moves by a pixel or more against its input (a blend of the two at a strength under 1 doubles its
#: edges). So where the kernel's dense core (:func:`kernel_core`: the part of the kernel smoothed by
#: :data:`CORE_SMOOTH_PX` that reaches :data:`CORE_SHARE` of its peak, connected to the peak) is round
#: (anisotropy at most :data:`CORE_MAX_ANISOTROPY`), the origin is the peak of the kernel smoothed by
#: :data:`ORIGIN_SMOOTH_PX` (:func:`engine.analysis.blur_kernel.kernel_peak`); else the centre of mass.
#: (See also :data:`SECOND_LOBE_MAX_SHARE`.)
#: FITTED ON TRAINING PHOTOS (benchmarks/blur_register_fit.py, results in blur-register-fit.md): on the
#: kept blur stages of the blur-only training cases, origins at the smoothed peak of 1, 2 and 3 px were
#: compared with the centre of mass; 3 px registered discs and Gaussians best, and every peak lost on
#: shake, so the peak is used only for a round core; the anisotropy bound is the middle of the interval
#: (1.15–1.25) that gave the best mean PSNR change. px at the scale the kernel was estimated.
ORIGIN_SMOOTH_PX = 3.0
CORE_SMOOTH_PX = 1.0
CORE_SHARE = 0.3
CORE_MAX_ANISOTROPY = 1.2
#: ... and only where no other part of the smoothed kernel, outside its core, reaches this share of the
#: peak: a second dense lobe is a trajectory that paused twice, not a spur. ADDED AFTER THE FIRST PLAN RUN
#: ON TRAINING PHOTOS (blur-register-fit.md): with the round core alone, three shake kernels whose densest
#: pause is round (second lobes at 0.48 and 0.59 of the peak) and two discs (0.36, 0.43) moved away from
#: their input; the spurs of the discs and Gaussians that moved read at most 0.33.
SECOND_LOBE_MAX_SHARE = 0.35


#: How a person overrides the automatic plan's caution about a blur (the end of a stage's reason).
ASK_FOR_BLUR_REMOVAL = ASK_FOR + "blur removal (move the Blur slider, or --set blur=1) to deblur it anyway"


def kernel_anisotropy(kernel: np.ndarray) -> float:
    """Square root of the ratio of the largest to the smallest eigenvalue of the kernel's second
    moment matrix about its centre of mass (1 = isotropic, grows with a trajectory's direction)."""
    k = np.asarray(kernel, np.float64)
    ys, xs = np.mgrid[:k.shape[0], :k.shape[1]].astype(np.float64)
    s = max(float(k.sum()), 1e-12)
    cy, cx = float((ys * k).sum() / s), float((xs * k).sum() / s)
    dy, dx = ys - cy, xs - cx
    cov = np.array([[(dy * dy * k).sum(), (dy * dx * k).sum()], [(dy * dx * k).sum(), (dx * dx * k).sum()]]) / s
    lo, hi = np.linalg.eigvalsh(cov)
    return float(np.sqrt(max(hi, 1e-12) / max(lo, 1e-12)))


def _core_smoothed(kernel: np.ndarray, factor: float) -> np.ndarray:
    """``kernel`` smoothed by :data:`CORE_SMOOTH_PX` (× ``factor``): what its core and lobes are read on."""
    return cv2.GaussianBlur(np.asarray(kernel, np.float32), (0, 0), CORE_SMOOTH_PX * factor,
                            borderType=cv2.BORDER_CONSTANT)


def kernel_core(kernel: np.ndarray, factor: float = 1.0, smooth: Optional[np.ndarray] = None) -> np.ndarray:
    """The dense core of ``kernel`` (float32, sum 1; estimated at ``1/factor`` of the photo's scale and
    upscaled by ``factor``): its values where the kernel smoothed by :data:`CORE_SMOOTH_PX` (``smooth``,
    made here when not given) reaches :data:`CORE_SHARE` of its peak, in the 8-connected part that holds
    the peak; zero elsewhere."""
    k = np.asarray(kernel, np.float32)
    smooth = _core_smoothed(k, factor) if smooth is None else smooth
    dense = (smooth >= CORE_SHARE * float(smooth.max())).astype(np.uint8)
    _, labels = cv2.connectedComponents(dense, connectivity=8)
    peak = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return np.where(labels == labels[peak], k, 0.0).astype(np.float32)


def deconvolution_origin(kernel: np.ndarray, factor: float = 1.0) -> tuple[Optional[tuple[float, float]], str]:
    """Where in ``kernel`` (full scale; estimated at ``1/factor``) the deconvolution puts its origin (row,
    column in the kernel's pixels; ``None``: its centre of mass, :func:`hqs_deconvolve`'s default) and a
    few words saying which: the smoothed peak for a round core with no second dense lobe, else the centre
    of mass (see :data:`ORIGIN_SMOOTH_PX` and :data:`SECOND_LOBE_MAX_SHARE`)."""
    smooth = _core_smoothed(kernel, factor)
    dense = kernel_core(kernel, factor, smooth)
    core = kernel_anisotropy(dense)
    outside = smooth[dense <= 0]
    lobe = float(outside.max()) / float(smooth.max()) if outside.size else 0.0
    if lobe > SECOND_LOBE_MAX_SHARE:
        return None, f"its centre of mass (a second dense lobe at {lobe:.2f} of the peak: a trajectory)"
    if core <= CORE_MAX_ANISOTROPY:
        return kernel_peak(kernel, ORIGIN_SMOOTH_PX * factor), (
            f"the peak of its round core (anisotropy {core:.2f} ≤ {CORE_MAX_ANISOTROPY}): "
            "a spur does not move the photo")
    return None, f"its centre of mass (its core is elongated, anisotropy {core:.2f}: a trajectory)"


def fine_sigma(gray: np.ndarray) -> float:
    """Fine-scale noise σ of a luminance image (MAD of the diagonal Haar detail / 0.6745)."""
    return float(np.median(np.abs(haar_diagonal(gray))) / 0.6745)


def ringing_ratio(output: np.ndarray, blurry: np.ndarray, ksize: int, noise: float) -> float:
    """Structure the output has where the blurry photo is flat over a kernel-sized window (a
    sharp photo cannot have it there), as a std over ``max(noise, 1/255)``. Luminance in."""
    win = max(int(ksize) | 1, 3)
    mean = cv2.blur(blurry, (win, win))
    var = np.maximum(cv2.blur(blurry * blurry, (win, win)) - mean * mean, 0.0)
    base = max(noise, 1.0 / 255.0)
    flat = np.sqrt(var) < 1.5 * base
    border = win
    flat[:border], flat[-border:], flat[:, :border], flat[:, -border:] = False, False, False, False
    if flat.sum() < 200:
        return 0.0
    diff = output - blurry
    return float(diff[flat].std() / base)


def hqs_deconvolve(image: np.ndarray, kernel: np.ndarray, noise: float,
                   denoise: Callable[[np.ndarray, float], np.ndarray], *, final_sigma: float,
                   iterations: int = ITERATIONS, lam: float = LAMBDA,
                   sigma_start: float = SIGMA_START_255 / 255.0,
                   progress: Optional[Callable[[float], None]] = None,
                   origin: Optional[tuple[float, float]] = None) -> np.ndarray:
    """Plug-and-play HQS deconvolution of ``image`` (float32 H x W x 3 in [0, 1]) by ``kernel``.
    ``noise``: the photo's noise σ and ``final_sigma`` the last σ told the denoiser (both 0..1
    units); ``denoise(x, σ)`` removes noise of σ from an H' x W' x 3 array. Borders are
    wrap-padded so the FFT's periodic model holds. ``origin`` (row, column in the kernel's pixels,
    fractions allowed) is the kernel's point that stays in place; by default its centre of mass, so a
    trajectory that is not centred in its array does not move the photo (the expert chooses it with
    :func:`deconvolution_origin`). Returns float32, clipped to [0, 1]."""
    margin = int(max(kernel.shape) * PAD_KERNELS) + 8
    h, w = image.shape[:2]
    padded = np.stack([wrap_pad(image[..., c], margin) for c in range(3)], axis=2)
    shape = padded.shape[:2]
    fk = psf2otf(kernel, shape, origin=kernel_centroid(kernel) if origin is None else origin)
    fk2 = (np.abs(fk) ** 2)[..., None]
    fky = np.conj(fk)[..., None] * sfft.rfft2(padded, axes=(0, 1))
    final_sigma = max(float(final_sigma), 1e-3)
    sigmas = np.geomspace(max(sigma_start, final_sigma), final_sigma, iterations)
    data_sigma = max(float(noise), final_sigma)
    z = padded
    for i, s in enumerate(sigmas):
        rho = lam * data_sigma ** 2 / s ** 2
        x = sfft.irfft2((fky + rho * sfft.rfft2(z, axes=(0, 1))) / (fk2 + rho), s=shape, axes=(0, 1))
        z = denoise(np.clip(x, 0.0, 1.0).astype(np.float32), float(s))
        if progress is not None:
            progress((i + 1) / len(sigmas))
    return np.clip(z[margin:margin + h, margin:margin + w], 0.0, 1.0).astype(np.float32, copy=False)


def upscale_kernel(kernel: np.ndarray, factor: float) -> np.ndarray:
    """``kernel`` estimated on a copy downscaled by ``1/factor``, at full scale (odd, sum 1)."""
    if factor <= 1.0 + 1e-6 or kernel.shape[0] == 1:
        return kernel
    size = int(round(kernel.shape[0] * factor)) | 1
    out = np.maximum(cv2.resize(kernel, (size, size), interpolation=cv2.INTER_CUBIC), 0.0)
    return (out / max(float(out.sum()), 1e-12)).astype(np.float32)


def stages_ran_before(image: np.ndarray, ctx: ExpertContext) -> bool:
    """Whether ``ctx`` carries the photo as loaded and it differs from ``image`` (stages ran before)."""
    original = ctx.original
    return original is not None and original.shape == image.shape and not np.array_equal(original, image)


@dataclass(frozen=True)
class LoadedBlur:
    """The kernel estimate of the photo as loaded (:func:`loaded_blur`): ``estimate`` at the scale
    it was made, ``factor`` (≥ 1) to full scale, ``noise`` the σ (0..1, full scale) it was judged at,
    and ``why``: why it does not confirm a blur, ``""`` when it does."""

    estimate: KernelEstimate
    factor: float
    noise: float
    why: str


def loaded_blur(ctx: ExpertContext, noise: float) -> LoadedBlur:
    """Whether the photo as loaded (``ctx.original``) confirms a blur.

    The stages before a deblurrer (deblocking, denoising) smooth fine detail, which the estimator
    cannot tell from blur: a soft, noisy photo reads as uniformly blurred once denoised, though as
    loaded it has sharp parts or no blur the spectrum shows. So the blur must be in the photo as
    loaded, with a kernel of at least :data:`DROP_CONFIDENCE`. It is judged at the photo's own noise
    level as loaded (``ctx.original_noise_sigma``; ``noise``, the stage input's σ in [0, 1], where
    none is given): the evidence thresholds were set at a photo's own σ, and the earlier stages'
    output is less noisy, so its σ lets the noisy photo's spectrum pass for blur (a real ISO 6400
    crop: σ 2.2 as loaded, 0.6 denoised; 4 of 15 detailed areas sharp at 2.2, 3 at 0.6).
    Estimated by :meth:`PnPDeblur.estimate`. Used by the plug-and-play deblurrer and by the
    Wiener fallback that runs when it fails (its ``why`` says why not, ``""`` when confirmed)."""
    told = channel_sigma(ctx.original_noise_sigma)
    sigma = noise if told is None else float(told.mean())
    first, factor = PnPDeblur.estimate(np.clip(ctx.original, 0.0, 1.0).astype(np.float32, copy=False),
                                       ctx.progress.sub(0.0, 0.15), sigma, depth_of_field=not ctx.requested)
    if first.kernel.shape[0] > 1 and first.confidence >= DROP_CONFIDENCE:
        return LoadedBlur(first, factor, sigma, "")
    why = first.reason or "the estimated kernel is a point"
    if first.kernel.shape[0] > 1:
        why = f"kernel confidence {first.confidence:.2f} — {why}"
    return LoadedBlur(first, factor, sigma, f"left unchanged: the photo as loaded does not confirm a blur ({why}); "
                                            "the earlier stages' smoothing would read as one")


def downscaled(gray: np.ndarray, factor: float) -> np.ndarray:
    """``gray`` (float32 H x W) at ``1/factor`` of its size (area-averaged), itself when ``factor`` ≤ 1."""
    if factor > 1.0:
        size = (max(int(round(gray.shape[1] / factor)), 1), max(int(round(gray.shape[0] / factor)), 1))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def estimation_gray(image: np.ndarray, factor: float) -> np.ndarray:
    """The luminance of ``image`` at the scale a kernel was estimated (``1/factor``)."""
    return downscaled(luminance(image).astype(np.float32), factor)


def missed_focus(image: np.ndarray, est: KernelEstimate, factor: float, noise: float) -> str:
    """Why an isotropic blur with nothing sharp in view is *not* taken for missed focus, or ``""``
    when it is: one blur over the whole frame (:func:`engine.analysis.blur_kernel.tile_blur_scales`:
    at most :data:`MISSED_FOCUS_MAX_SHARPER_SHARE` of the detailed tiles fit a kernel half the size
    or less) and larger than a camera's own rendering (RMS radius at least
    :data:`MISSED_FOCUS_MIN_RADIUS_PX` in the pixels of the copy it was estimated on: a kernel the
    estimate found only on the half-size copy, :meth:`PnPDeblur.estimate`, and small there, is a
    softness the full-size photo did not show as blur). ``image``: the photo the kernel ``est`` was estimated on
    (float32 HxWx3 in [0, 1]); ``factor``: the estimate's downscale; ``noise``: the σ (0..1) it was
    judged at."""
    if est.radius_px < MISSED_FOCUS_MIN_RADIUS_PX:
        at = "" if factor <= 1.0 + 1e-6 else f" on the copy downscaled {factor:.1f}x it was found on"
        return (f"RMS radius {est.radius_px:.2f} px{at} < {MISSED_FOCUS_MIN_RADIUS_PX}: no more than a lens and "
                "camera's own rendering softness")
    scales = tile_blur_scales(estimation_gray(image, factor), est.kernel, noise / factor)
    if scales.size == 0:
        return "no detailed area to tell whether the blur is the same over the whole frame"
    share = float(np.mean(scales <= 0.5))
    if share > MISSED_FOCUS_MAX_SHARPER_SHARE:
        return (f"{share:.0%} of the detailed areas are at most half as blurred: the blur varies over the frame, "
                "as depth of field makes it")
    return ""


class PnPDeblur(Expert):
    """Blind deblurring: kernel estimation with a confidence, then HQS deconvolution with
    ``denoiser`` (an expert of the ``noise`` task told σ through ``ExpertContext.noise_sigma``,
    e.g. bundled FFDNet) as the prior. Needs the whole photo (one kernel per photo)."""

    def __init__(self, denoiser: Expert) -> None:
        self.denoiser = denoiser
        model = denoiser.info.model_id or denoiser.info.id
        self.info = ExpertInfo(
            id=f"deblur.pnp.{denoiser.info.id}", name=f"Blind deblur (kernel estimate + {denoiser.info.name})",
            tasks=("blur",), backend=denoiser.info.backend, version="1",
            tile_overlap=64, memory_factor=160.0, model_id=denoiser.info.model_id,
            description=f"Estimates the blur kernel (camera shake, defocus, lens) with an L0 gradient prior, "
                        f"then deconvolves by half-quadratic splitting with {model} as the prior; "
                        f"gentler or off when the kernel estimate is unsure.")

    def is_available(self) -> bool:
        return self.denoiser.is_available()

    @staticmethod
    def estimate(image: np.ndarray, progress=None, noise: float = 1.0 / 255.0,
                 depth_of_field: bool = True) -> tuple[KernelEstimate, float]:
        """The kernel estimate at the scale it was made and the factor (≥ 1) to full scale: first
        with the longer side at most :data:`ESTIMATION_SIDE`, then, if that finds no blur or is
        unsure, on a copy half that size (a window twice as long), keeping the more confident; the
        half-size estimate counts only if its depth-of-field check could be made (enough detailed
        tiles), so a photo with a sharp subject is still recognised there. Those tiles depend on the
        copy alone, so where it has too few the half-size estimate is not made at all.
        ``depth_of_field`` false (blur removal was asked for): sharp areas do not veto a kernel
        (:func:`~engine.analysis.blur_kernel.estimate_kernel`), so neither is that check needed."""
        progress = progress or Progress()
        gray = luminance(image).astype(np.float32)
        factor = max(max(gray.shape) / ESTIMATION_SIDE, 1.0)
        larger = min(gray.shape) / (2.0 * factor) >= LARGER_WINDOW_MIN_SIDE
        first = PnPDeblur._estimate_at(downscaled(gray, factor), factor, progress.sub(0.0, 0.7 if larger else 1.0),
                                       noise, depth_of_field)
        if not larger or (first.kernel.shape[0] > 1 and first.confidence >= DROP_CONFIDENCE):
            progress(1.0)
            return first, factor
        half = downscaled(gray, 2.0 * factor)
        if depth_of_field and len(detailed_tile_origins(half)) < DOF_MIN_TILES:
            # the half-size estimate would not count whatever its kernel (its depth-of-field check
            # cannot be made): not made
            progress(1.0)
            return first, factor
        second = PnPDeblur._estimate_at(half, 2.0 * factor, progress.sub(0.7, 1.0), noise, depth_of_field)
        first_score = first.confidence if first.kernel.shape[0] > 1 else -1.0
        if (second.kernel.shape[0] > 1 and second.confidence >= DROP_CONFIDENCE and second.confidence > first_score
                and (not depth_of_field or second.checks.get("detailed_tiles", 0.0) >= DOF_MIN_TILES)):
            return second, 2.0 * factor
        if first.kernel.shape[0] == 1 and not first.sharp_areas and second.sharp_areas:
            return second, 2.0 * factor  # the longer window found a blur that sharp areas veto: say that
        return first, factor

    @staticmethod
    def _estimate_at(small: np.ndarray, factor: float, progress, noise: float,
                     depth_of_field: bool = True) -> KernelEstimate:
        """The kernel of ``small``, the luminance downscaled by ``factor``, told the full-scale σ ``noise``."""
        return estimate_kernel(small, KERNEL_SIZE, progress, noise_sigma=noise / factor,
                               depth_of_field=depth_of_field)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        image = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        noise = float(np.mean(context_sigma(image, ctx)))
        confirm = stages_ran_before(image, ctx)
        loaded = None
        if confirm:
            loaded = loaded_blur(ctx, noise)
            if loaded.why:
                ctx.note(loaded.why)
                ctx.progress(1.0)
                return image
        est, factor = self.estimate(image, ctx.progress.sub(0.15 if confirm else 0.0, 0.4), noise,
                                    depth_of_field=not ctx.requested)
        kernel = upscale_kernel(est.kernel, factor)
        if kernel.shape[0] == 1 and est.sharp_areas:
            ctx.note(f"left unchanged: {est.reason}; {ASK_FOR_BLUR_REMOVAL}")
            ctx.progress(1.0)
            return image
        if kernel.shape[0] == 1:
            ctx.note(f"no blur found: {est.reason or 'the estimated kernel is a point'}")
            ctx.progress(1.0)
            return image
        if est.confidence < DROP_CONFIDENCE:
            ctx.note(f"left unchanged: kernel confidence {est.confidence:.2f} — {est.reason}")
            ctx.progress(1.0)
            return image
        agreement = est.checks.get("agreement", 1.0)
        if factor <= 1.0 + 1e-6 and est.radius_px > UNSURE_MAX_RADIUS_PX and agreement < UNSURE_MIN_AGREEMENT:
            ctx.note(f"left unchanged: a large kernel (RMS radius {est.radius_px:.1f} px > {UNSURE_MAX_RADIUS_PX}) "
                     f"the two halves of the photo disagree about (correlation {agreement:.2f} < "
                     f"{UNSURE_MIN_AGREEMENT}): deconvolving by a wrong large kernel costs far more than it gains")
            ctx.progress(1.0)
            return image
        aniso = kernel_anisotropy(est.kernel)
        not_missed = ""
        if aniso <= ISOTROPIC_MAX_ANISOTROPY and not ctx.requested:
            # judged on the photo as loaded where stages ran before (their smoothing widens the blur)
            not_missed = missed_focus(ctx.original, loaded.estimate, loaded.factor, loaded.noise) if loaded \
                else missed_focus(image, est, factor, noise)
        if not_missed:
            # Nothing in view is sharp (else the depth-of-field check found it): missed focus, or a
            # part of the scene its depth of field leaves soft on purpose. The costs are not alike
            # (on training photos deblurring such a blur gained +0.1 … +1.4 dB where it was a fault
            # and lost 4 … 17 dB where it was the scene's; benchmarks/blur_kernel_shape.py), so only
            # a blur that is missed focus by :func:`missed_focus` is deblurred unasked.
            ctx.note(f"left unchanged: the blur is isotropic (a defocus disc or lens softness, anisotropy "
                     f"{aniso:.2f} ≤ {ISOTROPIC_MAX_ANISOTROPY}) with nothing sharp in view, and not missed focus "
                     f"({not_missed}): it may be the scene's own depth of field; "
                     + ASK_FOR_BLUR_REMOVAL)
            ctx.progress(1.0)
            return image
        if factor > max(max(image.shape[:2]) / ESTIMATION_SIDE, 1.0) + 1e-6:
            ctx.note(f"kernel estimated on a copy downscaled {factor:.1f}x (a window of "
                     f"{KERNEL_SIZE * factor:.0f} px): the shake is longer than the first window")
        if aniso <= ISOTROPIC_MAX_ANISOTROPY:
            ctx.note(f"isotropic blur (anisotropy {aniso:.2f}) deblurred: "
                     + ("blur removal was asked for" if ctx.requested else
                        "missed focus (one blur over the whole frame, larger than a camera's own softness)"))
        ctx.note(f"kernel {kernel.shape[0]} px, RMS radius {est.radius_px * factor:.1f} px, "
                 f"confidence {est.confidence:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in est.checks.items())})")
        gentle = float(np.clip((FULL_CONFIDENCE - est.confidence) / (FULL_CONFIDENCE - DROP_CONFIDENCE), 0.0, 1.0))
        device = ctx.device

        run = getattr(self.denoiser, "run_plain", self.denoiser.run)  # one pass per iteration

        checks = Progress(cancel=ctx.progress.cancel)  # the denoiser's tiles check for cancellation, silently

        def denoise(x: np.ndarray, sigma: float) -> np.ndarray:
            return run(x, ExpertContext(noise_sigma=np.float32(sigma), device=device, tile=ctx.tile, progress=checks))

        origin, where = deconvolution_origin(kernel, factor)
        ctx.note(f"deconvolution origin: {where}")
        gray_in = luminance(image)
        noise_in = fine_sigma(gray_in)
        out = image
        for attempt in range(2):
            final = max(noise, SIGMA_FLOOR_255 / 255.0) + (gentle + attempt) * GENTLE_EXTRA_255 / 255.0
            lo, hi = 0.4 + 0.3 * attempt, 0.7 + 0.3 * attempt
            out = hqs_deconvolve(image, kernel, noise, denoise, final_sigma=final,
                                 progress=ctx.progress.sub(lo, hi), origin=origin)
            gray_out = luminance(out)
            ring = ringing_ratio(gray_out, gray_in, kernel.shape[0], max(noise, noise_in))
            ctx.note(f"ringing check: flat-area std {ring:.2f}× the noise")
            if ring <= MAX_RINGING:
                if gentle > 0 or attempt:
                    ctx.note(f"gentler deconvolution: kernel confidence {est.confidence:.2f}"
                             + (f" — {est.reason}" if est.reason else "")
                             + (f"; first result rang ({ring:.1f}) or amplified noise" if attempt else ""))
                ctx.progress(1.0)
                return out
        ctx.note(f"left unchanged: the deconvolution rang or amplified noise where the photo is flat "
                 f"(std {ring:.1f}× the noise) even when gentler")
        ctx.progress(1.0)
        return image


def pnp_deblurrers(neural: list[Expert]) -> list[Expert]:
    """The plug-and-play deblurrers the installed ``neural`` experts make possible: one on bundled
    FFDNet (colour, told a σ map). Empty without it."""
    from .jpeg_restore import FFDNET_MODEL_ID

    return [PnPDeblur(e) for e in neural if e.info.model_id == FFDNET_MODEL_ID and "noise" in e.info.tasks]
