"""The orchestrator: runs a plan on a session and decides what each stage's result is worth.

One photo's restoration, the same for every front end (the CLI and the batch queue through
:class:`engine.pipeline.job.Restorer`, cluster workers, and the window through
``app.document``)::

    orchestrator = Orchestrator(registry, device="cpu")
    session = orchestrator.session(photo.pixels, jpeg=photo.jpeg, metadata=photo.metadata)
    outcome = orchestrator.restore(session, PlanChoices(), progress)   # plan, run, follow-up
    pixels = session.compose(outcome.plan.strengths())

The :class:`~engine.pipeline.plan.Planner` decides *what* to run; the
:class:`~engine.pipeline.session.RestorationSession` runs one stage, caches it and composes;
this module holds the rules in between (RAR: restore, assess, repeat):

* **skip**: a stage chosen by the analysis whose kind the earlier stages already fixed (its
  severity at its input is below the presence threshold) does not run;
* **fallback**: a neural expert that cannot run (missing or damaged weights, a runtime error,
  out of memory at the smallest tile) is replaced by the kind's classical expert, or the stage
  is skipped; a failing expert fails its stage only, never the photo;
* **drop**: a stage chosen by the analysis that did not make the photo better by the analyser's
  measure is dropped (:func:`judge`), including the noise guard: a stage of
  :data:`NOISE_MUST_NOT_RISE` whose output has clearly more fine-scale noise is dropped;
* **drop uncertain** (opt-in, ``RestorationSession.drop_uncertain``): a kept stage whose
  expected error (:mod:`engine.uncertainty.assess`) is large for a small gain is dropped too
  (:func:`judge_uncertain`);
* **keep**: everything else; each stage sees the analysis of its own input.

Progress and cancellation go through :class:`engine.progress.Progress`: every stage reports
into its slice, and a cancelled token raises :class:`engine.errors.Cancelled` at the next check
(between tiles, stages and rounds), leaving the session's shown results as they were.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional

import numpy as np

from ..analysis.jpeg_tables import estimate_quality
from ..analysis.measurements import newly_clipped_count
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport
from ..errors import Cancelled, RestoraError, one_line
from ..experts.base import Backend, ExpertRegistry
from ..kinds import GENERALIST, JPEG, KINDS, NOISE, RAIN
from ..photo import PhotoMetadata
from ..progress import Progress
from . import plan as plan_rules
from .plan import Plan, PlanChoices, Planner, Stage
from .session import RestorationSession, StageResult, default_analyser, reads_jpeg_decoding
from .spill import ChangeStore, band_slices

log = logging.getLogger(__name__)

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

#: Kinds whose rise after a stage is not held against that stage: removing noise widens the edges
#: the noise made look sharp, so the blur measure rises (FFDNet on a real ISO 3200 DSLR crop: blur
#: 0.08 → 0.42 while the output came closer to the ground truth by +2 dB). The JPEG stage removes
#: the same noise (FFDNet as its prior, held inside the file's own quantisation bounds): on real
#: camera JPEGs its blur reading rose 0.07 → 0.73 while the output gained +1.8 dB, and dropping it
#: left those photos at −0.03 dB (benchmarks/results/real-noise-all60.md).
RISE_NOT_HELD_AGAINST: dict[str, frozenset[str]] = {NOISE: frozenset({"blur"}), JPEG: frozenset({"blur"})}

#: Measurements of the input's noise verdict that make the noise severity count only for the noise
#: stage: colour blotches in still areas (``still_chroma_present``, engine.analysis.noise_level.still_chroma)
#: and luma grain over a large still area (``still_luma_present``, noise_level.still_luma) vanish under any
#: smoothing, so a deblurrer whose PnP prior smooths them would otherwise be kept for
#: "removing noise" while it sharpens the rest (real PolyU crop bicycle_10: kept deblurrer, 3.4 dB
#: below the input).
NOISE_CREDIT_ONLY_TO_NOISE: tuple[str, ...] = ("still_chroma_present", "still_luma_present")

#: Kinds a stage must not make appear: a dehazer stretches the contrast of a light veil and with it
#: the photo's JPEG blocks; the blocks' severity rising past the presence threshold marks a photo
#: with too little haze for the stretch (a light-haze JPEG, RESIDE sots_outdoor_0002, lost 3.7 dB
#: to a kept dehazer).
MUST_NOT_REVEAL: dict[str, frozenset[str]] = {"haze": frozenset({"jpeg"})}
#: ...and only when it rises by at least this much (severity units): a dehazer that improves a JPEG'd
#: hazy photo nudges its blockiness reading too (on 39 such TRAINING photos the JPEG severity rose by at
#: most 0.016 in three cases of four, ``benchmarks/dehaze_fit.py reveal``), so a reading just under
#: the threshold that ends just over it (0.143 → 0.151 on a synthetic haze+rain+jpeg evaluation photo,
#: where the kept stage gains 14 dB) is not a revealed artefact. The margin was looked for after that
#: evaluation case (a validation photo) was seen; its value is the training figure above, rounded up.
MIN_REVEAL_RISE = 0.02

#: A stage chosen by the analysis whose output drives more than this share of the pixels to black or
#: white in some channel (:func:`engine.analysis.measurements.newly_clipped_fraction`) is dropped:
#: removing a veil the haze model explains leaves the scene inside the displayable range, while a
#: "dehazed" bright warm page runs out of it (a real camera crop, PolyU book_13, read haze 0.55: 44 % of
#: its pixels clipped, 24 dB below its input). Set from training photos only: twice the largest share
#: (0.15; 99th percentile 0.11) over synthetic depth-varying haze of training photos read hazy and
#: dehazed (``benchmarks/haze_false_positives.py fit-dehaze``, benchmarks/results/haze-false-positives.md);
#: the factor 2 is a margin for what 73 cases cannot show, not a fit.
MAX_NEWLY_CLIPPED: dict[str, float] = {"haze": 0.30}

#: A kind the user explicitly asks to fix is passed to a conditioned generalist with at least
#: this strength, even when the analysis rates it lower.
MIN_TOLD_STRENGTH = 0.3

#: The automatic plan tells a conditioned generalist to remove rain at ``min(1, severity / this)``,
#: not at the analysed severity itself: the analysed rain severity (the bundled analyser network's
#: strength) reads synthetic rain of a given strength lower than the strength the generalist removes
#: best. Fitted on TRAINING photos only (``benchmarks/rain_told_strength.py``: single-layer and
#: realistic synthetic rain of training crops, the scale of largest mean gain; results in
#: benchmarks/results/rain-told-strength.md). The direction (tell more than the severity) was first seen
#: on rain validation pairs, the number was fitted on training crops only.
RAIN_TOLD_PER_SEVERITY = 0.8

#: Stages whose expert is told the analysed noise level (``ExpertContext.noise_sigma``): the
#: denoiser, and the deblurrer (its regularisation grows with the noise).
NOISE_AWARE_STAGES = frozenset({"noise", "blur"})


def noise_read_before_jpeg(stage: Stage, results: list[StageResult], report: DegradationReport,
                           first: DegradationReport) -> DegradationReport:
    """The report a noise stage is skipped and judged by: after a kept JPEG stage, ``report`` (its
    input's analysis) with the noise assessment of ``first`` (the photo's, before any stage) where
    that one reads more noise; otherwise ``report`` itself. The JPEG restorer's denoiser prior
    smooths the fine-scale noise the analysis reads and leaves coarser noise behind, so after it
    the noise reads about nothing (0.00–0.07) on noisy JPEGs the noise stage still improves: on 14
    training cases (``../shared/data/clean`` training split, synthetic noise then JPEG and JPEG
    alone, benchmarks/results/evaluation-default-plan.md) where the noise stage was skipped as
    "nothing left to fix" after the JPEG stage, running it gained on all 14 (+0.06 … +1.90 dB)."""
    if stage.name != NOISE or not any(r.name == JPEG and not r.dropped for r in results):
        return report
    if first.severity(NOISE) <= report.severity(NOISE):
        return report
    return DegradationReport({**report.kinds, NOISE: first.kinds[NOISE]})


#: ``on_stage(plan, results so far)``: a stage just ran (see :func:`run_plan`).
StageListener = Callable[[Plan, list[StageResult]], None]


@dataclass
class Outcome:
    """What :meth:`Orchestrator.restore` did: the plan it ended with (the follow-up round
    included; compose with ``plan.strengths()``) and every stage's result in plan order."""

    plan: Plan
    results: list[StageResult]


class Orchestrator:
    """Restores photos with one expert registry: builds sessions, asks its :class:`Planner`
    for plans and runs them with the keep/drop/fallback rules. One orchestrator serves a whole
    batch (and the window's every photo); it holds no per-photo state.

    ``analyser``: image → :class:`DegradationReport` (default: the bundled analysis, with the
    photo's EXIF ISO and exposure time as a noise prior when they are known).
    """

    def __init__(self, registry: ExpertRegistry, *, device: str = "cpu", analyser=None) -> None:
        self.registry = registry
        self.device = device
        self.analyser = analyser
        self.planner = Planner(registry)

    def session(self, image: np.ndarray, *, tile: Optional[int] = None, jpeg=None,
                metadata: Optional[PhotoMetadata] = None, changes: Optional[ChangeStore] = None) -> RestorationSession:
        """A session for ``image`` (float32 HxWx3 in [0, 1]); ``tile``: tile edge in pixels for
        the experts (``None``: automatic); ``jpeg``: the tables of the JPEG file it decodes
        (``Photo.jpeg``); ``metadata``: the photo's EXIF facts (noise prior of the default analysis);
        ``changes``: where a one-shot restoration keeps its stage changes (see
        :class:`~engine.pipeline.session.RestorationSession`)."""
        analyser = self.analyser
        if analyser is None:
            facts: dict = {}
            if metadata is not None and metadata.iso:
                facts.update(iso=metadata.iso, exposure_s=metadata.exposure_s)
            if jpeg is not None:
                facts["jpeg_quality"] = estimate_quality(jpeg).quality
            analyser = functools.partial(default_analyser, **facts) if facts else default_analyser
        return RestorationSession(image, self.registry, analyser=analyser, device=self.device, tile=tile, jpeg=jpeg,
                                  changes=changes)

    def plan(self, session: RestorationSession, choices: PlanChoices = PlanChoices()) -> Plan:
        """The first plan for the session's photo (analyses it if not done yet)."""
        return self.planner.plan(session.analyse(), choices)

    def restore(self, session: RestorationSession, choices: PlanChoices = PlanChoices(),
                progress: Optional[Progress] = None, plan: Optional[Plan] = None,
                on_stage: Optional[StageListener] = None) -> Outcome:
        """Plan (unless ``plan`` is given), run, then the follow-up round (kinds the restoration
        uncovered get one more specialist, run at once). Raises :class:`Cancelled`.
        ``on_stage``: told of every stage that ran, as it lands (see :func:`run_plan`)."""
        progress = progress or Progress()
        plan = plan if plan is not None else self.plan(session, choices)
        results = self.run(session, plan, progress.sub(0.0, 0.8), on_stage)
        follow_up = self.planner.follow_up(plan, final_report(results), choices)
        if follow_up is not plan:
            plan = follow_up
            results = self.run(session, plan, progress.sub(0.8, 1.0), on_stage)
        progress(1.0)
        return Outcome(plan, results)

    def run(self, session: RestorationSession, plan: Plan, progress: Optional[Progress] = None,
            on_stage: Optional[StageListener] = None) -> list[StageResult]:
        """Run (or fetch from the session's cache) every stage of ``plan``; see :func:`run_plan`."""
        return run_plan(session, plan, progress, on_stage)


def final_report(results: list[StageResult]) -> Optional[DegradationReport]:
    """The analysis of the restored photo: the output report of the last stage kept (``None``
    when no stage was kept)."""
    kept = [r for r in results if not r.dropped and r.output_report is not None]
    return kept[-1].output_report if kept else None


def report_of_full_strength(results: list[StageResult], strengths: Mapping[str, float]) -> Optional[DegradationReport]:
    """The analysis of the photo composed at ``strengths`` when the run already made it, else ``None``.

    With every kept stage at strength 1 (and none split into per-kind shares), composing gives the
    last kept stage's output up to float32 rounding, and the run analysed that output for the judge
    (``output_report``); analysing the composed photo again would repeat it."""
    if any(strengths.get(r.name, 1.0) != 1.0 or r.kind_shares for r in results if not r.dropped):
        return None
    return final_report(results)


def run_plan(session: RestorationSession, plan: Plan, progress: Optional[Progress] = None,
             on_stage: Optional[StageListener] = None) -> list[StageResult]:
    """Run every stage of ``plan`` on ``session`` with the skip/fallback/drop rules of this
    module; returns their results in order and makes them the session's shown results.

    ``on_stage(plan, results)`` is called (on the running thread) after each stage that was not
    served from the cache, with the results so far (the last one just landed, kept or dropped):
    a window shows ``session.compose(plan.strengths(), results=results)`` while the rest runs.

    Each stage sees the analysis of its own input. Stage results are cached in the session by
    a key chained from the kept stages before them, so running a plan again (or a longer one)
    costs only its new stages. Raises :class:`engine.errors.Cancelled` if ``progress``'s token is
    cancelled; the session's results are then left as they were.
    """
    progress = progress or Progress()
    input_report = session.analyse()
    results: list[StageResult] = []
    current = session.image
    key = session.base_key
    n = max(len(plan.stages), 1)
    first_report = input_report
    for i, stage in enumerate(plan.stages):
        expert = session.registry.get(stage.expert_id)
        judged_report = noise_read_before_jpeg(stage, results, input_report, first_report)
        severity, _ = stage_inputs(judged_report, stage)
        _, measurements = stage_inputs(input_report, stage)
        told = {} if stage.name != GENERALIST else generalist_strengths(
            input_report, plan, session.skip_below, leads=expert.info.lead_kinds if stage.auto else ())
        judged = session.assess and stage.auto
        params = {"severity": round(severity, 3), "assess": judged, "model": expert.info.model_id or "",
                  "strengths": told}
        if judged and session.drop_uncertain:
            params["drop_uncertain"] = True
        stage_key = session.stage_key(key, expert, params)
        sub = progress.sub(i / n, (i + 1) / n, f"{stage.name}: {expert.info.name}")
        result = session.cached(stage_key)
        if result is None:
            sub(0.0)
            session.decoding_read_later = any(reads_jpeg_decoding(session.registry.get(s.expert_id))
                                              for s in plan.stages[i + 1:])
            if judged and stage.name != GENERALIST and severity < session.skip_below:
                handled = next((r.name for r in results if not r.dropped and stage.name in r.kind_shares), None)
                reason = (f"handled by the generalist ({stage.name} severity {severity:.2f} after it);"
                          f" this strength scales its {stage.name} removal" if handled else
                          f"nothing left to fix: {stage.name} severity {severity:.2f} after the earlier stages")
                result = StageResult(stage.name, expert.info.id, stage_key, None, 0.0, dropped=True,
                                     reason=reason, output_report=input_report, model_id=expert.info.model_id,
                                     handled_by=handled)
            else:
                noise_sigma = session.noise_sigma(current, input_report, stage.name) \
                    if stage.name in NOISE_AWARE_STAGES else None
                # the analyser's own report of ``current`` (the input's without the file's evidence)
                analysed = session.input_analysis() if key == session.base_key else input_report
                result = _run_with_fallback(session, stage, expert, current, severity, measurements, told,
                                            stage_key, sub.sub(0.0, 0.5 if told else 0.9), noise_sigma, analysed)
                if judged and not result.dropped:
                    # an expert that can run in place may have written its output over ``current``
                    unchanged_input = current if getattr(expert, "run_in_place", None) is None else None
                    judge(result, stage, judged_report, unchanged_input)
                    if session.drop_uncertain and not result.dropped and not session.overwrite_input:
                        judge_uncertain(result, stage, current, input_report)
                if told and not result.dropped and result.expert_id == expert.info.id and expert.info.conditioned:
                    session.split_by_kind(result, expert, current, told, sub.sub(0.5, 0.9))
            session.store(stage_key, result)
            sub(1.0)
            landed = True
        else:
            landed = False
        results.append(result)
        after = session.take_after(stage_key, kept=not result.dropped)
        if not result.dropped:
            # the stage's output as it computed it for its analysis, else (cached) computed again
            current = np.clip(after, 0.0, 1.0, out=after) if after is not None \
                else np.clip(current + np.asarray(result.delta), 0.0, 1.0)
        del after
        if not result.dropped:
            key = stage_key
            input_report = result.output_report or session.analyser(current)
        if landed and on_stage is not None:
            on_stage(plan, list(results))
    progress.check()  # a run cancelled after its last stage leaves the shown results as they were
    session.show(results)
    progress(1.0)
    return results


def stage_inputs(report: DegradationReport, stage: Stage) -> tuple[float, Mapping[str, float]]:
    """``(severity, measurements)`` the stage's expert is told, from the analysis of its input
    (the generalist: the largest severity of any kind, no measurements)."""
    if stage.name == GENERALIST:
        return max((report.severity(k) for k in KINDS), default=0.0), {}
    a = report.kinds.get(stage.name)
    return (0.0, {}) if a is None else (float(a.severity), dict(a.measurements))


def generalist_strengths(report: DegradationReport, plan: Plan, present_at: float, *,
                         leads: Iterable[str] = ()) -> dict[str, float]:
    """What a conditioned generalist is told to remove, ``{kind: strength 0..1}``: for every kind the
    plan restores, :func:`told_strength` of its analysed severity (the severity itself, rain scaled
    up, at least :data:`MIN_TOLD_STRENGTH` for a kind the user asked for that the analysis rates
    lower); with no kind in the plan (``--only
    generalist``), every kind the analysis finds at or above ``present_at``. Kinds not named
    are left alone.

    ``leads``: the generalist's lead kinds where the automatic plan put it first (because it leads
    on some of the planned kinds, ``leads`` ∩ :data:`AUTO_GENERALIST_LEAD_KINDS`); it is told only those, and
    the specialists handle the rest. Told the faint veil that rain leaves ("haze 0.21") as well,
    it cost 9 dB on a synthetic rain pair (rain100l_airnet_2; benchmarks/results/real-pairs.md)."""
    planned = [s for s in plan.stages if s.name in KINDS]
    if leads:
        planned = [s for s in planned
                   if s.name in leads and s.name in plan_rules.AUTO_GENERALIST_LEAD_KINDS] or planned
    if not planned:
        return {k: round(report.severity(k), 2) for k in report.present(present_at)}
    return {s.name: round(told_strength(s.name, report.severity(s.name), s.auto), 2) for s in planned}


def told_strength(kind: str, severity: float, auto: bool) -> float:
    """The strength (0..1) a conditioned generalist is told for ``kind`` analysed at ``severity``
    (0..1): rain in an automatic stage at ``min(1, severity /`` :data:`RAIN_TOLD_PER_SEVERITY` ``)``, a
    kind the user asked for at least :data:`MIN_TOLD_STRENGTH`, anything else at its severity."""
    if not auto:
        return max(severity, MIN_TOLD_STRENGTH)
    if kind == RAIN:
        return min(1.0, severity / RAIN_TOLD_PER_SEVERITY)
    return max(severity, 0.0)


def _run_with_fallback(session: RestorationSession, stage: Stage, expert, current: np.ndarray, severity: float,
                       measurements: Mapping[str, float], told: Mapping[str, float], stage_key: str,
                       progress: Progress, noise_sigma: Optional[np.ndarray],
                       input_analysis: Optional[DegradationReport] = None) -> StageResult:
    """Run the stage's expert; if a neural expert fails here (weights missing, damaged or not
    an image model, device failure, out of memory at the smallest tile, any error of its
    runtime), run the classical expert for the same kind instead and say so in the result's
    ``reason``; with no classical expert for the kind the stage is skipped, also with a
    reason. A failing expert fails its stage only, never the photo or the batch."""
    try:
        return session.run_stage(stage, expert, current, severity, measurements, told, stage_key, progress,
                                 noise_sigma, input_analysis)
    except Cancelled:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a model does wrong, it fails its stage only
        if expert.info.backend is Backend.CLASSICAL:
            raise
        why = one_line(err, 300, with_type=not isinstance(err, RestoraError))
        fallback = next((e for e in session.registry.for_task(stage.name)
                         if e.info.backend is Backend.CLASSICAL and e is not expert), None)
        if fallback is None:
            log.warning("%s could not run (%s); %s skipped", expert.info.id, why, stage.name)
            return StageResult(stage.name, expert.info.id, stage_key, None, 0.0, dropped=True,
                               reason=f"{expert.info.id} could not run ({why}); no classical expert for "
                                      f"{stage.name}, stage skipped", model_id=expert.info.model_id)
        log.warning("%s could not run (%s); using %s instead", expert.info.id, why, fallback.info.id)
        result = session.run_stage(stage, fallback, current, severity, measurements, told, stage_key,
                                   progress, noise_sigma, input_analysis)
        result.reason = f"{expert.info.id} could not run ({why}); used {fallback.info.id}"
        return result


def judge(result: StageResult, stage: Stage, input_report: DegradationReport,
          image: Optional[np.ndarray] = None) -> None:
    """Drop the stage if it did not make the photo better by the analyser's measure: a
    specialist must lower its own kind's severity without raising the others' by more, or
    lower the summed severity of all kinds (a rise of :data:`RISE_NOT_HELD_AGAINST` kinds does not
    count, nor, for a specialist other than noise, the noise severity of an input whose noise rests on
    :data:`NOISE_CREDIT_ONLY_TO_NOISE` evidence); the generalist must lower the sum. A stage of
    :data:`NOISE_MUST_NOT_RISE` that amplified the noise is dropped whatever the severities say, and
    so is a stage of :data:`MAX_NEWLY_CLIPPED` that drove too many pixels of ``image`` (the stage's
    input, float HxWx3 in [0, 1]; ``None``: not checked) to black or white."""
    before, after = input_report.severities(), result.output_report.severities()
    result.before, result.after = before, after
    amplified = amplified_noise(input_report, result.output_report) if stage.name in NOISE_MUST_NOT_RISE else None
    if amplified is not None:
        result.dropped = True
        result.delta = None
        result.reason = f"did not help: it amplified the noise ({amplified})" + (
            f"; {result.reason}" if result.reason else "")
        return
    revealed = [k for k in MUST_NOT_REVEAL.get(stage.name, ())
                if before[k] < DEFAULT_PRESENCE_THRESHOLD <= after[k] and after[k] - before[k] >= MIN_REVEAL_RISE]
    if revealed:
        result.dropped = True
        result.delta = None
        result.reason = "did not help: it made " + ", ".join(
            f"{k} artefacts appear ({before[k]:.2f} → {after[k]:.2f})" for k in revealed) + (
            f"; {result.reason}" if result.reason else "")
        return
    limit = MAX_NEWLY_CLIPPED.get(stage.name)
    if limit is not None and image is not None and result.delta is not None:
        share = newly_clipped_share(image, result.delta)
        if share > limit:
            result.dropped = True
            result.delta = None
            result.reason = (f"did not help: it drove {share:.0%} of the pixels to black or white (removing a "
                             f"veil leaves at most {limit:.0%}); not a veiled scene") + (
                f"; {result.reason}" if result.reason else "")
            return
    excused = RISE_NOT_HELD_AGAINST.get(stage.name, frozenset())
    noise_in = input_report.kinds.get(NOISE)
    uncredited = (stage.name not in (NOISE, GENERALIST) and noise_in is not None
                  and any(noise_in.measurements.get(key, 0.0) >= 1.0 for key in NOISE_CREDIT_ONLY_TO_NOISE))
    total_gain = (sum(v for k, v in before.items() if not (uncredited and k == NOISE))
                  - sum(v if k not in excused else min(v, before[k]) for k, v in after.items()
                        if not (uncredited and k == NOISE)))
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


def judge_uncertain(result: StageResult, stage: Stage, image: np.ndarray, input_report: DegradationReport) -> None:
    """The uncertainty rule (:mod:`engine.uncertainty.assess`, off unless the session's
    ``drop_uncertain``): drop a kept stage whose output's expected error is large while its gain is
    small. ``image``: the stage's input (float HxWx3 in [0, 1])."""
    from ..uncertainty.assess import assess_stage

    verdict = assess_stage(stage.name, image, result.delta, input_report, result.output_report)
    if verdict.drop:
        result.dropped = True
        result.delta = None
        result.reason = f"did not help enough: {verdict.reason()}" + (f"; {result.reason}" if result.reason else "")


def newly_clipped_share(image: np.ndarray, delta) -> float:
    """:func:`engine.analysis.measurements.newly_clipped_fraction` of ``image`` (float HxWx3 in [0, 1])
    and ``clip(image + delta)``, row band by row band: no full-size sum nor clipped copy (``delta``:
    an array or a change kept on disk)."""
    count = 0
    for band in band_slices(image.shape[0]):
        before = image[band]
        count += newly_clipped_count(before, np.clip(before + np.asarray(delta[band]), 0.0, 1.0))
    return count / (image.shape[0] * image.shape[1])


def amplified_noise(before: DegradationReport, after: DegradationReport) -> Optional[str]:
    """The noise guard. Sharpening noise lowers the blur severity and can fool every
    severity-based verdict; the noise-level function cannot be fooled that way. Returns a
    description when the stage's output has clearly more noise than its input (fine-scale σ up
    by more than :data:`NOISE_AMPLIFICATION` and :data:`NOISE_AMPLIFICATION_MIN_255` levels),
    else ``None``."""
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
