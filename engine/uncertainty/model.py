"""The calibrated uncertainty model: per-pixel features → expected absolute error (8-bit levels).

For each stage kind (and ``"composed"`` / ``"composed:KIND"`` for the whole result) the
calibration file holds a linear score over :data:`engine.uncertainty.features.FEATURES` (fitted to
log(1 + |error|) by least squares) and a monotone map from that score to the mean absolute error
observed at it (binned into quantiles of the score, then made non-decreasing: :func:`fit_levels`).
The scores were fitted on synthetic degradations of ``../shared/data/clean`` by
``benchmarks/uncertainty.py fit``; ``benchmarks/uncertainty.py choose`` picked, per kind, the
score by measurement on those training photos among candidate calibrations and refitted its
levels on the rows it judges (a stage's model on that kind's stages, a composed model on the
results its kind dominates, photos through the simulated camera included); ``benchmarks/uncertainty.py
extend`` then added to the low-light and rain models, by the held-out training measure, terms for
errors that scale with the brightness (haze kept its model: no term helped there), and offered each
haze, low-light and rain model the spread of a parameter-perturbation ensemble
(``engine/uncertainty/ensemble.py``), kept where the same measure says so; ``benchmarks/uncertainty.py
whole`` refitted the haze, low-light and rain models' levels (and, where the training measure chose
it, one whole-photo term) on whole training photos; ``benchmarks/uncertainty.py noise`` refitted the
composed result's noise model on training photos through the simulated camera at noise levels from
weak to strong (so a moderately noisy camera photo is not judged at strong synthetic noise's level);
``benchmarks/uncertainty.py noise-left`` refitted the noise *stage* model's levels (its score unchanged)
on the training rows whose error is that stage's to fix (photos degraded by noise: synthetic and the
simulated camera), a stage's map saying how sure that stage's change is. Validated on held-out
photos and on the real pairs (``benchmarks/results/uncertainty.md``). A calibration may also hold an
``untouched`` model for a result equal to its input where nothing is found (``benchmarks/uncertainty.py
untouched``); the committed one holds none (its validation gate failed: on photos whose damage the analysis
misses it hid error the composed model flags).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD
from ..progress import Progress
from .ensemble import parameter_spread, spread_rows
from .features import FEATURES, STACK, feature_stack, photo_noise, photo_stats
from .left import LEFT_KINDS, LeftTerm, highlight

#: The features that need the parameter-perturbation ensemble (computed only for a model that reads them).
SPREAD_FEATURES = ("ensemble_spread", "photo_ensemble_spread")

#: Where the committed calibration lives (``models/``: shipped in the wheel like the ranking).
CALIBRATION_NAME = "uncertainty-calibration.json"

#: Rows per band when predicting (bounded memory), and the rows of context each band borrows
#: from its neighbours (≥ the feature window), so bands join without seams.
BAND_ROWS = 512
BAND_MARGIN = 16

#: The name of the model for the composed result (all stages together).
COMPOSED = "composed"
#: The name of the model for a result the restoration left unchanged (no stage kept, or every strength 0)
#: where the analysis finds nothing: nothing there was invented, so the only error is a degradation the
#: analysis missed (``benchmarks/uncertainty.py untouched``: fitted on training photos that are clean, and
#: on degraded ones whose degradation went unfound). A kind found and left unfixed keeps its own model.
UNTOUCHED = "untouched"
#: Below this analysed severity (0..1) a kind counts as not found (the analysis' presence threshold).
UNTOUCHED_BELOW = DEFAULT_PRESENCE_THRESHOLD


def unchanged(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether ``after`` equals ``before`` at every pixel (same shape, HxWx3): compared band by band,
    stopping at the first band that differs (a restored photo differs in its first)."""
    if before.shape != after.shape:
        return False
    return all(np.array_equal(before[top:top + BAND_ROWS], after[top:top + BAND_ROWS])
               for top in range(0, before.shape[0], BAND_ROWS))


@dataclass(frozen=True)
class KindModel:
    """One kind's fitted model: ``coef`` (1 + len(FEATURES)) and the monotone map
    ``knots_score`` (increasing) → ``knots_levels`` (non-decreasing, 8-bit levels)."""

    coef: np.ndarray
    knots_score: np.ndarray
    knots_levels: np.ndarray

    def score(self, stack: np.ndarray) -> np.ndarray:
        """The linear score of a whole :func:`.features.feature_stack` (all of :data:`.features.STACK`)."""
        return np.tensordot(self.coef.astype(np.float32), stack, axes=1)

    @property
    def used(self) -> tuple[str, ...]:
        """The names (of :data:`.features.STACK`) of the planes the score weighs (a non-zero coefficient)."""
        return tuple(STACK[i] for i in np.flatnonzero(self.coef))

    def score_used(self, stack: np.ndarray) -> np.ndarray:
        """The score from a stack of the :attr:`used` planes only, in that order (the same score as
        :meth:`score` of the whole stack, summed over fewer terms)."""
        return np.tensordot(self.coef[np.flatnonzero(self.coef)].astype(np.float32), stack, axes=1)

    @property
    def uses_spread(self) -> bool:
        """Whether the score reads the parameter-perturbation ensemble (``engine.uncertainty.ensemble``)."""
        idx = [1 + FEATURES.index(n) for n in SPREAD_FEATURES]
        return bool(np.any(self.coef[idx] != 0.0))

    def levels(self, score: np.ndarray) -> np.ndarray:
        return np.interp(score, self.knots_score, self.knots_levels).astype(np.float32)

    def to_dict(self) -> dict:
        return {"coef": [round(float(c), 6) for c in self.coef],
                "knots_score": [round(float(v), 6) for v in self.knots_score],
                "knots_levels": [round(float(v), 4) for v in self.knots_levels]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "KindModel":
        coef = np.asarray(d["coef"], np.float64)
        if coef.shape != (1 + len(FEATURES),):
            raise ValueError(f"uncertainty calibration: expected {1 + len(FEATURES)} coefficients, got {coef.shape}")
        ks, kl = np.asarray(d["knots_score"], np.float64), np.asarray(d["knots_levels"], np.float64)
        if ks.shape != kl.shape or ks.size < 2 or np.any(np.diff(ks) < 0) or np.any(np.diff(kl) < 0):
            raise ValueError("uncertainty calibration: knots must be two non-decreasing lists of equal length")
        return cls(coef, ks, kl)


class UncertaintyModel:
    """Model name → :class:`KindModel`: a stage kind (``"noise"``), the composed result
    (``"composed"``) or the composed result of a photo dominated by a kind (``"composed:noise"``);
    names not fitted use the ``composed`` model; a result equal to its input where nothing is found is judged
    by the ``untouched`` model where the calibration holds one (:meth:`judge`). ``left``: kind →
    :class:`LeftTerm`, the composed map's term for that kind found in the result and fixed by no kept stage
    (:mod:`.left`)."""

    def __init__(self, kinds: Mapping[str, KindModel], meta: Optional[dict] = None,
                 left: Optional[Mapping[str, LeftTerm]] = None) -> None:
        if COMPOSED not in kinds:
            raise ValueError("uncertainty calibration needs a 'composed' model")
        if set(left or {}) - set(LEFT_KINDS):
            raise ValueError(f"uncertainty calibration: terms for kinds left unfixed only for {LEFT_KINDS}")
        self.kinds = dict(kinds)
        self.meta = dict(meta or {})
        self.left = dict(left or {})

    def for_kind(self, kind: Optional[str]) -> KindModel:
        return self.kinds.get(kind or COMPOSED, self.kinds[COMPOSED])

    def judge(self, kind: Optional[str], before: np.ndarray, after: np.ndarray, severity: float) -> Optional[str]:
        """The model name that judges ``after`` (the output of ``before``) for ``kind``: :data:`UNTOUCHED`
        when the calibration holds it, ``severity`` (the analysed severity of ``kind`` at the input, 0..1;
        for the composed result the largest of the kinds found, else of all kinds) is below
        :data:`UNTOUCHED_BELOW` and ``after`` equals ``before`` (:func:`unchanged`); else ``kind``."""
        if UNTOUCHED in self.kinds and severity < UNTOUCHED_BELOW and unchanged(before, after):
            return UNTOUCHED
        return kind

    def predict(self, before: np.ndarray, after: np.ndarray, kind: Optional[str] = None, *,
                noise_sigma=None, severity: float = 0.0, severity_after: float = 0.0, step: int = 1,
                left: Optional[Mapping[str, float]] = None, progress: Optional[Progress] = None) -> np.ndarray:
        """Expected absolute error of ``after`` per pixel, in 8-bit levels (HxW float32, ≥ 0).

        ``before``/``after``: the input and output of a stage (``kind``) or of the whole
        restoration (``kind=None``), HxWx3 in [0, 1]; ``noise_sigma``: the analysed noise level
        in [0, 1] units (number, per channel or per pixel); ``severity``: the analysed severity
        of the kind at the input (for the composed result: the largest of all kinds) and
        ``severity_after`` at the output. ``step`` (≥ 1): only every ``step``-th pixel each way,
        ``ceil(H/step) x ceil(W/step)``, each the full-resolution map's value at that pixel (the
        features are computed at full resolution; a map computed on a subsampled photo reads its
        texture and noise differently and says another fraction is uncertain). ``left``: for the
        composed result, the kinds found in it that no kept stage fixed (:func:`.left.left_unfixed`);
        each with a term in :attr:`left` raises the map by it. An ``after`` equal to ``before`` where
        nothing is found is judged by the ``untouched`` model whatever ``kind`` (:meth:`judge`).
        ``progress``: checked before each band and between its feature planes (:func:`.features.feature_stack`);
        its :class:`engine.errors.Cancelled` stops the map midway (``None``: runs to the end)."""
        kind = self.judge(kind, before, after, severity)
        m = self.for_kind(kind)
        photo = photo_stats(before, after)  # whole-photo levels, the same for every band
        h = before.shape[0]
        spread, photo_spread = None, 0.0
        if m.uses_spread:  # the ensemble on a small copy, once per photo, resized band by band
            spread = parameter_spread(before, after, (kind or "").split(":")[-1], severity=severity)
            photo_spread = 0.0 if spread is None else float(spread.mean())
        sigma = np.asarray(noise_sigma, np.float32) if noise_sigma is not None else None
        sigma_photo = photo_noise(sigma)  # whole-photo level, the same for every band
        per_pixel = sigma is not None and sigma.ndim >= 2 and sigma.shape[:2] == before.shape[:2]
        step = max(int(step), 1)
        out = np.empty((-(-h // step), -(-before.shape[1] // step)), np.float32)
        for top in range(0, h, BAND_ROWS):  # in bands: the feature planes of a whole large photo would not fit
            first = -(-top // step) * step  # the band's first row on the grid
            stop = min(top + BAND_ROWS, h)
            if first >= stop:
                continue
            if progress is not None:
                progress.check()
            a, b = max(top - BAND_MARGIN, 0), min(top + BAND_ROWS + BAND_MARGIN, h)
            stack = feature_stack(before[a:b], after[a:b], noise_sigma=sigma[a:b] if per_pixel else sigma,
                                  severity=severity, severity_after=severity_after, photo=photo,
                                  spread=None if spread is None else spread_rows(spread, before.shape[:2], a, b),
                                  photo_spread=photo_spread, photo_sigma=sigma_photo, progress=progress,
                                  names=m.used)
            if step == 1:
                out[top:stop] = m.levels(m.score_used(stack))[top - a:stop - a]
            else:
                grid = stack[:, first - a:stop - a:step, ::step]
                out[first // step:first // step + grid.shape[1]] = m.levels(m.score_used(grid))
        if progress is not None:
            progress.check()
        return self.with_left(out, after, left, step)

    def with_left(self, levels: np.ndarray, after: np.ndarray, left: Optional[Mapping[str, float]],
                  step: int = 1) -> np.ndarray:
        """``levels`` (the composed map of ``after`` on every ``step``-th pixel) raised by the terms of
        the kinds in ``left`` (found in ``after``, fixed by no kept stage) that :attr:`left` holds."""
        terms = [self.left[k] for k in (left or {}) if k in self.left]
        if not terms:
            return levels
        hl = highlight(after)  # the whole photo's, the same for every band
        for top in range(0, levels.shape[0], BAND_ROWS):
            rows = slice(top, min(top + BAND_ROWS, levels.shape[0]))
            grid = after[rows.start * step:rows.stop * step:step, ::step]
            for t in terms:
                levels[rows] = t.apply(levels[rows], grid, hl)
        return levels

    def to_json(self) -> str:
        d = {"features": list(FEATURES), "meta": self.meta,
             "kinds": {k: m.to_dict() for k, m in sorted(self.kinds.items())}}
        if self.left:
            d["left"] = {k: t.to_dict() for k, t in sorted(self.left.items())}
        return json.dumps(d, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "UncertaintyModel":
        d = json.loads(text)
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError("uncertainty calibration was fitted on other features; "
                             "re-run benchmarks/uncertainty.py fit")
        return cls({k: KindModel.from_dict(v) for k, v in d["kinds"].items()}, d.get("meta"),
                   {k: LeftTerm.from_dict(v) for k, v in d.get("left", {}).items()})


@functools.lru_cache(maxsize=1)
def default_model() -> UncertaintyModel:
    """The committed calibration (``models/uncertainty-calibration.json``)."""
    from ..assets import models_dir

    return UncertaintyModel.from_json((models_dir() / CALIBRATION_NAME).read_text(encoding="utf-8"))


def fit_kind(stacks: list[np.ndarray], errors: list[np.ndarray], *, knots: int = 48,
             ridge: float = 1e-3) -> KindModel:
    """Fit one kind's model on feature stacks ``(F, N)`` (pixels sampled from the training photos)
    and their absolute errors ``(N,)`` in 8-bit levels."""
    x = np.concatenate(stacks, axis=1).astype(np.float64)
    y = np.concatenate(errors).astype(np.float64)
    t = np.log1p(y)
    a = x @ x.T + ridge * len(y) * np.diag([0.0] + [1.0] * (x.shape[0] - 1))
    coef = np.linalg.solve(a, x @ t)
    return fit_levels(coef, coef @ x, y, knots=knots)


def fit_levels(coef: np.ndarray, score: np.ndarray, errors: np.ndarray, *, knots: int = 48) -> KindModel:
    """The model of score ``coef`` whose monotone map takes a score to the mean absolute error
    (8-bit levels) observed at it: ``score`` and ``errors`` ``(N,)`` of pixels sampled from the
    photos the levels are fitted on, binned into ``knots`` quantiles of the score, then made
    non-decreasing (so the reliability by decile is on the diagonal on those photos)."""
    score, y = np.asarray(score, np.float64), np.asarray(errors, np.float64)
    qs = np.quantile(score, np.linspace(0.0, 1.0, knots + 1))
    centres, means = [], []
    idx = np.clip(np.searchsorted(qs, score, side="right") - 1, 0, knots - 1)
    for b in range(knots):
        sel = idx == b
        if sel.any():
            centres.append(float(np.median(score[sel])))
            means.append(float(y[sel].mean()))
    if len(centres) < 2:  # a constant score: one level, the mean error
        centres, means = [centres[0] - 1.0, centres[0]], [means[0], means[0]]
    centres_a = np.maximum.accumulate(np.asarray(centres))
    means_a = _pool_adjacent(np.asarray(means))
    return KindModel(np.asarray(coef, np.float64), centres_a, means_a)


def _pool_adjacent(values: np.ndarray) -> np.ndarray:
    """Isotonic (non-decreasing) regression of equally weighted values (pool adjacent violators)."""
    blocks: list[list[float]] = []
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, n2 = blocks.pop()
            v1, n1 = blocks.pop()
            blocks.append([(v1 * n1 + v2 * n2) / (n1 + n2), n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, n in blocks])
