"""Run a plan on one image, keep every stage's output, and compose strengths cheaply.

Composition model: stage k runs on the full-strength output of the stages before it, and its
change ``delta_k = out_k - in_k`` is cached. The composed image for strengths ``s`` is

    x + sum_k s_k * delta_k        (clipped to [0, 1])

so all strengths at 1 give the full chain's output, a strength of 0 removes exactly that
stage's change, and moving a slider costs one weighted sum — never a network run. The preview
and the exported file use the same function, so they match.

A conditioned generalist (told per kind what to remove) is also split by kind: for each kind
k it was told, ``share_k`` = its output − its output when told everything but k. Its term
becomes ``s_gen · (delta_gen − Σ_k (1 − s_k) · share_k)``, so a kind's slider scales the
generalist's work on that kind as well as the kind's own specialist stage; with one kind told,
``share_k`` is the whole change and the term is ``s_gen · s_k · delta_gen``.

An expert whose strength is a physical parameter (``info.sigma_strength``: FFDNet removes noise
of σ·s, it is not blended) is run once per knot of :data:`SIGMA_STRENGTH_KNOTS` (0.5 and 1),
and its term is the piecewise-linear interpolation through (0, 0), (0.5, delta_0.5),
(1, delta_1): exact at the knots, never a network run when the slider moves. The next stage
sees the full-strength output, as for every stage.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from ..analysis.jpeg_tables import JpegQuantisation, JpegSource, with_file_evidence
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport
from ..errors import Cancelled, RestoraError
from ..experts.base import SIGMA_STRENGTH_KNOTS, Backend, ExpertContext, ExpertRegistry
from ..kinds import GENERALIST, KINDS, NOISE
from ..progress import Progress
from .cache import StageCache, chain_key, image_key
from .plan import Plan, Stage

log = logging.getLogger(__name__)

Analyser = Callable[[np.ndarray], DegradationReport]

#: A stage chosen by the analysis must lower its own kind's severity by at least this much
#: without raising the other kinds' by more (or lower the summed severity of all kinds by this
#: much) to stay in the result.
MIN_IMPROVEMENT = 0.01

#: A stage of NOISE_MUST_NOT_RISE whose output's fine-scale noise σ (``nlf_fine_255``) exceeds its
#: input's by this factor and by NOISE_AMPLIFICATION_MIN_255 8-bit levels is dropped: it sharpened
#: noise (a deblurrer "fixing" a noisy photo lowers the blur severity while doing so). Low light is
#: judged so too: brightening a dark but well-exposed real scene cost 28 dB (a DSLR crop of a dark
#: room, read lowlight 0.96); dehazing amplifies noise by design and is not.
NOISE_MUST_NOT_RISE = frozenset({"blur", "jpeg", "lowlight"})
NOISE_AMPLIFICATION = 1.25
NOISE_AMPLIFICATION_MIN_255 = 0.2

#: A kind the user explicitly asks to fix is passed to a conditioned generalist with at least
#: this strength, even when the analysis rates it lower.
MIN_TOLD_STRENGTH = 0.3


def default_analyser(image: np.ndarray, *, iso: Optional[float] = None,
                     exposure_s: Optional[float] = None) -> DegradationReport:
    """Hand-made analysis combined with the bundled network where it is installed; ``iso`` and
    ``exposure_s`` (EXIF) are a prior on the noise level."""
    from ..analysis.learned import analyse_default

    return analyse_default(image, iso=iso, exposure_s=exposure_s)


#: Stages whose expert is told the analysed noise level (``ExpertContext.noise_sigma``): the
#: denoiser, and the deblurrer (its regularisation grows with the noise).
NOISE_AWARE_STAGES = frozenset({"noise", "blur"})


@dataclass
class StageResult:
    """A stage's cached outcome.

    ``delta`` = full-strength output − input (float32, same shape as the image); ``None`` when
    the stage was dropped or skipped. ``knot_deltas``: for an expert whose strength is a physical
    parameter, ``{strength: change at that strength}`` for the knots below 1 (``delta`` is the
    change at 1). ``before``/``after``: severities ``{kind: 0..1}`` of its
    input and output when the stage was assessed (empty otherwise); ``output_report``: the
    analysis of its full-strength output (the next stage's input). ``kind_shares``: for a
    conditioned generalist, ``{kind: share of delta due to that kind}`` (see the module docs).
    ``handled_by``: the stage name (``"generalist"``) whose share for this kind stands in for a
    specialist that was skipped because that stage already fixed the kind.
    """

    name: str
    expert_id: str
    key: str
    delta: Optional[np.ndarray]
    seconds: float
    dropped: bool = False
    reason: str = ""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    output_report: Optional[DegradationReport] = None
    model_id: Optional[str] = None
    kind_shares: dict[str, np.ndarray] = field(default_factory=dict)
    handled_by: Optional[str] = None
    knot_deltas: dict[float, np.ndarray] = field(default_factory=dict)

    def to_dict(self, strength: float) -> dict:
        return {"stage": self.name, "expert": self.expert_id, "model": self.model_id,
                "strength": round(float(strength), 3),
                "dropped": self.dropped, "reason": self.reason, "seconds": round(self.seconds, 3),
                "severity_before": self.before, "severity_after": self.after, "handled_by": self.handled_by}


class RestorationSession:
    """One photo's restoration state: the input, its report, and cached stage results.

    Thread-safety: ``run`` is meant for one worker thread at a time; ``compose`` may be called
    from another thread while no ``run`` is in progress on the same plan.
    """

    def __init__(
        self,
        image: np.ndarray,
        registry: ExpertRegistry,
        *,
        analyser: Analyser = default_analyser,
        device: str = "cpu",
        tile: Optional[int] = None,
        assess: bool = True,
        cache: Optional[StageCache] = None,
        jpeg: Optional[JpegQuantisation] = None,
    ) -> None:
        """``jpeg``: the quantisation of the JPEG file ``image`` is the decoding of (``Photo.jpeg``);
        the JPEG verdict then comes from the file's tables and experts get them as
        ``ExpertContext.jpeg``."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        self.image = np.ascontiguousarray(image, dtype=np.float32)
        self.registry = registry
        self.analyser = analyser
        self.device = device
        self.tile = tile
        self.assess = assess
        self.cache: StageCache = cache if cache is not None else StageCache()
        self.jpeg = JpegSource(jpeg, self.image) if jpeg is not None else None
        self.base_key = image_key(self.image) + (f"-q{jpeg.tables_key()}" if jpeg is not None else "")
        self._report: Optional[DegradationReport] = None
        self._results: list[StageResult] = []
        self._lock = threading.Lock()
        self.expert_runs = 0
        self._subsampled: dict[int, tuple[tuple, tuple[np.ndarray, list[tuple[str, Optional[str], np.ndarray]]]]] = {}
        #: An automatic specialist is skipped when its kind's severity at its input is below this.
        self.skip_below = DEFAULT_PRESENCE_THRESHOLD

    # -- analysis ---------------------------------------------------------------------------
    def analyse(self) -> DegradationReport:
        if self._report is None:
            report = self.analyser(self.image)
            self._report = with_file_evidence(report, self.jpeg.quantisation) if self.jpeg else report
        return self._report

    @property
    def report(self) -> DegradationReport:
        return self.analyse()

    # -- running ----------------------------------------------------------------------------
    def run(self, plan: Plan, progress: Optional[Progress] = None) -> list[StageResult]:
        """Run (or fetch from the cache) every stage of ``plan``; returns their results in order.

        Each stage sees the analysis of its own input (RAR: restore, assess, repeat), so a
        specialist chosen automatically is skipped when earlier stages already fixed its kind,
        and dropped when it did not make the photo better. Raises
        :class:`engine.errors.Cancelled` if ``progress``'s token is cancelled.
        """
        progress = progress or Progress()
        input_report = self.analyse()
        results: list[StageResult] = []
        current = self.image
        key = self.base_key
        n = max(len(plan.stages), 1)
        for i, stage in enumerate(plan.stages):
            expert = self.registry.get(stage.expert_id)
            severity, measurements = self._stage_inputs(input_report, stage)
            told = self._generalist_strengths(input_report, plan) if stage.name == GENERALIST else {}
            judged = self.assess and stage.auto
            params = {"severity": round(severity, 3), "assess": judged, "model": expert.info.model_id or "",
                      "strengths": told}
            stage_key = chain_key(key, expert.info.id, expert.info.version, params)
            sub = progress.sub(i / n, (i + 1) / n, f"{stage.name}: {expert.info.name}")
            result = self.cache.get(stage_key)
            if result is None:
                sub(0.0)
                if judged and stage.name != GENERALIST and severity < self.skip_below:
                    handled = next((r.name for r in results if not r.dropped and stage.name in r.kind_shares), None)
                    reason = (f"handled by the generalist ({stage.name} severity {severity:.2f} after it);"
                              f" this strength scales its {stage.name} removal" if handled else
                              f"nothing left to fix: {stage.name} severity {severity:.2f} after the earlier stages")
                    result = StageResult(stage.name, expert.info.id, stage_key, None, 0.0, dropped=True,
                                         reason=reason, output_report=input_report, model_id=expert.info.model_id,
                                         handled_by=handled)
                else:
                    noise_sigma = self._noise_sigma(current, input_report) if stage.name in NOISE_AWARE_STAGES \
                        else None
                    result = self._run_with_fallback(stage, expert, current, severity, measurements, told,
                                                     stage_key, sub.sub(0.0, 0.5 if told else 0.9),
                                                     noise_sigma=noise_sigma)
                    if judged and not result.dropped:
                        self._judge(result, stage, input_report)
                    if told and not result.dropped and result.expert_id == expert.info.id \
                            and expert.info.conditioned:
                        self._split_by_kind(result, expert, current, told, sub.sub(0.5, 0.9))
                self.cache.put(stage_key, result)
                sub(1.0)
            results.append(result)
            if not result.dropped:
                current = np.clip(current + result.delta, 0.0, 1.0)
                key = stage_key
                input_report = result.output_report or self.analyser(current)
        progress.check()  # a run cancelled after its last stage leaves the shown results as they were
        with self._lock:
            self._results = results
        progress(1.0)
        return results

    @staticmethod
    def _noise_sigma(image: np.ndarray, report: DegradationReport) -> Optional[np.ndarray]:
        """The noise level the analysis measured on ``image`` as ``ExpertContext.noise_sigma``
        (a per-pixel HxWx3 map, per channel for very large photos; ``None`` if not measured)."""
        from ..analysis.noise_level import noise_sigma_for

        a = report.kinds.get(NOISE)
        return None if a is None else noise_sigma_for(image, dict(a.measurements))

    def _run_with_fallback(self, stage: Stage, expert, current: np.ndarray, severity: float,
                           measurements: Mapping[str, float], strengths: Mapping[str, float], stage_key: str,
                           progress: Progress, noise_sigma: Optional[np.ndarray] = None) -> StageResult:
        """Run the stage's expert; if a neural expert fails here (weights missing, damaged or not
        an image model, device failure, out of memory at the smallest tile, any error of its
        runtime), run the classical expert for the same kind instead and say so in the result's
        ``reason``; with no classical expert for the kind the stage is skipped, also with a
        reason. A failing expert fails its stage only, never the photo or the batch."""
        try:
            return self._run_stage(stage, expert, current, severity, measurements, strengths, stage_key, progress,
                                   noise_sigma)
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001 - whatever a model does wrong, it fails its stage only
            if expert.info.backend is Backend.CLASSICAL:
                raise
            why = " ".join(str(err).split())[:300] or type(err).__name__
            if not isinstance(err, RestoraError):
                why = f"{type(err).__name__}: {why}"
            fallback = next((e for e in self.registry.for_task(stage.name)
                             if e.info.backend is Backend.CLASSICAL and e is not expert), None)
            if fallback is None:
                log.warning("%s could not run (%s); %s skipped", expert.info.id, why, stage.name)
                return StageResult(stage.name, expert.info.id, stage_key, None, 0.0, dropped=True,
                                   reason=f"{expert.info.id} could not run ({why}); no classical expert for "
                                          f"{stage.name}, stage skipped", model_id=expert.info.model_id)
            log.warning("%s could not run (%s); using %s instead", expert.info.id, why, fallback.info.id)
            result = self._run_stage(stage, fallback, current, severity, measurements, strengths, stage_key,
                                     progress, noise_sigma)
            result.reason = f"{expert.info.id} could not run ({why}); used {fallback.info.id}"
            return result

    def _run_stage(self, stage: Stage, expert, current: np.ndarray, severity: float,
                   measurements: Mapping[str, float], strengths: Mapping[str, float], stage_key: str,
                   progress: Progress, noise_sigma: Optional[np.ndarray] = None) -> StageResult:
        t0 = time.perf_counter()
        knots = SIGMA_STRENGTH_KNOTS if expert.info.sigma_strength else (1.0,)
        deltas: dict[float, np.ndarray] = {}
        notes: list[str] = []
        for i, knot in enumerate(knots):
            ctx = ExpertContext(severity=severity, measurements=measurements, strengths=strengths,
                                progress=progress.sub(i / len(knots), (i + 1) / len(knots)),
                                device=self.device, tile=self.tile, strength=knot, jpeg=self.jpeg,
                                noise_sigma=noise_sigma)
            out = expert.run(current, ctx)
            notes = ctx.notes
            self.expert_runs += 1
            if out.shape != current.shape:
                raise ValueError(f"expert {expert.info.id} changed the image size {current.shape} → {out.shape}")
            out = np.clip(out.astype(np.float32), 0.0, 1.0)
            deltas[knot] = out - current
        full = deltas.pop(1.0)
        return StageResult(stage.name, expert.info.id, stage_key, full, time.perf_counter() - t0,
                           output_report=self.analyser(current + full), model_id=expert.info.model_id,
                           knot_deltas=deltas, reason="; ".join(notes))

    def _stage_inputs(self, report: DegradationReport, stage: Stage) -> tuple[float, Mapping[str, float]]:
        if stage.name == GENERALIST:
            return max((report.severity(k) for k in KINDS), default=0.0), {}
        a = report.kinds.get(stage.name)
        return (0.0, {}) if a is None else (float(a.severity), dict(a.measurements))

    def _split_by_kind(self, result: StageResult, expert, current: np.ndarray, told: Mapping[str, float],
                       progress: Progress) -> None:
        """Fill ``result.kind_shares`` for a conditioned generalist: one extra run per told kind
        when it was told several (told one, the share is the whole change)."""
        if len(told) == 1:
            result.kind_shares = {next(iter(told)): result.delta}
            return
        full = current + result.delta
        for i, kind in enumerate(told):
            ctx = ExpertContext(strengths={k: v for k, v in told.items() if k != kind}, device=self.device,
                                tile=self.tile, progress=progress.sub(i / len(told), (i + 1) / len(told)))
            without = np.clip(expert.run(current, ctx).astype(np.float32), 0.0, 1.0)
            self.expert_runs += 1
            result.kind_shares[kind] = full - without

    def _generalist_strengths(self, report: DegradationReport, plan: Plan) -> dict[str, float]:
        """What a conditioned generalist is told to remove, ``{kind: strength 0..1}``: the analysed
        severity of every kind the plan restores (at least :data:`MIN_TOLD_STRENGTH` for a kind the
        user asked for that the analysis rates lower); with no kind in the plan (``--only
        generalist``), every kind the analysis finds. Kinds not named are left alone."""
        planned = [s for s in plan.stages if s.name in KINDS]
        if not planned:
            return {k: round(report.severity(k), 2) for k in report.present(self.skip_below)}
        return {s.name: round(max(report.severity(s.name), 0.0 if s.auto else MIN_TOLD_STRENGTH), 2)
                for s in planned}

    def _judge(self, result: StageResult, stage: Stage, input_report: DegradationReport) -> None:
        """Drop the stage if it did not make the photo better by the analyser's measure: a
        specialist must lower its own kind's severity without raising the others' by more, or
        lower the summed severity of all kinds; the generalist must lower the sum."""
        before, after = input_report.severities(), result.output_report.severities()
        result.before, result.after = before, after
        amplified = self._amplified_noise(input_report, result.output_report) \
            if stage.name in NOISE_MUST_NOT_RISE else None
        if amplified is not None:
            result.dropped = True
            result.delta = None
            result.reason = f"did not help: it amplified the noise ({amplified})" + (
                f"; {result.reason}" if result.reason else "")
            return
        total_gain = sum(before.values()) - sum(after.values())
        if stage.name == GENERALIST:
            improved = total_gain >= MIN_IMPROVEMENT
            was, now = sum(before.values()), sum(after.values())
        else:
            own_gain = before[stage.name] - after[stage.name]
            # fixing its own kind counts only if it did not make the other kinds worse by more
            improved = (own_gain >= MIN_IMPROVEMENT and total_gain >= 0.0) or total_gain >= MIN_IMPROVEMENT
            was, now = before[stage.name], after[stage.name]
        if not improved:
            result.dropped = True
            result.delta = None
            worse = sorted((k for k in after if after[k] - before[k] >= 0.05 and k != stage.name),
                           key=lambda k: before[k] - after[k])
            result.reason = f"did not help: {stage.name} severity {was:.2f} → {now:.2f}" + (
                f", but {', '.join(f'{k} {before[k]:.2f} → {after[k]:.2f}' for k in worse)}"
                if worse and was - now >= MIN_IMPROVEMENT else "") + (f"; {result.reason}" if result.reason else "")

    @staticmethod
    def _amplified_noise(before: DegradationReport, after: DegradationReport) -> Optional[str]:
        """Sharpening noise lowers the blur severity and can fool every severity-based verdict;
        the noise-level function cannot be fooled that way. Returns a description when the
        stage's output has clearly more noise than its input (fine-scale σ up by more than
        :data:`NOISE_AMPLIFICATION` and :data:`NOISE_AMPLIFICATION_MIN_255` levels), else ``None``."""
        b = before.kinds.get(NOISE)
        a = after.kinds.get(NOISE)
        if a is None or b is None:
            return None
        was, now = b.measurements.get("nlf_fine_255"), a.measurements.get("nlf_fine_255")
        if was is None or now is None:
            return None
        if now > was * NOISE_AMPLIFICATION and now - was > NOISE_AMPLIFICATION_MIN_255:
            return f"fine-scale noise σ {was:.1f} → {now:.1f} levels"
        return None

    @property
    def results(self) -> list[StageResult]:
        with self._lock:
            return list(self._results)

    # -- composing --------------------------------------------------------------------------
    def compose(self, strengths: Mapping[str, float],
                region: Optional[tuple[slice, slice]] = None, step: int = 1) -> np.ndarray:
        """The restored image for ``{stage name: strength}`` (missing names count as 1).

        ``region`` (rows, cols) and ``step`` (take every step-th pixel, i.e. the result is
        ``full[rows][::step, cols][::step]``) let a viewer compose only what it shows; the
        default is the whole image. Returns float32 in [0, 1].
        """
        rows, cols = region or (slice(None), slice(None))
        parts = self._parts(step) if step > 1 and (rows.start or 0) % step == 0 and (cols.start or 0) % step == 0 \
            else None
        if parts is not None:  # contiguous subsampled copies: far faster than strided reads
            sl = (slice((rows.start or 0) // step, None if rows.stop is None else -(-rows.stop // step)),
                  slice((cols.start or 0) // step, None if cols.stop is None else -(-cols.stop // step)))
            base, terms = parts
        else:
            sl = (slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step))
            base, terms = self.image, self._terms(self.results)
        out = base[sl].copy()
        for name, weight, array in terms:
            s = weight(strengths)
            if s != 0.0:
                out += np.float32(s) * array[sl]
        np.clip(out, 0.0, 1.0, out=out)
        return out

    @staticmethod
    def _terms(results: list[StageResult]) -> list[tuple[str, Weight, np.ndarray]]:
        """``(stage name, weight, array)`` for every change that composing weighs; ``weight``
        maps the ``{stage name: strength}`` settings to the array's coefficient."""
        terms: list[tuple[str, Weight, np.ndarray]] = []
        for r in results:
            if r.dropped or r.delta is None:
                continue
            if r.knot_deltas:
                knots = sorted(r.knot_deltas) + [1.0]
                arrays = [r.knot_deltas[k] for k in knots[:-1]] + [r.delta]
                terms += [(r.name, _hat_weight(r.name, knots, i), a) for i, a in enumerate(arrays)]
            else:
                terms.append((r.name, _stage_weight(r.name), r.delta))
            terms += [(r.name, _share_weight(r.name, kind), share) for kind, share in r.kind_shares.items()]
        return terms

    def _parts(self, step: int) -> Optional[tuple[np.ndarray, list[tuple[str, Weight, np.ndarray]]]]:
        """The input and the composing terms subsampled by ``step`` (cached per step and result
        set); ``None`` for small images, where strided reads are fast enough."""
        if self.image.size < 3 * 2_000_000:
            return None
        results = [r for r in self.results if not r.dropped and r.delta is not None]
        key = (step, tuple(r.key for r in results))
        with self._lock:
            cached = self._subsampled.get(step)
            if cached is not None and cached[0] == key:
                return cached[1]
        copies: dict[int, np.ndarray] = {}  # a one-kind share is the stage's delta itself: copy it once
        for _, _, a in self._terms(results):
            if id(a) not in copies:
                copies[id(a)] = np.ascontiguousarray(a[::step, ::step])
        parts = (np.ascontiguousarray(self.image[::step, ::step]),
                 [(name, weight, copies[id(a)]) for name, weight, a in self._terms(results)])
        with self._lock:
            self._subsampled[step] = (key, parts)
        return parts

    def change_map(self, strengths: Mapping[str, float], step: int = 1,
                   full_scale: Optional[float] = None) -> np.ndarray:
        """Where the restoration changed the image most: float32 HxW in [0, 1] (mean absolute
        change over channels). ``full_scale``: the change (in [0, 1] pixel units, e.g. 0.1 = a
        tenth of the tonal range) that maps to 1, so a legend can name units; ``None``
        normalises by the map's 99th percentile instead."""
        diff = np.abs(self.compose(strengths, step=step) - self.image[::step, ::step]).mean(axis=2)
        scale = float(full_scale) if full_scale else (float(np.percentile(diff, 99)) or 1.0)
        return np.clip(diff / scale, 0.0, 1.0).astype(np.float32)


#: A composing term's coefficient as a function of the ``{stage name: strength}`` settings.
Weight = Callable[[Mapping[str, float]], float]


def _stage_weight(name: str) -> Weight:
    """A stage's own change: weighed by its strength (missing: 1)."""
    return lambda strengths: float(strengths.get(name, 1.0))


def _share_weight(name: str, kind: str) -> Weight:
    """A kind's share of a conditioned generalist's change: ``-s_gen · (1 - s_kind)``."""
    return lambda strengths: -float(strengths.get(name, 1.0)) * (1.0 - float(strengths.get(kind, 1.0)))


def _hat_weight(name: str, knots: list[float], i: int) -> Weight:
    """Coefficient of the change at ``knots[i]`` in the piecewise-linear interpolation through
    (0, 0) and (knot, change at knot): a hat that is 1 at ``knots[i]`` and 0 at its neighbours."""
    left = knots[i - 1] if i > 0 else 0.0
    here = knots[i]
    right = knots[i + 1] if i + 1 < len(knots) else None

    def weight(strengths: Mapping[str, float]) -> float:
        s = min(max(float(strengths.get(name, 1.0)), 0.0), 1.0)
        if left <= s <= here:
            return (s - left) / (here - left)
        if right is not None and here < s <= right:
            return (right - s) / (right - here)
        return 0.0
    return weight
