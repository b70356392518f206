"""One photo's restoration state: run one stage, cache stage outputs, compose strengths cheaply.

Which stages run, and whether a stage's result is kept, dropped or replaced by a fallback, is
decided by :mod:`engine.pipeline.orchestrator` (with plans from :mod:`engine.pipeline.plan`);
this module only runs what it is told, remembers it and composes it.

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
sees the full-strength output, as for every stage. A window sets :attr:`RestorationSession.defer_knots`:
its run computes only the full-strength knot, so the photo is on screen after one network run
instead of two, and :meth:`RestorationSession.complete_knots` runs the others afterwards (until
then that stage composes linearly, ``s * delta_1``; at strengths 0 and 1 both are exact).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from ..analysis.jpeg_grain import with_grain_evidence
from ..analysis.jpeg_tables import JpegQuantisation, JpegSource, with_file_evidence
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport
from ..color import is_neutral, make_neutral
from ..experts.base import SIGMA_STRENGTH_KNOTS, ExpertContext, ExpertRegistry
from ..kinds import JPEG, NOISE
from ..progress import Progress
from .cache import StageCache, chain_key, image_key
from .plan import Plan, Stage
from .spill import Change, ChangeStore, SpilledArray, band_slices

Analyser = Callable[[np.ndarray], DegradationReport]

def default_analyser(image: np.ndarray, *, iso: Optional[float] = None,
                     exposure_s: Optional[float] = None, jpeg_quality: Optional[int] = None) -> DegradationReport:
    """Hand-made analysis combined with the bundled network where it is installed; ``iso`` and
    ``exposure_s`` (EXIF) are a prior on the noise level; ``jpeg_quality`` (the IJG quality of the
    JPEG file the photo decodes) sets how much colour noise in still areas is evidence."""
    from ..analysis.learned import analyse_default

    return analyse_default(image, iso=iso, exposure_s=exposure_s, jpeg_quality=jpeg_quality)


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
    delta: Optional[Change]
    seconds: float
    dropped: bool = False
    reason: str = ""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    output_report: Optional[DegradationReport] = None
    model_id: Optional[str] = None
    kind_shares: dict[str, Change] = field(default_factory=dict)
    handled_by: Optional[str] = None
    knot_deltas: dict[float, Change] = field(default_factory=dict)

    def to_dict(self, strength: float) -> dict:
        return {"stage": self.name, "expert": self.expert_id, "model": self.model_id,
                "strength": round(float(strength), 3),
                "dropped": self.dropped, "reason": self.reason, "seconds": round(self.seconds, 3),
                "severity_before": self.before, "severity_after": self.after, "handled_by": self.handled_by}


@dataclass
class PendingKnots:
    """What :meth:`RestorationSession.complete_knots` needs to run a deferred σ-strength stage at
    its knots below 1: the expert and the context it ran with at full strength (its input is
    recomposed from the stages shown before it, as the orchestrator does for a cached stage)."""

    stage: Stage
    expert: object
    knots: tuple[float, ...]
    severity: float
    measurements: dict
    strengths: dict
    noise_sigma: Optional[np.ndarray]


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
        changes: Optional[ChangeStore] = None,
    ) -> None:
        """``jpeg``: the quantisation of the JPEG file ``image`` is the decoding of (``Photo.jpeg``);
        the JPEG verdict then comes from the file's tables and experts get them as
        ``ExpertContext.jpeg``. ``changes``: for a one-shot restoration (no slider), where the
        full-size stage changes are kept (within a byte budget in memory, the rest on disk:
        :class:`engine.pipeline.spill.ChangeStore`); ``None`` keeps them all in memory."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
        self._image = np.ascontiguousarray(image, dtype=np.float32)
        #: A black-and-white photo (:func:`engine.color.is_neutral`): every stage's output is made
        #: neutral again, so that no expert's colour (a cast, a tint, chroma noise) reaches it.
        self.neutral = is_neutral(self._image)
        #: The input, on disk, while :attr:`_image` holds a stage's output written over it.
        self._input_on_disk: Optional[SpilledArray] = None
        self.registry = registry
        self.analyser = analyser
        self.device = device
        self.tile = tile
        self.assess = assess
        self.cache: StageCache = cache if cache is not None else StageCache()
        self.jpeg = JpegSource(jpeg, self.image) if jpeg is not None else None
        self.base_key = image_key(self.image) + (f"-q{jpeg.tables_key()}" if jpeg is not None else "")
        self._report: Optional[DegradationReport] = None
        self._input_analysis: Optional[DegradationReport] = None
        self._results: list[StageResult] = []
        self._lock = threading.Lock()
        self.changes = changes
        #: A one-shot restoration that needs its input array no more after composing sets this
        #: (``Restorer.restore_photo(consume=True)``): an expert with ``run_in_place`` may then
        #: write a large photo's stage output over its input (see :meth:`run_stage`).
        self.overwrite_input = False
        #: Also drop a stage chosen by the analysis whose result is uncertain for a small gain
        #: (:func:`engine.pipeline.orchestrator.judge_uncertain`; off by default).
        self.drop_uncertain = False
        #: ``(stage key, that stage's input on disk, whether it is the session's input)`` of the
        #: stage that :meth:`run_stage` ran in place last, until :meth:`take_after`.
        self._in_place: Optional[tuple[str, SpilledArray, bool]] = None
        #: ``(stage key, full-strength output)`` of the stage :meth:`run_stage` ran last: the next
        #: stage's input, so that it is not computed (and held) a second time.
        self._after: Optional[tuple[str, np.ndarray]] = None
        self.expert_runs = 0
        #: A one-shot restoration (the CLI, a batch: composed once, at the plan's strengths, no
        #: slider): a stage whose strength is a physical parameter runs only its full-strength knot
        #: when the plan's strength for it is 0 or 1, the only knot that composing then weighs.
        self.one_shot = False
        #: A window: a stage whose strength is a physical parameter runs only its full-strength knot
        #: when the plan runs; :meth:`complete_knots` runs the knots below 1 later (the photo is on
        #: screen after one network run instead of two). Not for a :attr:`one_shot` restoration.
        self.defer_knots = False
        #: ``{stage key: what its deferred knots need}`` (see :meth:`complete_knots`).
        self._pending_knots: dict[str, PendingKnots] = {}
        #: Serialises :meth:`complete_knots` callers (a window's background job and its export).
        self._knots_lock = threading.Lock()
        #: Bumped when deferred knots land: the subsampled copies are made again.
        self.knots_revision = 0
        #: ``(region, result keys) -> {id(change): its crop}`` (see :meth:`_crop`).
        self._crops: dict[tuple, dict[int, np.ndarray]] = {}
        self._subsampled: dict[int, tuple[tuple, tuple[np.ndarray, list[tuple[str, Optional[str], np.ndarray]]]]] = {}
        #: An automatic specialist is skipped when its kind's severity at its input is below this.
        self.skip_below = DEFAULT_PRESENCE_THRESHOLD
        #: Whether a stage after the one :meth:`run_stage` runs next may read the JPEG file's
        #: decoding (:func:`reads_jpeg_decoding`; set per stage by the orchestrator, which knows
        #: the plan). ``True`` (unknown) keeps a JPEG photo's input array from being written over.
        self.decoding_read_later = True

    @property
    def image(self) -> np.ndarray:
        """The input photo (float32 HxWx3 in [0, 1]). After a stage ran in place, it is read back
        from disk into its array first (which then no longer holds that stage's output)."""
        if self._input_on_disk is not None:
            _copy_back(self._input_on_disk, self._image)
            self._input_on_disk.close()
            self._input_on_disk = None
        return self._image

    # -- analysis ---------------------------------------------------------------------------
    def analyse(self) -> DegradationReport:
        """The report the plan starts from: :attr:`analyser`'s report of the input, with the JPEG
        file's own evidence when the photo decodes one: its quantisation tables, and the sensor grain
        its quantised coefficients show (:func:`engine.analysis.jpeg_grain.with_grain_evidence`)."""
        if self._report is None:
            report = self.analyser(self.image)
            self._input_analysis = report
            self._report = with_grain_evidence(with_file_evidence(report, self.jpeg.quantisation), self.jpeg) \
                if self.jpeg else report
        return self._report

    def input_analysis(self) -> Optional[DegradationReport]:
        """:attr:`analyser`'s own report of the input (before :meth:`analyse` adds the file's
        evidence), once :meth:`analyse` has run; else ``None``."""
        return self._input_analysis

    @property
    def report(self) -> DegradationReport:
        return self.analyse()

    # -- running one stage -------------------------------------------------------------------
    def run(self, plan: Plan, progress: Optional[Progress] = None) -> list[StageResult]:
        """Run ``plan`` with the orchestrator's rules: the same as
        :func:`engine.pipeline.orchestrator.run_plan` (``session.run(plan)`` reads better in tests
        and scripts; the rules themselves live in the orchestrator)."""
        from .orchestrator import run_plan

        return run_plan(self, plan, progress)

    def stage_key(self, previous_key: str, expert, params: Mapping) -> str:
        """The cache key of a stage: chained from the key of what it runs on (``previous_key``:
        :attr:`base_key` or the last kept stage's key), the expert's id and version, and the
        ``params`` that change its output."""
        return chain_key(previous_key, expert.info.id, expert.info.version, dict(params))

    def cached(self, key: str) -> Optional[StageResult]:
        """The cached result for a stage key, or ``None``."""
        return self.cache.get(key)

    def store(self, key: str, result: StageResult) -> None:
        self.cache.put(key, result)

    def show(self, results: list[StageResult]) -> None:
        """Make ``results`` (one plan's, in order) what :meth:`compose` and :attr:`results` use."""
        with self._lock:
            self._results = list(results)

    @staticmethod
    def noise_sigma(image: np.ndarray, report: DegradationReport, stage: str = NOISE) -> Optional[np.ndarray]:
        """The noise level the analysis measured on ``image`` as ``ExpertContext.noise_sigma``
        (a per-pixel HxWx3 map, per channel for very large photos; ``None`` if not measured): for the
        noise stage the σ to tell the denoiser (``sigma_told_255``), for another stage (the
        deblurrer's regularisation) the two-scale level it was validated with (``sigma_two_scale_255``)."""
        from ..analysis.noise_level import noise_sigma_for, two_scale_noise_sigma_for

        a = report.kinds.get(NOISE)
        if a is None:
            return None
        return (noise_sigma_for if stage == NOISE else two_scale_noise_sigma_for)(image, dict(a.measurements))

    def run_stage(self, stage: Stage, expert, current: np.ndarray, severity: float,
                  measurements: Mapping[str, float], strengths: Mapping[str, float], stage_key: str,
                  progress: Progress, noise_sigma: Optional[np.ndarray] = None,
                  input_analysis: Optional[DegradationReport] = None) -> StageResult:
        """Run ``expert`` for ``stage`` on ``current`` (the full-strength output of the stages
        before it) and return its uncached, unjudged result with the analysis of its output.
        An expert whose strength is a physical parameter runs once per knot of
        :data:`SIGMA_STRENGTH_KNOTS` (only at 1 in a :attr:`one_shot` session where the stage's
        strength is 0 or 1). ``input_analysis``: this session's :attr:`analyser`'s report of
        ``current`` when it was already made (:meth:`input_analysis`, or the stage before's
        ``output_report``); an expert that returns ``current`` unchanged (a deblurrer that found no
        blur it trusts) then gets it as its output's analysis, the same pixels not analysed twice.
        Raises whatever the expert raises."""
        t0 = time.perf_counter()
        if self._runs_in_place(expert, current, stage):
            return self._run_in_place(stage, expert, current, severity, measurements, strengths, stage_key,
                                      progress, noise_sigma, t0)
        knots = SIGMA_STRENGTH_KNOTS if expert.info.sigma_strength else (1.0,)
        if self.one_shot and stage.strength in (0.0, 1.0):
            knots = (1.0,)
        deferred = knots[:-1] if self.defer_knots and not self.one_shot else ()
        knots = knots[len(deferred):]
        deltas: dict[float, np.ndarray] = {}
        notes: list[str] = []
        unchanged = False
        # Only where stages ran before: the expert may then check its case on the photo as loaded.
        if self._input_on_disk is not None:  # a stage before ran in place: read the photo as loaded back
            original = np.asarray(self._input_on_disk)
        else:
            original = self._image if current.shape == self._image.shape and current is not self._image else None
        original_sigma = self._original_noise(original, noise_sigma, stage.name)
        for i, knot in enumerate(knots):
            out, notes = self._run_at(expert, stage, current, knot, severity, measurements, strengths, noise_sigma,
                                      original, original_sigma, progress.sub(i / len(knots), (i + 1) / len(knots)))
            if knot == 1.0 and input_analysis is not None:
                unchanged = bool(np.array_equal(out, current))
            spill = self.changes.writer(out.shape) if self.changes is not None else None
            if spill is None:
                deltas[knot] = np.subtract(out, current, out=out)
                continue
            # Band by band: the change goes to disk and, at full strength, ``out`` becomes
            # ``current + change`` (the same float32 operations as below, so the same values).
            for band in band_slices(out.shape[0]):
                change = np.subtract(out[band], current[band])
                spill.write_rows(band.start, change)
                if knot == 1.0:
                    np.add(current[band], change, out=out[band])
            deltas[knot] = spill
            after = out
            del out
        full = deltas.pop(1.0)
        if isinstance(full, np.ndarray):
            after = current + full
        else:
            # The analysis clips what it measures (a copy when anything is out of range) and the
            # next stage gets the clipped image: clipping this array of ours first changes neither.
            np.clip(after, 0.0, 1.0, out=after)
        # unchanged: ``after`` holds the pixels of ``current`` (x + 0), whose analysis is known
        report = input_analysis if unchanged else self.analyser(after)
        self._after = (stage_key, after)
        with self._lock:
            if deferred:
                self._pending_knots[stage_key] = PendingKnots(stage, expert, deferred, severity, dict(measurements),
                                                              dict(strengths), noise_sigma)
            else:  # a fallback expert ran under this key
                self._pending_knots.pop(stage_key, None)
        return StageResult(stage.name, expert.info.id, stage_key, full, time.perf_counter() - t0,
                           output_report=report, model_id=expert.info.model_id, knot_deltas=deltas,
                           reason="; ".join(notes))

    def _original_noise(self, original: Optional[np.ndarray], noise_sigma: Optional[np.ndarray],
                        stage_name: str) -> Optional[Callable[[], Optional[np.ndarray]]]:
        """``ExpertContext.original_noise``: the photo as loaded is judged at its own noise level, not
        at the earlier stages' output's; measured once, and only if an expert asks for it."""
        if original is None or noise_sigma is None:
            return None
        return functools.cache(lambda: self.noise_sigma(original, self.analyse(), stage_name))

    def _run_at(self, expert, stage: Stage, current: np.ndarray, knot: float, severity: float,
                measurements: Mapping[str, float], strengths: Mapping[str, float],
                noise_sigma: Optional[np.ndarray], original: Optional[np.ndarray], original_noise,
                progress: Progress) -> tuple[np.ndarray, list[str]]:
        """``expert`` run on ``current`` at strength ``knot``: its output (float32, clipped to [0, 1],
        an array of ours that may be written over) and its notes."""
        ctx = ExpertContext(severity=severity, measurements=measurements, strengths=strengths, progress=progress,
                            device=self.device, tile=self.tile, strength=knot, jpeg=self.jpeg,
                            noise_sigma=noise_sigma, original=original, original_noise=original_noise,
                            requested=not stage.auto)
        out = expert.run(current, ctx)
        self.expert_runs += 1
        if out.shape != current.shape:
            raise ValueError(f"expert {expert.info.id} changed the image size {current.shape} → {out.shape}")
        # in place: a full-size float32 copy less per knot (the expert's output is ours)
        out = out.astype(np.float32, copy=False)
        if not out.flags.writeable or out is current:
            out = out.copy()
        np.clip(out, 0.0, 1.0, out=out)
        if self.neutral:
            make_neutral(out)
        return out, ctx.notes

    def _runs_in_place(self, expert, current: np.ndarray, stage: Stage) -> bool:
        """Whether :meth:`run_stage` writes this stage's output over ``current``: a one-shot
        restoration that gave up its input (:attr:`overwrite_input`), an expert with
        ``run_in_place`` run once (no strength knots: a strength that is a physical parameter
        only where the one-shot stage runs at full strength; no kind split), and a photo too large for the change budget
        (:meth:`~engine.pipeline.spill.ChangeStore.prefers_in_place`: the input and the change
        it would keep beside the output do not fit it). An in-place expert
        gets no ``ExpertContext.original`` (reading the input back would cost the array saved).

        A JPEG photo's input array is also ``ExpertContext.jpeg.decoded``: it is written over only
        where neither this expert nor a later stage (:attr:`decoding_read_later`) reads that
        (:func:`reads_jpeg_decoding`); reading :attr:`image` puts it back."""
        return (self.overwrite_input and self.changes is not None
                and (self.jpeg is None or not (self.decoding_read_later or reads_jpeg_decoding(expert)))
                and getattr(expert, "run_in_place", None) is not None
                and (not expert.info.sigma_strength or (self.one_shot and stage.strength in (0.0, 1.0)))
                and not expert.info.conditioned
                and current.dtype == np.float32 and current.flags.c_contiguous and current.flags.writeable
                and self.changes.prefers_in_place(current.nbytes))

    def _run_in_place(self, stage: Stage, expert, current: np.ndarray, severity: float,
                      measurements: Mapping[str, float], strengths: Mapping[str, float], stage_key: str,
                      progress: Progress, noise_sigma: Optional[np.ndarray], t0: float) -> StageResult:
        """:meth:`run_stage` with the output written over ``current``: its input goes to disk
        first (the change is computed from it band by band, and it is put back if the stage is
        dropped or the expert fails), so one full-size float array is held instead of two. The
        same float32 operations as the other paths, so the same values."""
        parked = self.changes.park(current)
        ctx = ExpertContext(severity=severity, measurements=measurements, strengths=strengths, progress=progress,
                            device=self.device, tile=self.tile, strength=1.0, jpeg=self.jpeg, noise_sigma=noise_sigma,
                            requested=not stage.auto, input_on_disk=parked)
        try:
            out = expert.run_in_place(current, ctx)
            if out is not current:
                raise ValueError(f"expert {expert.info.id} did not write its output in place")
        except BaseException:
            _copy_back(parked, current)
            self.changes.discard(parked)
            raise
        self.expert_runs += 1
        np.clip(current, 0.0, 1.0, out=current)
        if self.neutral:
            make_neutral(current)
        spill = self.changes.writer(current.shape)
        full = spill if spill is not None else np.empty_like(current)
        for band in band_slices(current.shape[0]):
            before = parked.read_rows(band.start, band.stop)
            change = np.subtract(current[band], before)
            if spill is not None:
                spill.write_rows(band.start, change)
            else:
                full[band] = change
            np.add(before, change, out=current[band])
        np.clip(current, 0.0, 1.0, out=current)
        is_input = current is self._image and self._input_on_disk is None
        if is_input:
            self._input_on_disk = parked
        report = self.analyser(current)
        self._after = (stage_key, current)
        self._in_place = (stage_key, parked, is_input)
        return StageResult(stage.name, expert.info.id, stage_key, full, time.perf_counter() - t0,
                           output_report=report, model_id=expert.info.model_id, reason="; ".join(ctx.notes))

    def take_after(self, key: str, kept: bool = True) -> Optional[np.ndarray]:
        """The full-strength output of the stage with cache key ``key`` if :meth:`run_stage`
        ran it last (``current + delta``; already clipped to [0, 1] when the session keeps its
        changes in a :class:`ChangeStore`), else ``None``; forgotten either way.

        ``kept``: whether the stage is kept. A dropped stage that ran in place has its input
        put back into the array it overwrote (the caller's ``current``)."""
        after, self._after = self._after, None
        in_place, self._in_place = self._in_place, None
        if in_place is not None and in_place[0] == key:
            _, parked, is_input = in_place
            if not kept:
                _copy_back(parked, after[1])
                if is_input:
                    self._input_on_disk = None
                self.changes.discard(parked)
                return None
            if not is_input:  # its change is on disk; the input is needed no more
                self.changes.discard(parked)
        return after[1] if after is not None and after[0] == key else None

    def split_by_kind(self, result: StageResult, expert, current: np.ndarray, told: Mapping[str, float],
                      progress: Progress) -> None:
        """Fill ``result.kind_shares`` for a conditioned generalist: one extra run per told kind
        when it was told several (told one, the share is the whole change)."""
        if len(told) == 1:
            result.kind_shares = {next(iter(told)): result.delta}
            return
        # the stage's output as its analysis saw it, unless that was clipped (changes on disk)
        after = self._after[1] if self._after is not None and self._after[0] == result.key \
            and self.changes is None else None
        full = after if after is not None else current + np.asarray(result.delta)
        variants = [{k: v for k, v in told.items() if k != kind} for kind in told]
        batch = getattr(expert, "run_variants", None)
        if batch is not None:  # one batched network call per tile for all kinds
            ctx = ExpertContext(device=self.device, tile=self.tile, progress=progress)
            outputs = batch(current, ctx, variants)
            self.expert_runs += 1
        else:
            outputs = None
        for i, kind in enumerate(told):
            if outputs is None:
                ctx = ExpertContext(strengths=variants[i], device=self.device, tile=self.tile,
                                    progress=progress.sub(i / len(told), (i + 1) / len(told)))
                without = expert.run(current, ctx)
                self.expert_runs += 1
            else:
                without = outputs[i]
            without = np.clip(without.astype(np.float32, copy=False), 0.0, 1.0)
            if self.neutral:
                make_neutral(without)
            share = np.subtract(full, without, out=without)
            result.kind_shares[kind] = share if self.changes is None else self.changes.keep(share)
            del without, share

    # -- deferred knots ----------------------------------------------------------------------
    def knots_pending(self, strengths: Optional[Mapping[str, float]] = None) -> bool:
        """Whether a shown stage still waits for its deferred knots (:attr:`defer_knots`); with
        ``strengths``, only one that they would compose differently: a strength strictly
        between 0 and 1 (missing names count as 1)."""
        with self._lock:
            pending = [r for r in self._results
                       if not r.dropped and r.delta is not None and r.key in self._pending_knots]
        if strengths is None:
            return bool(pending)
        return any(0.0 < float(strengths.get(r.name, 1.0)) < 1.0 for r in pending)

    def complete_knots(self, progress: Optional[Progress] = None) -> bool:
        """Run the deferred knots of every shown stage that waits for them (one network run per
        knot, with the context it ran with at full strength, on its input recomposed from the
        stages shown before it: ``clip(input + delta)`` per kept stage, the orchestrator's own
        operations, so the same values), keep each change in the session's change store, and make
        composing use them. Returns whether any landed. ``progress``'s ``Cancelled`` stops it
        between and inside runs; what did not land stays pending. One caller at a time (a
        second waits); composing may go on meanwhile on another thread."""
        progress = progress or Progress()
        with self._knots_lock:
            results = self.results
            with self._lock:
                waiting = {i: self._pending_knots[r.key] for i, r in enumerate(results)
                           if r.key in self._pending_knots and not r.dropped and r.delta is not None}
            if not waiting:
                return False
            current = self.image
            for i, r in enumerate(results[:max(waiting) + 1]):
                if i in waiting:
                    progress.check()
                    knots = self._run_knots(waiting[i], current, progress)
                    with self._lock:
                        r.knot_deltas = {**r.knot_deltas, **knots}  # one assignment: a compose sees none or all
                        self._pending_knots.pop(r.key, None)
                        self.knots_revision += 1
                        self._subsampled.clear()
                        self._crops.clear()
                if i < max(waiting) and not r.dropped and r.delta is not None:  # the next stage's input
                    current = np.clip(current + np.asarray(r.delta), 0.0, 1.0)
        return True

    def _run_knots(self, pending: PendingKnots, current: np.ndarray, progress: Progress) -> dict[float, Change]:
        """``{knot: change}`` of ``pending``'s expert run on ``current`` at each of its knots."""
        original = self.image if current is not self.image else None
        original_noise = self._original_noise(original, pending.noise_sigma, pending.stage.name)
        changes: dict[float, Change] = {}
        n = len(pending.knots)
        for i, knot in enumerate(pending.knots):
            out, _notes = self._run_at(pending.expert, pending.stage, current, knot, pending.severity,
                                       pending.measurements, pending.strengths, pending.noise_sigma, original,
                                       original_noise, progress.sub(i / n, (i + 1) / n))
            change = np.subtract(out, current, out=out)
            changes[knot] = change if self.changes is None else self.changes.keep(change)
            del out, change
        return changes

    def release(self) -> None:
        """Free every cached stage change (the stage cache, the shown results, the subsampled
        copies): a one-shot restoration (the CLI, a batch) calls this once it has composed, so
        that upscaling, the final analysis and saving run without them. The session's input and
        report stay; composing again needs a new run."""
        self.cache.clear()
        with self._lock:
            self._results = []
            self._subsampled.clear()
            self._crops.clear()
            self._after = None
            self._in_place = None
            self._input_on_disk = None  # a file of the change store, closed with it
            self._pending_knots.clear()
        if self.changes is not None:
            self.changes.close()

    @property
    def results(self) -> list[StageResult]:
        with self._lock:
            return list(self._results)

    # -- composing --------------------------------------------------------------------------
    def compose(self, strengths: Mapping[str, float],
                region: Optional[tuple[slice, slice]] = None, step: int = 1,
                results: Optional[list[StageResult]] = None) -> np.ndarray:
        """The restored image for ``{stage name: strength}`` (missing names count as 1).

        ``region`` (rows, cols) and ``step`` (take every step-th pixel, i.e. the result is
        ``full[rows][::step, cols][::step]``) let a viewer compose only what it shows; the
        default is the whole image. ``results``: compose these stage results instead of the
        shown ones (a run's stages so far, while it runs). Returns float32 in [0, 1].
        """
        rows, cols = region or (slice(None), slice(None))
        parts = self._parts(step) if results is None and step > 1 and (rows.start or 0) % step == 0 \
            and (cols.start or 0) % step == 0 else None
        if parts is not None:  # contiguous subsampled copies: far faster than strided reads
            sl = (slice((rows.start or 0) // step, None if rows.stop is None else -(-rows.stop // step)),
                  slice((cols.start or 0) // step, None if cols.stop is None else -(-cols.stop // step)))
            base, terms = parts
        else:
            sl = (slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step))
            base, terms = self.image, self._terms(self.results if results is None else results)
        src = base[sl]
        if region is not None and results is None and src.shape[0] * src.shape[1] <= CROP_COPIES_MAX_PIXELS \
                and not all(isinstance(array, np.ndarray) for _name, _weight, array in terms):
            terms, sl = self._crop(sl, terms), (slice(None), slice(None))  # a view's crop, read once
        weighted = [(np.float32(s), array) for s, array in
                    ((weight(strengths), array) for _name, weight, array in terms) if s != 0.0]
        if not all(isinstance(array, np.ndarray) for _s, array in weighted):
            # changes kept on disk (the window's past its budget, a one-shot restoration's): read
            # band by band, only the rows and columns asked for (the same float32 operations)
            out = src.copy()
            picked = range(*sl[0].indices(base.shape[0]))
            for band in band_slices(len(out)):
                there = picked[band]
                rows_there = (slice(there.start, there.stop, there.step), sl[1])
                part = out[band]
                for s, array in weighted:
                    part += np.multiply(array[rows_there], s)
                np.clip(part, 0.0, 1.0, out=part)
            return out
        weighted = [(s, array[sl]) for s, array in weighted]  # views: nothing is copied yet
        out = np.empty(src.shape, np.float32)
        # Row bands small enough to stay in the CPU cache while every term is added: the same
        # float32 operations (so the same values) with a fraction of the memory traffic, and a
        # band of scratch instead of a full-size one.
        rows = max(1, COMPOSE_BAND_BYTES // max(out[:1].nbytes, 1))
        scratch = np.empty((min(rows, len(out)),) + out.shape[1:], np.float32) if weighted else None
        for top in range(0, len(out), rows):
            part = out[top:top + rows]
            np.copyto(part, src[top:top + rows])
            for s, array in weighted:
                part += np.multiply(array[top:top + rows], s, out=scratch[:len(part)])
            np.clip(part, 0.0, 1.0, out=part)
        return out

    def compose_into(self, strengths: Mapping[str, float], out: Optional[np.ndarray] = None, *,
                     into_input: bool = False) -> np.ndarray:
        """The same image as :meth:`compose` ``(strengths)`` (the same float32 operations, so
        bit-identical), composed row band by row band: besides ``out`` only one band of
        scratch is allocated, and changes kept on disk are read one band at a time.

        ``out``: float32 array of the image's shape to write the result into, or ``None`` for
        a new one. ``into_input``: compose into the input's own array (a one-shot restoration
        that needs its input no more; the same as ``out=session.image`` without first reading
        back an input that a stage run in place left on disk); the session must not compose
        again then.
        """
        image = self._image
        if into_input:
            out = image
        base = self._input_on_disk if self._input_on_disk is not None else image  # in place: the input is on disk
        if out is None:
            out = np.empty_like(image)
        elif out.shape != image.shape or out.dtype != np.float32:
            raise ValueError(f"cannot compose a {image.shape} image into a {out.dtype} array of shape {out.shape}")
        terms = [(np.float32(s), array) for s, array in
                 ((weight(strengths), array) for _name, weight, array in self._terms(self.results)) if s != 0.0]
        scratch: Optional[np.ndarray] = None
        for band in band_slices(image.shape[0]):
            part = out[band]
            if out is not base:
                part[...] = base[band]
            for s, array in terms:
                if scratch is None:
                    scratch = np.empty_like(part)
                part += np.multiply(array[band], s, out=scratch[:part.shape[0]])
            np.clip(part, 0.0, 1.0, out=part)
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
        """The input and the composing terms subsampled by ``step`` (cached per result set for the
        last :data:`SUBSAMPLED_STEPS_KEPT` steps used), contiguous in memory also where the
        full-size changes are on disk (the window past its change budget: the sliders then move
        on these screen-resolution copies, which are read from the files band by band); ``None``
        for images under :data:`SUBSAMPLED_COPIES_FROM` pixels, where strided reads are fast enough."""
        if self.image.shape[0] * self.image.shape[1] < SUBSAMPLED_COPIES_FROM:
            return None
        revision = self.knots_revision  # read first: knots landing while the copies are made miss the cache
        results = [r for r in self.results if not r.dropped and r.delta is not None]
        key = (step, tuple(r.key for r in results), revision)
        with self._lock:
            cached = self._subsampled.pop(step, None)
            if cached is not None and cached[0] == key:
                self._subsampled[step] = cached  # the most recently used last
                return cached[1]
        copies: dict[int, np.ndarray] = {}  # a one-kind share is the stage's delta itself: copy it once
        for _, _, a in self._terms(results):
            if id(a) not in copies:
                copies[id(a)] = np.ascontiguousarray(a[::step, ::step])
        parts = (np.ascontiguousarray(self.image[::step, ::step]),
                 [(name, weight, copies[id(a)]) for name, weight, a in self._terms(results)])
        with self._lock:
            self._subsampled[step] = (key, parts)
            while len(self._subsampled) > SUBSAMPLED_STEPS_KEPT:
                self._subsampled.pop(next(iter(self._subsampled)))
        return parts

    def _crop(self, sl: tuple[slice, slice], terms: list[tuple[str, Weight, Change]]
              ) -> list[tuple[str, Weight, np.ndarray]]:
        """``terms`` with every change cropped to ``sl`` in memory (those on disk read once; the
        crops of the last :data:`CROP_COPIES_KEPT` regions are kept): a view at 100 % whose
        changes are on disk then re-composes a slider move without reading the disk."""
        key = (tuple((x.start, x.stop, x.step) for x in sl), tuple(r.key for r in self.results))
        with self._lock:
            cached = self._crops.pop(key, None)
            if cached is not None:
                self._crops[key] = cached
        if cached is not None and any(id(a) not in cached for _, _, a in terms):
            cached = None  # made before deferred knots landed: it lacks their change
        if cached is None:
            cached = {}
            for _, _, a in terms:
                if id(a) not in cached:
                    cached[id(a)] = a[sl]  # a view of a change in memory, a copy of one on disk
            with self._lock:
                self._crops[key] = cached
                while len(self._crops) > CROP_COPIES_KEPT:
                    self._crops.pop(next(iter(self._crops)))
        return [(name, weight, cached[id(a)]) for name, weight, a in terms]

    def change_map(self, strengths: Mapping[str, float], step: int = 1,
                   full_scale: Optional[float] = None) -> np.ndarray:
        """Where the restoration changed the image most: float32 HxW in [0, 1] (mean absolute
        change over channels). ``full_scale``: the change (in [0, 1] pixel units, e.g. 0.1 = a
        tenth of the tonal range) that maps to 1, so a legend can name units; ``None``
        normalises by the map's 99th percentile instead."""
        diff = np.abs(self.compose(strengths, step=step) - self.image[::step, ::step]).mean(axis=2)
        scale = float(full_scale) if full_scale else (float(np.percentile(diff, 99)) or 1.0)
        return np.clip(diff / scale, 0.0, 1.0).astype(np.float32)


def reads_jpeg_decoding(expert) -> bool:
    """Whether ``expert`` may read ``ExpertContext.jpeg.decoded`` (the JPEG file's decoding):
    the experts of the JPEG stage (the deblocker and the JPEG restorer, which project onto the
    file's quantisation constraints). The others read only the tables (``ExpertContext.jpeg``'s
    quantisation: FFDNet's chroma gain and its pixel-shuffle choice)."""
    return JPEG in expert.info.tasks


def _copy_back(parked: SpilledArray, into: np.ndarray) -> None:
    """Read ``parked`` back into ``into`` (same shape), one row band at a time."""
    for band in band_slices(into.shape[0]):
        into[band] = parked.read_rows(band.start, band.stop)


#: Bytes of one row band when composing (see :meth:`RestorationSession.compose`): about what a
#: core's L2 cache holds beside the terms' bands (measured: a 1.5 MP screen compose of three
#: terms took 31 ms in one pass per operation, 13 ms in bands of ~400 KB).
COMPOSE_BAND_BYTES = 384 * 1024


#: Pixels from which :meth:`RestorationSession.compose` with a sampling step keeps contiguous
#: subsampled copies of the input and the changes (below, strided reads are fast enough).
SUBSAMPLED_COPIES_FROM = 2_000_000


#: Sampling steps whose subsampled copies are kept (the least recently used goes): the viewer's
#: step, its coarser step while a slider moves, and the uncertainty map's; a copy at step 2 of a
#: 24 MP photo's three changes and input is already 288 MB.
SUBSAMPLED_STEPS_KEPT = 3


#: A view's crop (pixels) whose changes :meth:`RestorationSession.compose` keeps in memory when
#: they are on disk (a 4K screen's; an export, the whole photo, is composed from the files), and
#: how many such crops are kept (the view, the loupe).
CROP_COPIES_MAX_PIXELS = 4096 * 2160
CROP_COPIES_KEPT = 2


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
