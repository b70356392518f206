"""The kernel estimator's faster forms compute what the plain ones do: circular differences
without rolls, kernels placed and cropped without full-size rolls, transforms of a placed kernel
and of a kernel-sized window made on the rows they need, transforms made once per scale, the L0
step with one transform instead of two, FFT threads, and the detailed-tile count."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.fft as sfft
from testdata import clean_photo


def _gray(size: int = 160, seed: int = 3) -> np.ndarray:
    from engine.color import luminance

    return luminance(clean_photo(seed, size)).astype(np.float32)


def _rolled_psf2otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    pad = np.zeros(shape, np.float32)
    kh, kw = kernel.shape
    pad[:kh, :kw] = kernel
    return sfft.rfft2(np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1)))


def test_forward_gradients_are_the_circular_differences():
    from engine.analysis.blur_kernel import forward_gradients

    x = np.random.default_rng(0).random((37, 53)).astype(np.float32)
    gx, gy = forward_gradients(x)
    assert np.array_equal(gx, np.roll(x, -1, axis=1) - x) and np.array_equal(gy, np.roll(x, -1, axis=0) - x)


def test_kernels_are_placed_and_cropped_as_by_rolling():
    from engine.analysis.blur_kernel import otf2psf, psf2otf

    k = np.random.default_rng(1).random((9, 7)).astype(np.float32)
    shape = (40, 34)
    otf = psf2otf(k, shape)
    assert np.array_equal(otf, _rolled_psf2otf(k, shape))
    full = np.roll(sfft.irfft2(otf, s=shape), (4, 3), axis=(0, 1))
    assert np.array_equal(otf2psf(otf, shape, (9, 7)), full[:9, :7].astype(np.float32))


@pytest.mark.parametrize("shape,ksize,workers", [((576, 576), 31, 1), ((576, 576), 31, 2), ((135, 150), 7, 1),
                                                 ((96, 100), 5, 2), ((40, 34), 9, 1), ((12, 20), 15, 1)])
def test_transforms_on_the_rows_needed_equal_the_full_ones_to_the_bit(shape, ksize, workers):
    from engine.analysis.blur_kernel import _cropped, _cropped_irfft2, _placed, _placed_otf

    rng = np.random.default_rng(ksize)
    k = rng.random((ksize, ksize)).astype(np.float32)
    otf = _placed_otf(k, shape, ksize // 2, ksize // 2, workers)
    assert np.array_equal(otf, sfft.rfft2(_placed(k, shape, ksize // 2, ksize // 2), workers=workers))
    spectrum = (rng.random(otf.shape) * otf).astype(np.complex64)
    full = _cropped(sfft.irfft2(spectrum, s=shape, workers=workers), (ksize, ksize))
    assert np.array_equal(_cropped_irfft2(spectrum.copy(), shape, (ksize, ksize), workers), full)


def test_spectral_evidence_in_reused_buffers_is_the_plain_formula_to_the_bit():
    from engine.analysis.blur_kernel import (SPECTRUM_SCALES, _gradient_power, _kernel_power, _spectrum_noise,
                                             spectral_evidence, welch_spectrum)

    gray = cv2.GaussianBlur(_gray(256), (0, 0), 1.0) + np.random.default_rng(2).normal(0, 0.01, (256, 256))
    gray = gray.astype(np.float32)
    k = np.zeros((9, 9), np.float32)
    k[4, 1:8] = 1 / 7
    spectrum, energy = welch_spectrum(gray, 128)
    grad, mask = _gradient_power(128)
    obs, noise = spectrum[mask], _spectrum_noise(2 / 255, energy)

    def nll(k2):
        var = SPECTRUM_SCALES[:, None] * (k2 / grad)[mask][None] + noise
        return float((obs[None] / var + np.log(var)).mean(axis=1).min())

    k2 = _kernel_power(k, 128)
    assert spectral_evidence(gray, k, 2 / 255) == nll(np.ones_like(k2)) - nll(k2)


def test_the_detailed_tiles_are_those_the_depth_of_field_check_counts():
    from engine.analysis.blur_kernel import DOF_TILE, detailed_tile_origins, sharp_tiles

    gray = np.random.default_rng(0).random((400, 400)).astype(np.float32)  # texture everywhere ...
    gray[:, 200:] = 0.5  # ... but a flat half: its tiles say nothing
    origins = detailed_tile_origins(gray)
    assert origins and all(x < 2 * DOF_TILE for _, x in origins)  # none wholly in the flat half
    k = np.full((5, 5), 1 / 25, np.float32)
    assert sharp_tiles(gray, k, 1 / 255)[1] == len(origins)


@pytest.mark.parametrize("ksize", [5, 15])
def test_kernel_least_squares_with_the_blurry_transforms_given_is_the_same(ksize):
    """The blurry photo's gradient transforms, made once per scale and passed in, give the kernel
    step what it computes itself; and its CG solves the normal equations (residual down)."""
    from engine.analysis.blur_kernel import (KERNEL_WEIGHT, _keep_strong_gradients, _rfft2, estimate_psf_ls,
                                             forward_gradients, otf2psf, psf2otf, wrap_pad)

    yp = wrap_pad(_gray(), ksize)
    shape = yp.shape
    blurry = forward_gradients(cv2.GaussianBlur(yp, (0, 0), 1.2))
    latent = _keep_strong_gradients(yp, ksize)
    plain = estimate_psf_ls(blurry, latent, ksize, iterations=10)
    given = estimate_psf_ls(blurry, latent, ksize, iterations=10, blurry_ffts=_rfft2(np.stack(blurry)))
    assert np.allclose(plain, given, rtol=0, atol=1e-6 * np.abs(plain).max())
    lx, ly = (sfft.rfft2(g) for g in latent)
    bx, by = (sfft.rfft2(g) for g in blurry)
    b = otf2psf(np.conj(lx) * bx + np.conj(ly) * by, shape, (ksize, ksize)).astype(np.float64)
    m = (np.abs(lx) ** 2 + np.abs(ly) ** 2).astype(np.float32)

    def residual(k):
        ak = otf2psf(m * psf2otf(k.astype(np.float32), shape), shape, (ksize, ksize)) + KERNEL_WEIGHT * k
        return float(np.linalg.norm(b - ak))

    assert residual(plain) < 0.1 * residual(np.full((ksize, ksize), 1.0 / ksize ** 2))


def test_one_l0_step_equals_the_two_transform_form():
    """One half-quadratic step (β from 2λ, stopped before the second) against the textbook form:
    the gradients' two transforms times their conjugate difference filters."""
    from engine.analysis.blur_kernel import L0_KAPPA, _grad_otfs, l0_restore, wrap_pad

    yp = wrap_pad(cv2.GaussianBlur(_gray(), (0, 0), 1.0), 15)
    k = cv2.getGaussianKernel(15, 2.0).astype(np.float32)
    k = (k @ k.T).astype(np.float32)
    lam = 4e-3
    ours = l0_restore(yp, k, lam, beta_max=2 * lam * L0_KAPPA * 0.99)
    fk = _rolled_psf2otf(k, yp.shape)
    fdx, fdy = _grad_otfs(yp.shape)
    gx, gy = np.roll(yp, -1, axis=1) - yp, np.roll(yp, -1, axis=0) - yp
    keep = (gx ** 2 + gy ** 2) >= lam / (2 * lam)
    beta = 2 * lam
    grads = np.conj(fdx) * sfft.rfft2(gx * keep) + np.conj(fdy) * sfft.rfft2(gy * keep)
    num = np.conj(fk) * sfft.rfft2(yp) + beta * grads
    textbook = sfft.irfft2(num / (np.abs(fk) ** 2 + beta * (np.abs(fdx) ** 2 + np.abs(fdy) ** 2)), s=yp.shape)
    assert np.abs(ours - textbook).max() < 1e-5


def test_fft_threads_do_not_change_the_estimate(monkeypatch):
    from engine.analysis import blur_kernel

    blurry = cv2.GaussianBlur(_gray(200), (0, 0), 1.5)
    results = []
    for workers in (1, 2):
        monkeypatch.setattr(blur_kernel, "fft_workers", lambda w=workers: w)
        results.append(blur_kernel.blind_kernel(blurry, 11))
    assert np.array_equal(results[0], results[1])
