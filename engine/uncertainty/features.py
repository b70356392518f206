"""Per-pixel features the uncertainty model is fitted on (Qt-free, cheap: a few box filters).

Every feature is computed from what a stage saw and made (its input ``before`` and its output
``after``, HxWx3 float32 in [0, 1]), the analysed noise level and the analysed severity; none
needs another network run. Units are 8-bit levels where a feature is a pixel difference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from ..progress import Progress

#: Side of the box (pixels) that turns per-pixel differences into local means. Odd.
WINDOW = 7

#: The feature names, in the order of :func:`feature_stack`'s planes (after the constant 1).
FEATURES = ("change", "texture_after", "texture_before", "noise", "severity", "severity_after", "dark", "bright",
            "luminance", "dark_channel", "dark_channel_before", "texture_x_severity", "texture_x_severity_after",
            "noise_x_severity", "change_x_severity", "gain", "brighten", "gain_x_noise", "haze_depth",
            "haze_depth_x_severity", "streak_before", "streak_after", "streak_after_x_severity", "photo_change",
            "airlight_gap", "airlight_gap_x_depth", "photo_dark", "luminance_x_photo_dark",
            "luminance_x_severity_after", "luminance_x_change", "haze_depth_x_change", "ensemble_spread",
            "photo_ensemble_spread", "photo_noise")
#: The name of :func:`feature_stack`'s first plane, the constant 1 (the score's intercept).
CONSTANT = "constant"
#: The names of :func:`feature_stack`'s planes, in order: the constant, then :data:`FEATURES`.
STACK = (CONSTANT,) + FEATURES
#: The planes :func:`raw_planes` computes (those that do not depend on the severities).
RAW = ("change", "texture_after", "texture_before", "noise", "dark", "bright", "luminance", "dark_channel",
       "dark_channel_before", "gain", "brighten", "gain_x_noise", "haze_depth", "streak_before", "streak_after",
       "airlight_gap")
#: Floor (in [0, 1] units) on the local contrast and brightness the gains are ratios of.
GAIN_FLOOR = 2.0 / 255.0
#: Side (pixels) of the square the haze depth's dark channel takes its minimum over. Odd, and
#: with :data:`WINDOW` within the model's band margin.
DARK_WINDOW = 15
#: Width (pixels) of the horizontal line a streak is narrower than (as the analysis' rain measure).
STREAK_WIDTH = 5


def _grey(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image, np.float32).mean(axis=2, dtype=np.float32))


def _box(plane: np.ndarray, window: int = WINDOW) -> np.ndarray:
    return cv2.blur(plane, (window, window), borderType=cv2.BORDER_REFLECT)


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy) * np.float32(0.125)  # Sobel's gain is 8 for a unit step


def noise_plane(noise_sigma: Union[None, float, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The analysed noise σ as an HxW plane in 8-bit levels. ``noise_sigma``: ``None`` (unknown:
    0), a number or a per-channel ``(3,)`` vector in [0, 1] units, or an HxWx3 / HxW map."""
    if noise_sigma is None:
        return np.zeros(shape, np.float32)
    s = np.asarray(noise_sigma, np.float32)
    if s.ndim == 3:
        s = s.mean(axis=2)
    if s.ndim == 2 and s.shape == shape:
        return (s * np.float32(255.0)).astype(np.float32)
    return np.full(shape, float(s.mean()) * 255.0, np.float32)


def _local_std(grey: np.ndarray) -> np.ndarray:
    mean = _box(grey)
    return np.sqrt(np.clip(_box(grey * grey) - mean * mean, 0.0, None))


def _streaks(grey: np.ndarray) -> np.ndarray:
    """Local mean of the thin bright lines (narrower than :data:`STREAK_WIDTH` across) of a grey
    plane, in levels: where rain streaks are, or are left."""
    tophat = grey - cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((1, STREAK_WIDTH), np.uint8),
                                     borderType=cv2.BORDER_REFLECT)
    return _box(tophat) * np.float32(255.0)


#: A photo is under-exposed by how far its mean brightness is below this (0..1).
EXPOSED_LUMA = 0.5


@dataclass(frozen=True)
class PhotoStats:
    """Whole-photo quantities of a stage's input and output that per-pixel features are scaled by:
    ``change``, the mean |after − before| (8-bit levels: how far the stage moved this photo, the
    level its global mistakes are on); ``airlight``, the brightness (0..1) of the input's haziest
    pixels (the 0.1 % with the largest smallest channel, as the dehazer estimates it);
    ``luma_after``, the output's mean brightness (0..1)."""

    change: float = 0.0
    airlight: float = 1.0
    luma_after: float = EXPOSED_LUMA


def photo_stats(before: np.ndarray, after: np.ndarray) -> PhotoStats:
    """:class:`PhotoStats` of a stage's input and output (HxWx3 in [0, 1]), on every 4th pixel
    each way (per-photo levels need no more)."""
    b, a = np.asarray(before, np.float32)[::4, ::4], np.asarray(after, np.float32)[::4, ::4]
    if b.size == 0:
        return PhotoStats()
    mins = b.min(axis=2).ravel()
    count = max(int(mins.size * 0.001), 1)
    top = np.argpartition(mins, mins.size - count)[-count:]
    return PhotoStats(change=float(np.abs(a - b).mean()) * 255.0,
                      airlight=float(b.mean(axis=2).ravel()[top].mean()), luma_after=float(a.mean()))


def _no_check() -> None:
    """The check of a computation nobody can cancel (``progress`` is ``None``)."""


def _planes(makers, shape: tuple, progress: Optional[Progress]) -> np.ndarray:
    """``(len(makers),) + shape`` float32, plane ``i`` the value of ``makers[i]()``, made one at a
    time into the result (the stack of a band is hundreds of MB: no list of planes beside it) and
    ``progress`` checked before each."""
    check = progress.check if progress is not None else _no_check
    out = np.empty((len(makers),) + tuple(shape), np.float32)
    for i, make in enumerate(makers):
        check()
        out[i] = make()
    return out


def raw_planes(before: np.ndarray, after: np.ndarray, *, noise_sigma=None,
               airlight: Optional[float] = None, progress: Optional[Progress] = None) -> np.ndarray:
    """``(len(RAW), H, W)`` float32, the planes of :data:`RAW`:

    - ``change``: log1p of the local mean absolute change |after − before| (levels);
    - ``texture_after`` / ``texture_before``: log1p of the local mean gradient magnitude of the
      output / input grey (levels per pixel);
    - ``noise``: log1p of the analysed noise σ (levels);
    - ``dark`` / ``bright``: how far the local output brightness is below 0.15 / above 0.85
      (clipped tones hide error and cause it); ``luminance``: the local output brightness;
    - ``dark_channel`` / ``dark_channel_before``: the local mean of the smallest channel of the
      output / input (haze left, haze there was);
    - ``gain``: log of the local contrast ratio output / input (the amplification a stage applied:
      1/t for a dehazer, the exposure gain for brightening; what it multiplies is the input's
      noise and its own estimation error); ``brighten``: log of the local brightness ratio;
      ``gain_x_noise``: log1p of the analysed noise σ (levels) times the contrast ratio (the noise
      the stage amplified);
    - ``haze_depth``: −log of the dark-channel transmission of the input, 1 − 0.95 × the minimum
      over :data:`DARK_WINDOW` px of its smallest channel (He et al.'s prior with a white
      airlight): how thick the haze was there, so how much a dehazing mistake is amplified;
    - ``streak_before`` / ``streak_after``: log1p of the local mean of thin bright lines of the
      input / output (rain streaks there were / are left), levels;
    - ``airlight_gap``: log1p of how far the output's local brightness is below the airlight
      (levels; ``airlight``: :attr:`PhotoStats.airlight`, computed here when not given). Haze a
      dehazer leaves or takes too much of errs by (airlight − scene) × (1 − t / t_estimated).

    ``progress``: checked before each plane (:meth:`engine.progress.Progress.check` raises
    :class:`engine.errors.Cancelled`: a window stops a superseded map within one plane's time)."""
    makers = _raw_makers(before, after, noise_sigma, airlight)
    return _planes([makers[name] for name in RAW], tuple(np.shape(before)[:2]), progress)


def _raw_makers(before: np.ndarray, after: np.ndarray, noise_sigma,
                airlight: Optional[float]) -> dict[str, Callable[[], np.ndarray]]:
    """:data:`RAW` name → a function that makes that plane of :func:`raw_planes`; what several planes
    share (the greys, the change, the local brightness and contrast, the noise plane, the dark
    channel) is made once, by the first plane that reads it, so a caller that needs a few planes
    pays for those only."""
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f"before {before.shape} and after {after.shape} must be the same HxWx3 shape")
    h, w = before.shape[:2]
    before = np.asarray(before, np.float32)
    after = np.asarray(after, np.float32)
    once = functools.cache
    gb, ga = once(lambda: _grey(before)), once(lambda: _grey(after))
    change = once(lambda: np.abs(after - before).mean(axis=2, dtype=np.float32))
    lum = once(lambda: _box(ga()))
    floor = np.float32(GAIN_FLOOR)
    contrast = once(lambda: (_local_std(ga()) + floor) / (_local_std(gb()) + floor))
    sigma = once(lambda: noise_plane(noise_sigma, (h, w)))
    light = once(lambda: photo_stats(before, after).airlight if airlight is None else airlight)
    dark = once(lambda: cv2.erode(np.ascontiguousarray(before.min(axis=2)),
                                  np.ones((DARK_WINDOW, DARK_WINDOW), np.uint8), borderType=cv2.BORDER_REFLECT))
    return {
        "change": lambda: np.log1p(_box(change()) * 255.0),
        "texture_after": lambda: np.log1p(_box(_gradient(ga())) * 255.0),
        "texture_before": lambda: np.log1p(_box(_gradient(gb())) * 255.0),
        "noise": lambda: np.log1p(sigma()),
        "dark": lambda: np.clip(0.15 - lum(), 0.0, None) / 0.15,
        "bright": lambda: np.clip(lum() - 0.85, 0.0, None) / 0.15,
        "luminance": lum,
        "dark_channel": lambda: _box(np.ascontiguousarray(after.min(axis=2))),
        "dark_channel_before": lambda: _box(np.ascontiguousarray(before.min(axis=2))),
        "gain": lambda: np.log(contrast()),
        "brighten": lambda: np.log((lum() + floor) / (_box(gb()) + floor)),
        "gain_x_noise": lambda: np.log1p(sigma() * contrast()),
        "haze_depth": lambda: _box(-np.log(np.clip(1.0 - 0.95 * dark(), 0.05, 1.0))),
        "streak_before": lambda: np.log1p(_streaks(gb())),
        "streak_after": lambda: np.log1p(_streaks(ga())),
        "airlight_gap": lambda: np.log1p(np.clip(np.float32(light()) - lum(), 0.0, None) * np.float32(255.0)),
    }


class _Planes(Mapping[str, np.ndarray]):
    """Named planes made on first use, each once (:func:`_raw_makers`' planes that a band's chosen
    features read)."""

    def __init__(self, makers: Mapping[str, Callable[[], np.ndarray]]) -> None:
        self._makers = makers
        self._made: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __iter__(self):
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


def assemble(raw: np.ndarray, severity: float = 0.0, severity_after: float = 0.0,
             photo: Optional[PhotoStats] = None, spread: Optional[np.ndarray] = None,
             photo_spread: float = 0.0, photo_noise: float = 0.0, progress: Optional[Progress] = None) -> np.ndarray:
    """``(1 + len(FEATURES), ...)``: a constant 1, then :data:`FEATURES` from the :data:`RAW`
    planes and the analysed severity of the kind at the input and at the output (0..1 each: what
    there was and what is left to fix), with the products of texture, noise, change, haze depth
    and streaks with them (detail is where an unfinished fix leaves its error), and from
    ``photo`` (:class:`PhotoStats`): ``photo_change`` (log1p of its change), ``photo_dark`` (how
    far the output's mean brightness is below :data:`EXPOSED_LUMA`, 0..1: exposure left
    uncorrected errs in proportion to the brightness, ``luminance_x_photo_dark``) and the airlight
    gap times the haze depth; and three products for errors that scale with the brightness or the
    haze: ``luminance_x_severity_after`` (exposure or veil the analysis still finds errs in
    proportion to the brightness), ``luminance_x_change`` (a brightening or deraining mistake is
    a fraction of what changed, larger where the result is bright) and ``haze_depth_x_change``
    (a dehazing mistake is amplified where the haze was thick); ``ensemble_spread`` (log1p of
    ``spread``, the parameter-perturbation ensemble's spread at each pixel in levels,
    :func:`engine.uncertainty.ensemble.parameter_spread`; 0 when ``None``) and
    ``photo_ensemble_spread`` (log1p of ``photo_spread``, that spread's mean over the whole photo:
    how much the photo's result hangs on the stage's global guesses); ``photo_noise`` (log1p of
    ``photo_noise``, the analysed noise σ's mean over the whole photo in levels, :func:`photo_noise`:
    a photo-level term fitted on whole training photos, ``benchmarks/uncertainty.py whole``).
    ``progress``: checked before each plane (as :func:`raw_planes`)."""
    r = {name: raw[i].astype(np.float32, copy=False) for i, name in enumerate(RAW)}
    makers = _feature_makers(r, raw.shape[1:], severity, severity_after, photo, spread, photo_spread, photo_noise)
    return _planes([makers[name] for name in STACK], raw.shape[1:], progress)


def _feature_makers(r: Mapping[str, np.ndarray], shape: tuple, severity: float, severity_after: float,
                    photo: Optional[PhotoStats], spread: Optional[np.ndarray], photo_spread: float,
                    photo_noise: float) -> dict[str, Callable[[], np.ndarray]]:
    """:data:`STACK` name → a function that makes that plane of :func:`assemble` from the :data:`RAW`
    planes ``r`` (a plane is read from ``r`` only by the features that need it)."""
    sev, sev_after = np.float32(severity), np.float32(severity_after)
    photo = photo or PhotoStats()
    photo_dark = np.float32(max(EXPOSED_LUMA - photo.luma_after, 0.0) / EXPOSED_LUMA)
    one = functools.cache(lambda: np.ones(tuple(shape), np.float32))
    return {
        CONSTANT: one, "change": lambda: r["change"], "texture_after": lambda: r["texture_after"],
        "texture_before": lambda: r["texture_before"], "noise": lambda: r["noise"],
        "severity": lambda: one() * sev, "severity_after": lambda: one() * sev_after,
        "dark": lambda: r["dark"], "bright": lambda: r["bright"], "luminance": lambda: r["luminance"],
        "dark_channel": lambda: r["dark_channel"], "dark_channel_before": lambda: r["dark_channel_before"],
        "texture_x_severity": lambda: r["texture_before"] * sev,
        "texture_x_severity_after": lambda: r["texture_after"] * sev_after,
        "noise_x_severity": lambda: r["noise"] * sev, "change_x_severity": lambda: r["change"] * sev,
        "gain": lambda: r["gain"], "brighten": lambda: r["brighten"], "gain_x_noise": lambda: r["gain_x_noise"],
        "haze_depth": lambda: r["haze_depth"], "haze_depth_x_severity": lambda: r["haze_depth"] * sev,
        "streak_before": lambda: r["streak_before"], "streak_after": lambda: r["streak_after"],
        "streak_after_x_severity": lambda: r["streak_after"] * sev_after,
        "photo_change": lambda: one() * np.float32(np.log1p(photo.change)),
        "airlight_gap": lambda: r["airlight_gap"], "airlight_gap_x_depth": lambda: r["airlight_gap"] * r["haze_depth"],
        "photo_dark": lambda: one() * photo_dark, "luminance_x_photo_dark": lambda: r["luminance"] * photo_dark,
        "luminance_x_severity_after": lambda: r["luminance"] * sev_after,
        "luminance_x_change": lambda: r["luminance"] * r["change"],
        "haze_depth_x_change": lambda: r["haze_depth"] * r["change"],
        "ensemble_spread": lambda: np.zeros(tuple(shape), np.float32) if spread is None
        else np.log1p(np.asarray(spread, np.float32)),
        "photo_ensemble_spread": lambda: one() * np.float32(np.log1p(max(float(photo_spread), 0.0))),
        "photo_noise": lambda: one() * np.float32(np.log1p(max(float(photo_noise), 0.0))),
    }


def photo_noise(noise_sigma: Union[None, float, np.ndarray]) -> float:
    """The analysed noise σ's mean over the whole photo, in 8-bit levels (``noise_sigma`` as
    :func:`noise_plane` takes it, in [0, 1] units; ``None``: 0)."""
    if noise_sigma is None:
        return 0.0
    return float(np.mean(np.asarray(noise_sigma, np.float32), dtype=np.float64)) * 255.0


def feature_stack(before: np.ndarray, after: np.ndarray, *, noise_sigma=None,
                  severity: float = 0.0, severity_after: float = 0.0,
                  photo: Optional[PhotoStats] = None, spread: Optional[np.ndarray] = None,
                  photo_spread: float = 0.0, photo_sigma: Optional[float] = None,
                  progress: Optional[Progress] = None, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """``(1 + len(FEATURES), H, W)`` float32: :func:`assemble` of :func:`raw_planes`.
    ``photo``: the whole photo's :class:`PhotoStats` (``None``: those of ``before``/``after``,
    right for a whole photo, not for a band of one); ``spread`` (HxW levels) and ``photo_spread``:
    the ensemble's spread on these pixels and its whole-photo mean (:func:`assemble`);
    ``photo_sigma``: the whole photo's :func:`photo_noise` (``None``: that of ``noise_sigma``);
    ``progress``: checked between planes (:func:`raw_planes`, :func:`assemble`), ``None``: never stopped.
    ``names`` (of :data:`STACK`): only those planes, in that order, ``(len(names), H, W)``, and only the
    raw planes they read are made (a model reads a few of the features: its map then costs a fraction
    of the whole stack's time and memory; each plane holds the same values as in the whole stack)."""
    photo = photo or photo_stats(before, after)
    if photo_sigma is None:
        photo_sigma = photo_noise(noise_sigma)
    if names is None:
        return assemble(raw_planes(before, after, noise_sigma=noise_sigma, airlight=photo.airlight,
                                   progress=progress),
                        severity, severity_after, photo, spread, photo_spread, photo_sigma, progress=progress)
    shape = tuple(np.shape(before)[:2])
    raw = _Planes(_raw_makers(before, after, noise_sigma, photo.airlight))
    makers = _feature_makers(raw, shape, severity, severity_after, photo, spread, photo_spread, photo_sigma)
    return _planes([makers[name] for name in names], shape, progress)


def absolute_error(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The per-pixel error the model predicts: mean over channels of |output − truth|, in
    8-bit levels (HxW float32)."""
    return (np.abs(np.asarray(output, np.float32) - np.asarray(truth, np.float32)).mean(axis=2)
            * np.float32(255.0)).astype(np.float32)


def change_magnitude(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The viewer's change map before this work (the baseline): mean |after − before| over
    channels, in 8-bit levels."""
    return absolute_error(after, before)
