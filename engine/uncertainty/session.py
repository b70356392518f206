"""Uncertainty maps of a :class:`engine.pipeline.session.RestorationSession`: per stage and for
the composed result, with the "Caution" blend composed like the strength sliders (cached, so a
slider move costs a weighted sum and a per-pixel blend, never a network run)."""

from __future__ import annotations

import threading
from typing import Mapping, Optional

import numpy as np

from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD as PRESENT
from ..kinds import GENERALIST, KINDS, LOWLIGHT, NOISE
from ..progress import Progress
from .left import left_unfixed
from .model import COMPOSED, UncertaintyModel, default_model, unchanged
from .summary import describe, lean, summarise


def _noise_sigma(image: np.ndarray, report) -> Optional[np.ndarray]:
    """The analysed noise map at the two-scale level the uncertainty model was fitted with
    (``sigma_two_scale_255``, not the σ told to FFDNet)."""
    from ..analysis.noise_level import two_scale_noise_sigma_for

    a = None if report is None else report.kinds.get(NOISE)
    return None if a is None else two_scale_noise_sigma_for(image, dict(a.measurements))


def _severity(report, kind: str) -> float:
    if report is None:
        return 0.0
    if kind in KINDS:
        return float(report.severity(kind))
    return max((float(report.severity(k)) for k in KINDS), default=0.0)


#: Kinds that judge the composed result when found even if their stage was not kept: an exposure
#: left uncorrected is an error over the whole photo that no other kind's model sees. Chosen on the
#: training rows (``benchmarks/uncertainty.py``, whole photos and crops): the pooled ρ of the composed
#: maps over them 0.624 with kept stages first, 0.625 with every kind found, 0.649 with low light only
#: (the real LOL crops' composed row 0.20 → 0.47 with it).
LEFT_IN_RESULT = (LOWLIGHT,)


def composed_choice(model: UncertaintyModel, results, report) -> tuple[str, str]:
    """``(model key, kind)`` for the composed result: the result's error is judged by the kind
    that dominated the photo, the kind with the largest analysed severity at the input among the
    kinds of the kept stages (or, when none was kept, the kinds found) and a low light found
    whose stage was not kept (:data:`LEFT_IN_RESULT`), with the
    model the calibration chose for it (``meta["composed_by"]``, one choice for every kind or a
    ``{kind: choice}`` table: that kind's composed model, its stage model, or one pooled model
    for every kind)."""
    kept = [r.name for r in results if not r.dropped and r.delta is not None and r.name in KINDS]
    if report is None:
        return COMPOSED, ""
    candidates = set(kept) | {k for k in KINDS if report.severity(k) >= PRESENT and (k in LEFT_IN_RESULT or not kept)}
    if not candidates:
        return COMPOSED, ""
    kind = max([k for k in KINDS if k in candidates], key=lambda k: report.severity(k))
    how = model.meta.get("composed_by", "pooled")
    if isinstance(how, dict):
        how = how.get(kind, "pooled")
    if how == "composed_model" and f"{COMPOSED}:{kind}" in model.kinds:
        return f"{COMPOSED}:{kind}", kind
    if how == "stage_model" and kind in model.kinds:
        return kind, kind
    return COMPOSED, ""


def stage_maps(session, results=None, model: Optional[UncertaintyModel] = None,
               uncertainty: Optional["SessionUncertainty"] = None) -> dict[str, np.ndarray]:
    """``{stage name: expected absolute error of its full-strength output}`` (HxW float32, 8-bit
    levels) for every stage that was kept; each stage is judged on its own input (the outputs of
    the stages before it), its kind's model, and the analysis of that input. ``uncertainty``: the
    session's :class:`SessionUncertainty`, whose analysed noise map of the input the first stage
    reuses (else it is read again)."""
    model = model or default_model()
    results = session.results if results is None else results
    current, report = session.image, session.report
    maps: dict[str, np.ndarray] = {}
    for r in results:
        if r.dropped or r.delta is None:
            continue
        after = np.clip(current + r.delta, 0.0, 1.0)
        kind = r.name if r.name in KINDS else None
        name = r.name if r.name != GENERALIST else ""
        first = current is session.image and report is session.report and uncertainty is not None
        sigma = uncertainty.input_noise_sigma() if first else _noise_sigma(current, report)
        maps[r.name] = model.predict(current, after, kind, noise_sigma=sigma,
                                     severity=_severity(report, name), severity_after=_severity(r.output_report, name))
        current, report = after, r.output_report or report
    return maps


class SessionUncertainty:
    """The composed result's uncertainty for any strengths, cached per setting, and the
    Caution blend. Thread-safety as the session's ``compose``.

    ``max_pixels``: compute the map on every ``step``-th pixel so that it has at most this many
    (a viewer's preview: a slider move then costs a screen-sized map, not a 24 MP one; the
    export uses the same map, so the file matches the preview); ``None``: full resolution (the
    CLI's sidecar). The preview map reads its features on the subsampled photo, where texture and
    noise read differently; the summary and its sentence (:meth:`summary`, :meth:`describe`) are
    measured on :meth:`full`, the full-resolution map on the same grid, so the window says what
    the CLI's JSON says of the same photo.

    The methods that make a map take ``progress`` (:class:`engine.progress.Progress`, ``None``: never
    stopped): checked between the map's bands and feature planes, its :class:`engine.errors.Cancelled`
    stops the map midway (a window's newer setting supersedes it) and nothing of it is cached."""

    def __init__(self, session, model: Optional[UncertaintyModel] = None, max_pixels: Optional[int] = None) -> None:
        self.session = session
        self.model = model or default_model()
        h, w = session.image.shape[:2]
        self.step = 1 if not max_pixels else max(1, int(np.ceil(np.sqrt(h * w / float(max_pixels)))))
        self._lock = threading.Lock()
        self._cache: dict[tuple, np.ndarray] = {}
        self._full: dict[tuple, np.ndarray] = {}
        self._sentences: dict[tuple, str] = {}
        #: the analysed noise map of the input, per grid step (1: full resolution; :attr:`step`: the preview's)
        self._sigma: dict[int, Optional[np.ndarray]] = {}
        self._faces: Optional[list[tuple[int, int, int, int]]] = None

    def _key(self, strengths: Mapping[str, float]) -> tuple:
        results = tuple(r.key for r in self.session.results if not r.dropped)
        names = sorted({r.name for r in self.session.results} | set(strengths))
        # a strength composed linearly until its stage's deferred knots land composes differently after
        interim = self.session.knots_pending(strengths)
        return results, tuple((n, round(float(strengths.get(n, 1.0)), 3)) for n in names), interim

    def composed(self, strengths: Mapping[str, float], compute: bool = True,
                 progress: Optional[Progress] = None) -> Optional[np.ndarray]:
        """Expected absolute error of ``session.compose(strengths)`` per pixel (float32, 8-bit
        levels) on every :attr:`step`-th pixel: ``ceil(H/step) x ceil(W/step)``. ``compute=False``:
        only if it is already made for this setting, else ``None`` (a window's paint asks so)."""
        s = self.session
        return self._cached(self._cache, 4, strengths, lambda: self._predict(
            s.image[::self.step, ::self.step], s.compose(strengths, step=self.step), self.step,
            progress=progress), compute)

    def _cached(self, cache: dict, size: int, strengths: Mapping[str, float], make, compute: bool = True):
        """``cache``'s value for ``strengths``, else ``make()`` kept there (at most ``size`` settings),
        or ``None`` when ``compute`` is false. A value made while the session's stages changed (a run
        on another thread) is returned but not kept under the setting's key."""
        key = self._key(strengths)
        with self._lock:
            hit = cache.get(key)
        if hit is not None or not compute:
            return hit
        value = make()
        if self._key(strengths) != key:
            return value
        with self._lock:
            if len(cache) >= size:
                cache.pop(next(iter(cache)))
            cache[key] = value
        return value

    def input_noise_sigma(self, step: int = 1) -> Optional[np.ndarray]:
        """The analysed noise map of the session's input on every ``step``-th pixel (read once, kept)."""
        if step not in self._sigma:
            self._sigma[step] = _noise_sigma(self.session.image[::step, ::step], self.session.report)
        return self._sigma[step]

    def _predict(self, image: np.ndarray, after: np.ndarray, sigma_step: int, step: int = 1,
                 progress: Optional[Progress] = None) -> np.ndarray:
        """The composed model's map of ``after`` against ``image`` (the input subsampled by
        ``sigma_step``, whose noise map is read once and kept), on every ``step``-th pixel."""
        s = self.session
        if progress is not None:
            progress.check()
        results = s.results
        kept = [r for r in results if not r.dropped and r.output_report is not None]
        which, kind = composed_choice(self.model, results, s.report)
        final = kept[-1].output_report if kept else s.report
        left = None if final is None else left_unfixed(
            (r.name for r in results if not r.dropped and r.delta is not None),
            {k: _severity(s.report, k) for k in KINDS}, {k: _severity(final, k) for k in KINDS})
        return self.model.predict(image, after, which, noise_sigma=self.input_noise_sigma(sigma_step),
                                  severity=_severity(s.report, kind), severity_after=_severity(final, kind),
                                  step=step, left=left, progress=progress)

    def compose(self, strengths: Mapping[str, float], caution: float = 0.0,
                region: Optional[tuple[slice, slice]] = None, step: int = 1) -> np.ndarray:
        """``session.compose(strengths, region, step)`` leaned towards the input by ``caution``
        (0..1, :func:`engine.uncertainty.lean`) where the composed result is uncertain."""
        out = self.session.compose(strengths, region=region, step=step)
        if caution <= 0.0:
            return out
        rows, cols = region or (slice(None), slice(None))
        sl = (slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step))
        return lean(self.session.image[sl], out, self.sampled(strengths, region, step), caution)

    def sampled(self, strengths: Mapping[str, float], region: Optional[tuple[slice, slice]] = None,
                step: int = 1) -> np.ndarray:
        """The composed map on the grid ``session.compose(strengths, region, step)`` returns
        (nearest map pixel when the map is coarser than that grid)."""
        return self._on_grid(self.composed(strengths), region, step)

    def _on_grid(self, umap: np.ndarray, region: Optional[tuple[slice, slice]], step: int) -> np.ndarray:
        rows, cols = region or (slice(None), slice(None))
        h, w = self.session.image.shape[:2]
        if self.step == 1:
            return umap[slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step)]
        r = np.arange(*rows.indices(h)[:2], step) // self.step
        c = np.arange(*cols.indices(w)[:2], step) // self.step
        return umap[np.ix_(r, c)]

    def heat(self, strengths: Mapping[str, float], step: int, full_scale: float,
             compute: bool = True) -> Optional[np.ndarray]:
        """The map for display: ``(H/step) x (W/step)`` in [0, 1], 1 = ``full_scale`` levels or more;
        from :meth:`full`, so the overlay shows what the sentence counts and the CLI's sidecar holds.
        ``compute=False`` computes nothing: :meth:`full` when it is made for this setting, else the
        preview map (:meth:`composed`) when that is, else ``None``."""
        umap = self.full(strengths, compute)
        if umap is None:
            umap = self.composed(strengths, compute=False)
        if umap is None:
            return None
        return np.clip(self._on_grid(umap, None, step) / np.float32(full_scale), 0.0, 1.0)

    def faces(self, strengths: Mapping[str, float]) -> list[tuple[int, int, int, int]]:
        """Frontal faces ``(x, y, w, h)`` in the composed result, in the pixels of the map
        (:meth:`composed`'s grid): detected once, on the result at the first ``strengths`` asked
        (a face does not move with a slider), then cached."""
        with self._lock:
            if self._faces is not None:
                return list(self._faces)
        from .faces import detect_faces

        found = detect_faces(self.session.compose(strengths, step=self.step))
        with self._lock:
            self._faces = found
        return list(found)

    def full(self, strengths: Mapping[str, float], compute: bool = True,
             progress: Optional[Progress] = None) -> Optional[np.ndarray]:
        """The composed map as the CLI computes it (features read at full resolution, in bands) on
        :meth:`composed`'s grid: each value the full-resolution map's at that pixel (float32,
        8-bit levels). The same array as :meth:`composed` when :attr:`step` is 1; else it costs
        the full-resolution features once per setting (cached: seconds on a 5 MP photo, so a
        window makes it on a worker thread). ``compute=False``: only if it is already made, else
        ``None``."""
        if self.step == 1:
            return self.composed(strengths, compute, progress)
        s = self.session
        return self._cached(self._full, 2, strengths, lambda: self._predict(
            s.image, s.compose(strengths), 1, step=self.step, progress=progress), compute)

    def summary(self, strengths: Mapping[str, float]) -> dict[str, float]:
        """:func:`engine.uncertainty.summarise` of the composed map (:meth:`full`), with the faces."""
        return summarise(self.full(strengths), faces=self.faces(strengths))

    def describe(self, strengths: Mapping[str, float], compute: bool = True,
                 progress: Optional[Progress] = None) -> Optional[str]:
        """:func:`engine.uncertainty.describe` of the composed map (:meth:`full`) for the analysis
        panel, with the restored photo on the same grid and the faces; cached per setting.
        ``compute=False``: only if it is already made for this setting, else ``None``."""
        s = self.session

        def sentence() -> str:
            levels = self.full(strengths, progress=progress)
            shown = s.compose(strengths, step=self.step)
            return describe(levels, shown, faces=self.faces(strengths),
                            unchanged=unchanged(s.image[::self.step, ::self.step], shown))

        return self._cached(self._sentences, 4, strengths, sentence, compute)
