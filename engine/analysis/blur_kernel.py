"""Blind blur-kernel estimation: camera-shake trajectories, defocus discs and lens Gaussians.

Coarse-to-fine alternating minimisation with an L0 gradient prior (Xu et al. CVPR 2013; Pan et
al. CVPR 2014 / TPAMI 2017): at each scale of an image pyramid the latent sharp image is
restored with the current kernel under an L0 prior on its gradients (half-quadratic splitting,
FFT steps), whose few surviving strong edges then determine the kernel by least squares in the
gradient domain (conjugate gradients restricted to the kernel's support, Tikhonov weight),
followed by clipping, removal of weak disconnected parts and normalisation. A free-form kernel
covers shake trajectories, discs and Gaussians alike.

The estimate comes with a confidence in [0, 1] built from checks that a wrong kernel fails:
how much of the kernel's mass forms one connected trajectory, whether two disjoint halves of the
photo give the same kernel, and whether the kernel explains the blurry photo better than no blur.

Arrays are float32 luminance in [0, 1]; kernels are float32, odd-sized, sum 1, non-negative,
in PSF orientation (blurry = sharp ⊛ kernel), centred on their centre of mass.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import scipy.fft as sfft

from ..progress import Progress

#: Initial weight of the L0 gradient prior (Pan et al.'s λ for natural images), divided by 1.1
#: per iteration down to :data:`MIN_LAMBDA` so that finer edges join in.
LAMBDA_GRAD = 4e-3
MIN_LAMBDA = 1e-4
#: Tikhonov weight of the kernel least-squares step (gradients in [0, 1] units).
KERNEL_WEIGHT = 2.0
#: Alternations of latent and kernel per pyramid scale.
ITERATIONS = 5
#: Alternations at the :data:`FINE_SCALES` finest scales of the two halves' estimates, which only
#: check the main one (agreement): the finest scales cost most, and the kernel comes in already
#: shaped by the coarser ones. The main estimate keeps :data:`ITERATIONS` there (with fewer, its
#: trajectory stays broken on some real shaken photos: im2_kernel8, 56 % connected with 3).
CHECK_FINE_ITERATIONS = 2
FINE_SCALES = 2
#: Conjugate-gradient steps of each kernel least-squares solve (warm-started from the last kernel).
CG_ITERATIONS = 20
CHECK_CG_ITERATIONS = 10
#: Growth of the L0 splitting weight per step (Xu et al.'s κ).
L0_KAPPA = 2.0
#: Kernel entries below this fraction of the peak are set to zero after each kernel step.
KERNEL_FLOOR = 0.05
#: Connected parts of the kernel holding less than this share of its mass are removed.
MIN_COMPONENT_MASS = 0.1
#: Longest side of the region the kernel is estimated on (pixels at the working scale).
MAX_REGION = 512
#: Second moment radius (px) below which the kernel counts as no blur at all.
NO_BLUR_RADIUS = 0.75
#: Least spectral evidence (mean log-likelihood gain per frequency, see :func:`spectral_evidence`,
#: judged at the photo's noise σ) for a blur. Measured with the kernel the blind estimation returns:
#: sharp clean photos −0.2 … +0.2 (it hallucinates a small kernel on them), real noisy DSLR crops
#: (noise_real_polyu_crops, told σ 5/255) +0.3 … +0.6, real shaken photos (blur_real_levin) +2.0 …
#: +2.5 at σ 1/255 and down to +1.0 told the analysed σ. Judged at a fixed σ 1/255 instead, the noisy
#: crops rose to +0.65 … +1.5 (their noise passes for detail a kernel explains), so the photo's σ is
#: used. Up to :data:`FULL_EVIDENCE` the confidence is lowered.
MIN_EVIDENCE = 0.8
FULL_EVIDENCE = 1.3


@dataclass(frozen=True)
class KernelEstimate:
    """``kernel``: float32 odd-sized, sum 1 (1x1 when the photo is sharp); ``confidence`` in
    [0, 1]; ``radius_px``: the kernel's RMS radius about its centre of mass (0 = sharp);
    ``length_px``: its extent along its principal axis (≈ the shake length); ``checks``: the
    numbers the confidence is made of (``connected``, ``agreement``, ``fit_gain``);
    ``reason``: one line saying why the confidence is low, empty when it is not; ``sharp_areas``:
    the photo was found partly sharp (depth of field, a moving subject), so no kernel is given."""

    kernel: np.ndarray
    confidence: float
    radius_px: float
    length_px: float
    checks: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    sharp_areas: bool = False


# ----------------------------------------------------------------------------- FFT helpers
#: Arrays with at least this many pixels per plane are transformed with :func:`fft_workers`
#: threads (pocketfft splits the independent 1-D transforms among them, so the result is the
#: same to the bit); smaller ones on one, where starting threads costs more than it saves.
PARALLEL_FFT_MIN_PIXELS = 128 * 128


def fft_workers() -> int:
    """Threads the kernel estimation's large FFTs use: the networks' intra-op thread count
    (:func:`engine.runtime.onnx_backend.default_threads`, ``$RESTORA_THREADS``)."""
    from ..runtime.onnx_backend import default_threads

    return default_threads()


def _rfft2(a: np.ndarray, workers: int = 1) -> np.ndarray:
    """``rfft2`` over the last two axes (a stack of planes in one call)."""
    big = a.shape[-2] * a.shape[-1] >= PARALLEL_FFT_MIN_PIXELS
    return sfft.rfft2(a, axes=(-2, -1), workers=workers if big else 1)


def _irfft2(a: np.ndarray, shape: tuple[int, int], workers: int = 1) -> np.ndarray:
    big = shape[0] * shape[1] >= PARALLEL_FFT_MIN_PIXELS
    return sfft.irfft2(a, s=shape, workers=workers if big else 1)


def _placed(kernel: np.ndarray, shape: tuple[int, int], iy: int, ix: int) -> np.ndarray:
    """``kernel`` in a zero ``shape`` array with its pixel (iy, ix) at the origin, wrapped
    around: what rolling a top-left placed kernel by (−iy, −ix) gives, without the full-size roll."""
    pad = np.zeros(shape, np.float32)
    kh, kw = kernel.shape
    pad[np.ix_((np.arange(kh) - iy) % shape[0], (np.arange(kw) - ix) % shape[1])] = kernel
    return pad


# A kernel placed in a large periodic array fills a few of its rows, and the kernel step needs only
# a kernel-sized window of an inverse transform: pocketfft's 2-D real transforms are a 1-D real
# transform along the last axis and a complex one along the first (forward: rows then columns;
# inverse: columns, then rows, then one scale factor 1/(H·W) rounded to the array's precision).
# Doing only the rows that are not zero, or only the rows wanted, gives the same values to the bit
# (tested against the full transforms), at a fraction of the cost.
def _placed_otf(kernel: np.ndarray, shape: tuple[int, int], iy: int, ix: int, workers: int = 1) -> np.ndarray:
    """``rfft2(_placed(kernel, shape, iy, ix))``, the same values, transforming only its non-zero rows."""
    placed = _placed(kernel, shape, iy, ix)
    if _pocketfft() is None:
        return _rfft2(placed, workers)
    rows = np.unique((np.arange(kernel.shape[0]) - iy) % shape[0])
    threads = workers if shape[0] * shape[1] >= PARALLEL_FFT_MIN_PIXELS else 1
    out = np.zeros((shape[0], shape[1] // 2 + 1), np.complex64 if placed.dtype == np.float32 else np.complex128)
    out[rows] = _pocketfft().r2c(placed[rows], [1], True, 0, None, threads)
    _pocketfft().c2c(out, [0], True, 0, out, threads)
    return out


def _cropped_irfft2(spectrum: np.ndarray, shape: tuple[int, int], size: tuple[int, int],
                    workers: int = 1) -> np.ndarray:
    """``_cropped(irfft2(spectrum, s=shape), size)``, the same values (float32), inverting only the
    window's rows. ``spectrum`` is overwritten."""
    if _pocketfft() is None:
        return _cropped(_irfft2(spectrum, shape, workers), size)
    h, w = shape
    kh, kw = size
    rows = (np.arange(kh) - kh // 2) % h
    cols = (np.arange(kw) - kw // 2) % w
    threads = workers if h * w >= PARALLEL_FFT_MIN_PIXELS else 1
    pf = _pocketfft()
    pf.c2c(spectrum, [0], False, 0, spectrum, threads)
    real = pf.c2r(spectrum[rows], [1], w, False, 0, None, threads)[:, cols]
    scale = 1 / np.longdouble(h * w)  # pocketfft's factor, rounded once to the precision
    return (real * real.dtype.type(scale)).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=1)
def _pocketfft():
    """SciPy's pocketfft binding, which :func:`scipy.fft.rfft2` and ``irfft2`` call (None if a SciPy
    release moves it: the full transforms are used then)."""
    try:
        from scipy.fft._pocketfft import pypocketfft
    except ImportError:  # pragma: no cover - depends on the SciPy release
        return None
    return pypocketfft


def psf2otf(kernel: np.ndarray, shape: tuple[int, int],
            origin: Optional[tuple[float, float]] = None) -> np.ndarray:
    """Real-input FFT (``rfft2`` layout of ``shape``) of ``kernel`` placed with ``origin`` (row,
    column in the kernel's pixels, fractions allowed) at the image origin; default its centre
    pixel. A fractional origin is applied exactly, as a phase ramp."""
    kh, kw = kernel.shape
    oy, ox = (kh // 2, kw // 2) if origin is None else origin
    iy, ix = int(np.floor(oy)), int(np.floor(ox))
    otf = _placed_otf(kernel, shape, iy, ix)
    fy, fx = oy - iy, ox - ix
    if fy or fx:
        ramp = np.exp(2j * np.pi * (fy * np.fft.fftfreq(shape[0])[:, None] + fx * np.fft.rfftfreq(shape[1])[None, :]))
        otf = (otf * ramp).astype(otf.dtype)
    return otf


def kernel_centroid(k: np.ndarray) -> tuple[float, float]:
    """Centre of mass (row, column) of a non-negative kernel, in its pixels."""
    ys, xs = np.mgrid[:k.shape[0], :k.shape[1]]
    s = max(float(k.sum()), 1e-12)
    return float((ys * k).sum() / s), float((xs * k).sum() / s)


def kernel_peak(k: np.ndarray, smooth_px: float) -> tuple[float, float]:
    """The sub-pixel position (row, column, in the kernel's pixels) of the maximum of ``k`` smoothed by a
    Gaussian of ``smooth_px`` px (a parabola through the maximum and its neighbours along each axis):
    where the kernel's mass is densest. A thin spur off a disc moves its centre of mass but barely
    its smoothed peak."""
    sm = cv2.GaussianBlur(np.asarray(k, np.float32), (0, 0), float(smooth_px), borderType=cv2.BORDER_CONSTANT)
    iy, ix = np.unravel_index(int(np.argmax(sm)), sm.shape)

    def vertex(lo: float, mid: float, hi: float) -> float:
        curve = lo - 2.0 * mid + hi
        return 0.0 if curve >= 0 else float(np.clip(0.5 * (lo - hi) / curve, -0.5, 0.5))

    dy = vertex(sm[iy - 1, ix], sm[iy, ix], sm[iy + 1, ix]) if 0 < iy < sm.shape[0] - 1 else 0.0
    dx = vertex(sm[iy, ix - 1], sm[iy, ix], sm[iy, ix + 1]) if 0 < ix < sm.shape[1] - 1 else 0.0
    return float(iy + dy), float(ix + dx)


def otf2psf(otf: np.ndarray, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`psf2otf`: the ``size`` kernel around the origin of ``irfft2(otf)``."""
    return _cropped_irfft2(np.array(otf, copy=True), shape, size)


def _cropped(full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The ``size`` window around the origin of the periodic array ``full`` (float32)."""
    kh, kw = size
    h, w = full.shape
    return full[np.ix_((np.arange(kh) - kh // 2) % h, (np.arange(kw) - kw // 2) % w)].astype(np.float32)


@functools.lru_cache(maxsize=16)
def _grad_otfs(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    dx = np.zeros(shape, np.float32)
    dx[0, 0], dx[0, -1] = -1.0, 1.0  # forward difference x[i+1] - x[i] as a circular filter
    dy = np.zeros(shape, np.float32)
    dy[0, 0], dy[-1, 0] = -1.0, 1.0
    fdx, fdy = sfft.rfft2(dx), sfft.rfft2(dy)
    for a in (fdx, fdy):
        a.flags.writeable = False  # shared by every call on this shape
    return fdx, fdy


def forward_gradients(x: np.ndarray, out: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Circular forward differences ``(x[:, i+1] - x[:, i], x[i+1] - x[i])`` (written into
    ``out[0]`` and ``out[1]`` when given: a 2 x H x W array of ``x``'s dtype)."""
    if out is None:
        out = np.empty((2,) + x.shape, x.dtype)
    gx, gy = out[0], out[1]
    np.subtract(x[:, 1:], x[:, :-1], out=gx[:, :-1])
    np.subtract(x[:, :1], x[:, -1:], out=gx[:, -1:])
    np.subtract(x[1:], x[:-1], out=gy[:-1])
    np.subtract(x[:1], x[-1:], out=gy[-1:])
    return gx, gy


def wrap_pad(image: np.ndarray, margin: int) -> np.ndarray:
    """Pad a 2-D array by at least ``margin`` on every side (more after, up to FFT-friendly
    sizes) so that it is smooth across the periodic wrap-around: mirrored content cross-faded
    towards the opposite side's (kills FFT border artefacts in deconvolution). The original
    sits at ``[margin:margin + h, margin:margin + w]``."""
    h, w = image.shape
    th = sfft.next_fast_len(h + 2 * margin, real=True)
    tw = sfft.next_fast_len(w + 2 * margin, real=True)
    padded = np.pad(image, ((margin, th - h - margin), (margin, tw - w - margin)), mode="symmetric")
    padded = padded.astype(np.float32)
    for axis, n, lo, hi in ((0, th, margin, th - h - margin), (1, tw, margin, tw - w - margin)):
        idx = np.arange(n, dtype=np.float32)
        t = np.ones(n, np.float32)
        t[:lo] = idx[:lo] / max(lo, 1)
        t[n - hi:] = (n - 1 - idx[n - hi:]) / max(hi, 1)
        weight = (0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0, 1))).astype(np.float32)
        weight = weight[:, None] if axis == 0 else weight[None, :]
        rolled = np.roll(padded, n // 2, axis=axis)
        padded = padded * weight + rolled * (1.0 - weight)
    return padded


# ----------------------------------------------------------------------------- latent step
def l0_restore(blurry: np.ndarray, kernel: np.ndarray, lam: float, kappa: Optional[float] = None,
               beta_max: float = 1e5, blurry_fft: Optional[np.ndarray] = None, workers: int = 1) -> np.ndarray:
    """argmin_x ||k ⊛ x − y||² + λ ||∇x||₀ by half-quadratic splitting (Xu et al. 2013), circular
    boundaries (pad ``blurry`` first). Returns the latent image, same shape. ``blurry_fft``:
    ``rfft2(blurry)`` when the caller has it; ``workers``: FFT threads (same result)."""
    shape = blurry.shape
    fk = psf2otf(kernel, shape)
    fdx, fdy = _grad_otfs(shape)
    den_k = np.abs(fk) ** 2
    den_d = np.abs(fdx) ** 2 + np.abs(fdy) ** 2
    num_k = np.conj(fk) * (sfft.rfft2(blurry) if blurry_fft is None else blurry_fft)
    x = blurry.copy()
    beta = 2.0 * lam
    kappa = L0_KAPPA if kappa is None else kappa
    grads = np.empty((2,) + shape, np.float32)
    div = np.empty(shape, np.float32)
    while beta < beta_max:
        gx, gy = forward_gradients(x, grads)
        keep = (gx ** 2 + gy ** 2) >= lam / beta
        np.multiply(grads, keep, out=grads)
        # conj(D_x)·F(g_x) + conj(D_y)·F(g_y) = F(D_xᵀ g_x + D_yᵀ g_y): the adjoint differences
        # (g[i−1] − g[i]) summed in pixel space, then one transform instead of two
        np.subtract(gx[:, :-1], gx[:, 1:], out=div[:, 1:])
        np.subtract(gx[:, -1:], gx[:, :1], out=div[:, :1])
        div[1:] += gy[:-1]
        div[:1] += gy[-1:]
        div -= gy
        g = _rfft2(div, workers)
        g *= np.float32(beta)
        g += num_k
        g /= den_k + beta * den_d
        x = _irfft2(g, shape, workers)
        beta *= kappa
    return x.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- kernel step
def _keep_strong_gradients(x: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """The latent's gradients, zero except at the strongest ~2·sqrt(N·Nk) pixels (Cho & Lee's
    rule: enough edges in enough directions to determine an Nk-pixel kernel)."""
    gx, gy = forward_gradients(x)
    mag = np.sqrt(gx ** 2 + gy ** 2)
    count = int(min(mag.size, 2.0 * np.sqrt(mag.size * ksize * ksize)))
    if count < mag.size:
        thr = np.partition(mag.ravel(), mag.size - count)[mag.size - count]
        keep = mag >= thr
        gx, gy = gx * keep, gy * keep
    return gx, gy


def estimate_psf_ls(blurry_grads: tuple[np.ndarray, np.ndarray], latent_grads: tuple[np.ndarray, np.ndarray],
                    ksize: int, weight: float = KERNEL_WEIGHT, init: Optional[np.ndarray] = None,
                    iterations: Optional[int] = None, blurry_ffts: Optional[np.ndarray] = None,
                    workers: int = 1) -> np.ndarray:
    """argmin_k Σ_d ||∂_d x ⊛ k − ∂_d y||² + w ||k||², k of ``ksize`` x ``ksize`` support, by
    conjugate gradients. Unconstrained (the caller clips and normalises). ``blurry_ffts``: the
    2 x ... ``rfft2`` of ``blurry_grads`` when the caller has it; ``workers``: FFT threads (same
    result)."""
    shape = blurry_grads[0].shape
    lx, ly = _rfft2(np.stack(latent_grads), workers)
    bx, by = _rfft2(np.stack(blurry_grads), workers) if blurry_ffts is None else blurry_ffts
    size = (ksize, ksize)
    b = otf2psf(np.conj(lx) * bx + np.conj(ly) * by, shape, size).astype(np.float64)
    m = (np.abs(lx) ** 2 + np.abs(ly) ** 2).astype(np.float32)
    kh, kw = size

    def apply(k: np.ndarray) -> np.ndarray:
        otf = _placed_otf(k.astype(np.float32), shape, kh // 2, kw // 2, workers)
        return _cropped_irfft2(m * otf, shape, size, workers).astype(np.float64) + weight * k

    k = np.full(size, 1.0 / (ksize * ksize)) if init is None else init.astype(np.float64)
    r = b - apply(k)
    p = r.copy()
    rs = float((r * r).sum())
    for _ in range(CG_ITERATIONS if iterations is None else iterations):
        if rs < 1e-12:
            break
        ap = apply(p)
        alpha = rs / max(float((p * ap).sum()), 1e-30)
        k += alpha * p
        r -= alpha * ap
        rs_new = float((r * r).sum())
        p = r + (rs_new / rs) * p
        rs = rs_new
    return k.astype(np.float32)


def clean_kernel(k: np.ndarray, floor: float = KERNEL_FLOOR,
                 min_mass: float = MIN_COMPONENT_MASS) -> np.ndarray:
    """Non-negative, entries under ``floor``·peak zeroed, 8-connected parts with less than
    ``min_mass`` of the mass removed, normalised to sum 1 (a centred delta if nothing is left)."""
    k = np.maximum(k, 0.0).astype(np.float32)
    if k.max() <= 0:
        return delta_kernel(k.shape[0])
    k[k < floor * k.max()] = 0.0
    n, labels = cv2.connectedComponents((k > 0).astype(np.uint8), connectivity=8)
    total = float(k.sum())
    for i in range(1, n):
        part = labels == i
        if float(k[part].sum()) < min_mass * total:
            k[part] = 0.0
    s = float(k.sum())
    return delta_kernel(k.shape[0]) if s <= 0 else (k / s).astype(np.float32)


def delta_kernel(size: int) -> np.ndarray:
    k = np.zeros((size, size), np.float32)
    k[size // 2, size // 2] = 1.0
    return k


def center_kernel(k: np.ndarray) -> np.ndarray:
    """``k`` shifted by whole pixels so its centre of mass is at the centre (mass shifted out
    of the support is lost, then renormalised)."""
    if float(k.sum()) <= 0:
        return k
    cy, cx = kernel_centroid(k)
    dy, dx = int(round(k.shape[0] // 2 - cy)), int(round(k.shape[1] // 2 - cx))
    out = np.zeros_like(k)
    h, w = k.shape
    ys0, ys1 = max(0, dy), min(h, h + dy)
    xs0, xs1 = max(0, dx), min(w, w + dx)
    out[ys0:ys1, xs0:xs1] = k[ys0 - dy:ys1 - dy, xs0 - dx:xs1 - dx]
    return (out / max(float(out.sum()), 1e-12)).astype(np.float32)


def kernel_shape_numbers(k: np.ndarray) -> tuple[float, float]:
    """(RMS radius about the centre of mass, extent along the principal axis) in pixels."""
    ys, xs = np.mgrid[:k.shape[0], :k.shape[1]].astype(np.float64)
    s = float(k.sum())
    cy, cx = (ys * k).sum() / s, (xs * k).sum() / s
    cov = np.array([[((ys - cy) ** 2 * k).sum(), ((ys - cy) * (xs - cx) * k).sum()],
                    [((ys - cy) * (xs - cx) * k).sum(), ((xs - cx) ** 2 * k).sum()]]) / s
    radius = float(np.sqrt(max(np.trace(cov), 0.0)))
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, -1]
    proj = (ys - cy) * axis[0] + (xs - cx) * axis[1]
    support = k > 0
    length = float(proj[support].max() - proj[support].min() + 1.0) if support.any() else 1.0
    return radius, length


# ----------------------------------------------------------------------------- pyramid
def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-6:
        return img.astype(np.float32)
    h, w = img.shape
    size = (max(int(round(w * scale)), 8), max(int(round(h * scale)), 8))
    return cv2.resize(img.astype(np.float32), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _resize_kernel(k: np.ndarray, ksize: int) -> np.ndarray:
    out = cv2.resize(k.astype(np.float32), (ksize, ksize), interpolation=cv2.INTER_LINEAR)
    out = np.maximum(out, 0.0)
    return (out / max(float(out.sum()), 1e-12)).astype(np.float32)


def blind_kernel(gray: np.ndarray, ksize: int, progress: Optional[Progress] = None,
                 lam: float = LAMBDA_GRAD, iterations: int = ITERATIONS,
                 fine_iterations: Optional[int] = None, cg_iterations: Optional[int] = None) -> np.ndarray:
    """The blur kernel (``ksize`` x ``ksize``, odd, sum 1, centred) of ``gray`` (float32 luminance
    in [0, 1]), estimated coarse to fine with the L0 gradient prior: ``iterations`` alternations
    per scale, ``fine_iterations`` (default the same) at the :data:`FINE_SCALES` finest, and
    ``cg_iterations`` (default :data:`CG_ITERATIONS`) per kernel solve."""
    progress = progress or Progress()
    workers = fft_workers()
    ksize = int(ksize) | 1
    ratio = np.sqrt(0.5)
    scales = max(int(np.floor(np.log(5.0 / ksize) / np.log(ratio))), 0) + 1
    sizes = []
    for s in range(scales):
        k1 = int(np.ceil(ksize * ratio ** s))
        sizes.append(k1 + (k1 % 2 == 0))
    k = np.zeros((3, 3), np.float32)
    k[1, 0:2] = 0.5
    fine = iterations if fine_iterations is None else fine_iterations
    per_scale = [fine if s < FINE_SCALES else iterations for s in range(scales)]
    total = sum(per_scale)
    step = 0
    for s in reversed(range(scales)):
        ks = sizes[s]
        y = _resize(gray, ratio ** s)
        k = _resize_kernel(k, ks)
        margin = ks
        yp = wrap_pad(y, margin)
        bgx, bgy = forward_gradients(yp)
        # the same at every alternation of this scale: transformed once
        yp_fft = _rfft2(yp, workers)
        bg_ffts = _rfft2(np.stack((bgx, bgy)), workers)
        lam_s = lam
        for _ in range(per_scale[s]):
            x = l0_restore(yp, k, lam_s, blurry_fft=yp_fft, workers=workers)
            lg = _keep_strong_gradients(x, ks)
            k = clean_kernel(estimate_psf_ls((bgx, bgy), lg, ks, init=k, iterations=cg_iterations,
                                             blurry_ffts=bg_ffts, workers=workers))
            lam_s = max(lam_s / 1.1, MIN_LAMBDA)
            step += 1
            progress(step / total)
    return center_kernel(k)


def _kernel_agreement(a: np.ndarray, b: np.ndarray, search: int = 3) -> float:
    """Best normalised correlation of two kernels over shifts of up to ``search`` px."""
    size = max(a.shape[0], b.shape[0]) + 2 * search
    pa = np.zeros((size, size), np.float32)
    pb = np.zeros((size, size), np.float32)
    oa, ob = (size - a.shape[0]) // 2, (size - b.shape[0]) // 2
    pa[oa:oa + a.shape[0], oa:oa + a.shape[1]] = a
    pb[ob:ob + b.shape[0], ob:ob + b.shape[1]] = b
    na, nb = float(np.linalg.norm(pa)), float(np.linalg.norm(pb))
    if na <= 0 or nb <= 0:
        return 0.0
    best = 0.0
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            best = max(best, float((pa * np.roll(pb, (dy, dx), axis=(0, 1))).sum()) / (na * nb))
    return best


def welch_spectrum(gray: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Average Hann-windowed power spectrum (rfft2 layout, n x n//2+1, float64) of ``gray``
    (float H x W with H, W >= n; windows of n px at half overlap, each less its mean) and the
    window's energy (sum of squared weights)."""
    win = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    acc = np.zeros((n, n // 2 + 1), np.float64)
    count = 0
    for y in range(0, gray.shape[0] - n + 1, n // 2):
        for x in range(0, gray.shape[1] - n + 1, n // 2):
            p = gray[y:y + n, x:x + n]
            acc += np.abs(np.fft.rfft2((p - p.mean()) * win)) ** 2
            count += 1
    return acc / max(count, 1), float((win ** 2).sum())


#: Scales c of the spectrum model ``c |K(ω)|² / |D(ω)|² + n`` tried in each fit (log-spaced).
SPECTRUM_SCALES = np.exp(np.linspace(np.log(1e-7), np.log(1e3), 121))


def _gradient_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """|D(ω)|² of the finite-difference gradient on an n x n rfft2 grid (DC set to 1) and the mask
    of every frequency but DC."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    grad = 4 * np.sin(np.pi * fy) ** 2 + 4 * np.sin(np.pi * fx) ** 2
    grad[0, 0] = 1.0
    mask = np.ones(grad.shape, bool)
    mask[0, 0] = False
    return grad, mask


def _kernel_power(kernel: np.ndarray, n: int) -> np.ndarray:
    """|K(ω)|² of ``kernel`` (at most n x n) centred on the origin of an n x n rfft2 grid."""
    kh, kw = kernel.shape
    return np.abs(np.fft.rfft2(_placed(kernel, (n, n), kh // 2, kw // 2))) ** 2


def _spectrum_noise(noise_sigma: float, energy: float) -> float:
    """The white-noise floor n of the spectrum model for ``noise_sigma`` (0..1; at least the 8-bit
    rounding's) through a window of ``energy`` (sum of squared weights)."""
    return max(noise_sigma, 1.0 / 255.0 / np.sqrt(12.0)) ** 2 * energy


def spectral_evidence(gray: np.ndarray, kernel: np.ndarray, noise_sigma: float = 1.0 / 255.0,
                      window: int = 128) -> float:
    """How much better the photo's power spectrum is explained as a natural 1/f² image blurred by
    ``kernel`` than as a sharp one: the Welch spectrum (Hann windows of ``window`` px, half
    overlap) is modelled as ``c |K(ω)|² / |D(ω)|² + n`` (n from ``noise_sigma``), and the mean
    Gaussian negative log-likelihood per frequency under no blur minus that under ``kernel``
    (each at its best scale c) is returned. > 0: the spectrum falls off as the kernel says."""
    n = int(min(window, min(gray.shape) // 2 * 2))
    spectrum, energy = welch_spectrum(gray, n)
    noise = _spectrum_noise(noise_sigma, energy)
    grad, mask = _gradient_power(n)
    obs = spectrum[mask]
    scales = SPECTRUM_SCALES
    var, log_var = np.empty((2, scales.size, obs.size))  # reused: the same values as fresh arrays

    def nll(k2: np.ndarray) -> float:
        base = (k2 / grad)[mask]
        np.multiply(scales[:, None], base[None], out=var)
        np.add(var, noise, out=var)
        np.log(var, out=log_var)
        np.divide(obs[None], var, out=var)
        np.add(var, log_var, out=var)  # obs / var + log(var)
        return float(var.mean(axis=1).min())

    kh, kw = kernel.shape
    if kh > n or kw > n:
        return 0.0
    k2 = _kernel_power(kernel, n)
    return nll(np.ones_like(k2)) - nll(k2)


#: Agreement of the halves' kernels with the main one (best correlation) from which it no longer
#: lowers the confidence.
FULL_AGREEMENT = 0.8


#: Tile edge (px at the estimation scale) for the depth-of-field check, and the band contrast
#: (std of a difference of Gaussians σ 2 and 8 px, [0, 1] units) that makes a tile detailed enough
#: to judge: flat sky or a wall says nothing about blur.
DOF_TILE = 128
DOF_MIN_CONTRAST = 0.02
#: A photo whose detailed tiles show no blur in at least this share is not shaken: a sharp subject
#: before a soft background (shallow depth of field) or a moving subject is left as it is.
DOF_SHARP_SHARE = 0.25
#: Least number of detailed tiles for that check to be made.
DOF_MIN_TILES = 4


def detailed_tile_origins(gray: np.ndarray) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of the :data:`DOF_TILE` px tiles of ``gray`` (float32
    luminance in [0, 1]) detailed enough to judge blur on (band contrast at least
    :data:`DOF_MIN_CONTRAST`), in row-major order. Depends on the photo only, not on a kernel."""
    band = cv2.GaussianBlur(gray, (0, 0), 2.0) - cv2.GaussianBlur(gray, (0, 0), 8.0)
    h, w = gray.shape
    return [(y, x) for y in range(0, h - DOF_TILE + 1, DOF_TILE) for x in range(0, w - DOF_TILE + 1, DOF_TILE)
            if not float(band[y:y + DOF_TILE, x:x + DOF_TILE].std()) < DOF_MIN_CONTRAST]


def sharp_tiles(gray: np.ndarray, kernel: np.ndarray, noise_sigma: float) -> tuple[int, int]:
    """(detailed tiles whose spectrum shows no blur by ``kernel``, detailed tiles), over a grid of
    :data:`DOF_TILE` px tiles (:func:`detailed_tile_origins`). Camera shake blurs every tile alike;
    shallow depth of field leaves the subject's tiles sharp."""
    origins = detailed_tile_origins(gray)
    sharp = sum(spectral_evidence(gray[y:y + DOF_TILE, x:x + DOF_TILE], kernel, noise_sigma) < MIN_EVIDENCE
                for y, x in origins)
    return int(sharp), len(origins)


def _region(gray: np.ndarray, side: int) -> np.ndarray:
    h, w = gray.shape
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return gray[y0:y0 + side, x0:x0 + side]


def estimate_kernel(gray: np.ndarray, ksize: int = 31, progress: Optional[Progress] = None,
                    check_agreement: bool = True, noise_sigma: float = 1.0 / 255.0,
                    depth_of_field: bool = True) -> KernelEstimate:
    """Estimate the blur kernel of ``gray`` (float32 H x W luminance in [0, 1], at the scale the
    kernel is wanted) with its confidence. The kernel comes from the central
    :data:`MAX_REGION` square; when ``check_agreement`` and the photo is large enough, its left
    and right halves are estimated too and must agree. A kernel whose spectral evidence
    (:func:`spectral_evidence` at ``noise_sigma``, the photo's noise σ in [0, 1]) is under :data:`MIN_EVIDENCE` is
    replaced by a 1x1 (no blur; ``reason`` says why), and so is one where at least
    :data:`DOF_SHARP_SHARE` of the detailed areas are sharp (depth of field, ``sharp_areas``), unless
    ``depth_of_field`` is false (blur removal was asked for: the areas are still counted in
    ``checks``). Photos under 64 px get a 1x1 kernel and confidence 0."""
    progress = progress or Progress()
    h, w = gray.shape
    if min(h, w) < 64:
        return KernelEstimate(np.ones((1, 1), np.float32), 0.0, 0.0, 1.0, {}, "photo too small to estimate blur")
    ksize = int(min(ksize, (min(h, w) // 3) | 1)) | 1
    region = _region(gray, MAX_REGION)
    kernel = blind_kernel(region, ksize, progress.sub(0.0, 0.6 if check_agreement else 0.9))
    radius, length = kernel_shape_numbers(kernel)
    n, labels = cv2.connectedComponents((kernel > 0).astype(np.uint8), connectivity=8)
    masses = [float(kernel[labels == i].sum()) for i in range(1, n)]
    connected = max(masses) if masses else 0.0
    checks = {"connected": connected}
    evidence = spectral_evidence(region, kernel, noise_sigma) if radius >= NO_BLUR_RADIUS else 0.0
    checks["evidence"] = evidence
    if radius < NO_BLUR_RADIUS or evidence < MIN_EVIDENCE:
        progress(1.0)
        return KernelEstimate(np.ones((1, 1), np.float32), 1.0, radius, length, checks,
                              "the kernel is a point" if radius < NO_BLUR_RADIUS else
                              f"the photo's spectrum does not fall off as the estimated kernel says (evidence "
                              f"{evidence:.2f} < {MIN_EVIDENCE}): a sharp photo, or a blur the estimate missed")
    sharp, detailed = sharp_tiles(gray, kernel, noise_sigma)
    checks["sharp_tiles"] = float(sharp)
    checks["detailed_tiles"] = float(detailed)
    if depth_of_field and detailed >= DOF_MIN_TILES and sharp >= DOF_SHARP_SHARE * detailed:
        progress(1.0)
        return KernelEstimate(np.ones((1, 1), np.float32), 1.0, radius, length, checks,
                              f"{sharp} of {detailed} detailed areas are sharp: a sharp subject before a soft "
                              "background (depth of field) or a moving subject, not camera shake", sharp_areas=True)
    agreement = 1.0
    if check_agreement and min(h, w) >= 160:
        # A half with too few edges of its own (sky, a bare tree) can fail alone, so when the first
        # split disagrees the other one is tried and the better counts; a wrong kernel agrees in neither.
        splits = [[gray[:, :w // 2], gray[:, w // 2:]], [gray[:h // 2], gray[h // 2:]]]
        agreement = 0.0
        for j, halves in enumerate(splits if w >= h else splits[::-1]):
            parts = [blind_kernel(_region(p, MAX_REGION // 2), ksize,
                                  progress.sub(0.6 + 0.2 * j + 0.1 * i, 0.7 + 0.2 * j + 0.1 * i),
                                  fine_iterations=CHECK_FINE_ITERATIONS, cg_iterations=CHECK_CG_ITERATIONS)
                     for i, p in enumerate(halves)]
            agreement = max(agreement, min(_kernel_agreement(kernel, p) for p in parts))
            if agreement >= FULL_AGREEMENT:
                break
        checks["agreement"] = agreement
    confidence = float(np.clip((connected - 0.5) / 0.4, 0, 1)
                       * np.clip((agreement - 0.3) / (FULL_AGREEMENT - 0.3), 0, 1)
                       * np.clip((evidence - MIN_EVIDENCE) / (FULL_EVIDENCE - MIN_EVIDENCE), 0, 1))
    reasons = []
    if connected < 0.8:
        reasons.append(f"the kernel is scattered ({connected:.0%} of it in one trajectory)")
    if evidence < FULL_EVIDENCE:
        reasons.append(f"the photo's spectrum shows the blur only weakly (evidence {evidence:.2f})")
    if agreement < FULL_AGREEMENT:
        reasons.append(f"the two halves of the photo disagree about the blur (correlation {agreement:.2f})")
    progress(1.0)
    return KernelEstimate(kernel, confidence, radius, length, checks, "; ".join(reasons))


#: Tile edge (px at the estimation scale) for :func:`tile_blur_scales`: small enough that a photo of
#: 255 px still has several tiles, one Hann window each.
SCALE_TILE = 64
#: The kernel sizes (factors of the estimated kernel's size; 0 = no blur) a tile's spectrum is fitted
#: with in :func:`tile_blur_scales`.
TILE_SCALES = (0.0, 0.35, 0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0)


def _scaled_kernel(kernel: np.ndarray, factor: float) -> np.ndarray:
    if factor == 0.0:
        return np.ones((1, 1), np.float32)
    size = max(int(round(kernel.shape[0] * factor)) | 1, 1)
    out = np.maximum(cv2.resize(kernel.astype(np.float32), (size, size),
                                interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR), 0.0)
    return (out / max(float(out.sum()), 1e-12)).astype(np.float32)


def tile_blur_scales(gray: np.ndarray, kernel: np.ndarray, noise_sigma: float = 1.0 / 255.0,
                     tile: int = SCALE_TILE) -> np.ndarray:
    """How blurred each detailed tile of ``gray`` (float32 luminance in [0, 1], at the scale
    ``kernel`` was estimated) is, as the factor of :data:`TILE_SCALES` by which ``kernel``'s size
    best explains the tile's spectrum (the model of :func:`spectral_evidence`, noise from
    ``noise_sigma`` in [0, 1]): about 1 everywhere for one blur over the whole frame (missed focus,
    shake), smaller where a part of the scene is nearer the focus (depth of field). Tiles whose band
    contrast is under :data:`DOF_MIN_CONTRAST` say nothing and are skipped. float64, one per tile."""
    n = int(tile)
    band = cv2.GaussianBlur(gray, (0, 0), 2.0) - cv2.GaussianBlur(gray, (0, 0), 8.0)
    grad, mask = _gradient_power(n)
    levels = SPECTRUM_SCALES
    bases = []
    for f in TILE_SCALES:
        k = _scaled_kernel(kernel, f)
        if k.shape[0] > n:
            bases.append(None)
            continue
        bases.append((_kernel_power(k, n) / grad)[mask])
    out = []
    h, w = gray.shape
    for y in range(0, h - n + 1, n):
        for x in range(0, w - n + 1, n):
            if float(band[y:y + n, x:x + n].std()) < DOF_MIN_CONTRAST:
                continue
            spectrum, energy = welch_spectrum(gray[y:y + n, x:x + n], n)
            noise = _spectrum_noise(noise_sigma, energy)
            obs = spectrum[mask]
            nll = [np.inf if b is None else
                   float((obs[None] / (levels[:, None] * b[None] + noise)
                          + np.log(levels[:, None] * b[None] + noise)).mean(axis=1).min()) for b in bases]
            out.append(TILE_SCALES[int(np.argmin(nll))])
    return np.asarray(out, np.float64)
