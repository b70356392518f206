"""The Planner: from a degradation report and the user's choices to an ordered list of stages.

Every front end plans here and nowhere else: the CLI and the batch queue
(:class:`engine.pipeline.job.Restorer`), cluster workers and the window (``app.document``) all
ask a :class:`Planner` for the first plan, for the follow-up round after it ran, and (the window)
for the plan its controls describe. The :class:`engine.pipeline.orchestrator.Orchestrator` runs
what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Mapping, Optional

from ..analysis.noise_sigma import NOISE_SERVES_JPEG_MIN_QUALITY as _NOISE_SERVES_JPEG_MIN_QUALITY
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport
from ..experts.base import ExpertRegistry
from ..kinds import BLUR, GENERALIST, HAZE, JPEG, KINDS, LOWLIGHT, NOISE, RAIN, UPSCALE, check_kind

#: Order in which specialists run. It undoes the camera's degradation chain from the end:
#: compression artefacts first (they are the last thing that happened), then sensor noise
#: (before anything amplifies it), exposure, then the scene (rain, haze) and finally
#: deblurring, which would otherwise sharpen noise and blocks.
SPECIALIST_ORDER: tuple[str, ...] = ("jpeg", "noise", "lowlight", "rain", "haze", "blur")
assert sorted(SPECIALIST_ORDER) == sorted(KINDS)

#: Of a generalist's ``lead_kinds``, the ones for which the *automatic* plan may put it first.
#: restora-generalist-v2 was trained on synthetic degradations only; on real camera photos its
#: jpeg/haze/lowlight leads fired on camera JPEGs, bright low-contrast scenes and dark scenes and it
#: made every real noisy photo worse (benchmarks/results/real-noise.md: −17 dB mean on the first
#: real crops, down to 9 dB PSNR on a dark scene it brightened). Until it is retrained on realistic
#: data it leads only on rain (synthetic rain: +6 dB; no real photo of our sets is read as rain);
#: asking for it (``--set generalist=…``, ``--only generalist``) still runs it.
AUTO_GENERALIST_LEAD_KINDS: frozenset[str] = frozenset({"rain"})

#: Least severity at which the automatic plan includes a kind's specialist, where it is above the
#: presence threshold. A dark scene is not an under-exposed photo: real dark DSLR scenes
#: (noise_real_polyu_crops) read lowlight 0.15–0.44 (one 0.96), real under-exposed photos
#: (lowlight_real_lol_train) 0.78–1.0 but for one; brightening a dark scene cost −11 dB, and the dim
#: classroom NikonD800_11_160_3200_classroom_15 (0.33) fell from 38.8 to 9.7 dB when brightened.
#: Low light 0.5 was set on those validation readings. Refitted on TRAINING photos
#: (benchmarks/lowlight_gate.py, benchmarks/results/lowlight-gate.md: 180 under-exposed against 60 dim
#: scenes), every gate from 0.22 to 0.39 has the least balanced error (0.233 against 0.258 here: 17 %
#: of the under-exposed left dark instead of 25 %, 30 % of the dim scenes brightened instead of 27 %);
#: counting a brightened dim scene four times a dark one left (the measured costs, −29 against about
#: −6 dB) 0.5 is better (1.32 against 1.37), so it is kept. Measured with 0.39: the evaluation table's
#: 16 cases of bsds500_test_102062 (its low-light mixtures read 0.40–0.42) come out identical, and no
#: real photo of the validation sets reads between 0.33 and 0.5.
AUTO_MIN_SEVERITY: dict[str, float] = {"lowlight": 0.5}

#: Least width (px) of the sharpest tile's edges (``sharpest_tile_width_px``, from
#: :func:`engine.analysis.measurements.sharpest_tile_width`) at which the automatic plan deblurs. Shake
#: blurs every part of a photo; with a sharp part (shallow depth of field, most noisy photos) there
#: is nothing to deblur. benchmarks/results/real-blur.md: the analysis called 52 % of real noisy
#: crops and 92 % of synthetic shallow-depth-of-field photos blurry; real shaken photos measure
#: 4.1 px and up, those others mostly under 4.
AUTO_MIN_SHARPEST_BLUR_PX = 4.0

#: Low-light severity at and above which the automatic plan does not deblur. The edges of a dark
#: photo are few, faint and flattened by JPEG quantisation, so their width says nothing about
#: shake: a real dark ISO 3200 crop (noise_real_polyu_crops, Canon5D2_5_160_3200_chair_11, low
#: light 0.96) read a 31-px kernel with confidence 0.61 and lost 2.5 dB to deconvolution. Measured by
#: :func:`darkness`: a dim scene exposed for its light parts (no longer low light) is as dark here; once
#: its low light was held down, the real crop Canon5D2_5_160_3200_chair_5 was deblurred, 9.2 dB below
#: its input.
AUTO_MAX_LOWLIGHT_FOR_DEBLUR = 0.5

#: Least haze severity the automatic plan dehazes at when it also finds rain. Refitted on TRAINING
#: photos (benchmarks/haze_with_rain_fit.py, benchmarks/results/haze-with-rain.md): the table's and the
#: realistic rain generator, with and without the table's haze, over 80 photos and dim copies of them,
#: half with JPEG. Rain without haze never read haze present (at most 0.075 over 246 cases); haze under
#: rain read 0.17 and up (265 cases), so the gate of least balanced error is at the presence threshold
#: (0.15–0.16 tie; 0.16, the tied run's middle). The previous 0.30 was set on validation rain pairs
#: whose streaks read haze 0.15–0.23 (the dehazer kept on one cost 11 dB, benchmarks/results/real-pairs.md).
AUTO_MIN_HAZE_WITH_RAIN = 0.16
#: Least haze severity the automatic plan dehazes at when it also finds blur. Blur lifts the dark
#: channel (each dark pixel is averaged with its brighter neighbours): a clean photo at haze 0.06 read
#: 0.19 once blurred, and the dehazer kept there cost 7.5 dB (bsds500_test_296028,
#: benchmarks/results/evaluation-default-plan.md). Not refitted.
AUTO_MIN_HAZE_WITH_BLUR = 0.3
#: The kinds that make a thin haze reading suspect, with the least haze severity dehazed beside each.
HAZE_SUSPECT_WITH = {RAIN: AUTO_MIN_HAZE_WITH_RAIN, BLUR: AUTO_MIN_HAZE_WITH_BLUR}


def darkness(report: DegradationReport) -> float:
    """How dark the photo is (0..1), for rules that care about darkness rather than under-exposure: the
    low-light severity, or, where the analysis held it down because the brightest twentieth is bright
    (a dim scene exposed for its light parts, :func:`engine.analysis.analyser.lowlight_severity`), the
    exposure-index severity it held down. Such a scene is not brightened, but its dark parts' edges are
    as few and faint as an under-exposed photo's."""
    from ..analysis.analyser import LOWLIGHT_MAX_P95_LUMA
    from ..analysis.calibration import severity_from

    severity = report.severity(LOWLIGHT)
    a = report.kinds.get(LOWLIGHT)
    p95 = a.measurements.get("p95_luma") if a is not None else None
    if p95 is not None and p95 >= LOWLIGHT_MAX_P95_LUMA:
        severity = max(severity, severity_from(LOWLIGHT, a.measurements))
    return severity


def _auto_allows(report: DegradationReport, kind: str) -> bool:
    """Whether the automatic plan may include ``kind`` found at this severity."""
    if report.severity(kind) < AUTO_MIN_SEVERITY.get(kind, 0.0):
        return False
    if kind == BLUR:
        a = report.kinds.get(kind)
        width = a.measurements.get("sharpest_tile_width_px") if a is not None else None
        if width is not None and width == width and width < AUTO_MIN_SHARPEST_BLUR_PX:
            return False
        if darkness(report) >= AUTO_MAX_LOWLIGHT_FOR_DEBLUR:
            return False
    if kind == HAZE and any(k in report.present() and report.severity(HAZE) < least
                            for k, least in HAZE_SUSPECT_WITH.items()):
        return False
    return True

#: Least IJG quality (read from the file's own tables) of a noisy JPEG whose JPEG stage the automatic
#: plan leaves to the noise stage (:func:`noise_serves_jpeg`). Cameras save at 70–97; at and
#: above this quality a JPEG's own artefacts sit below its sensor noise, and the denoiser, told a
#: σ above both, removes them too. Heavier JPEGs (a re-saved or web photo, q ≤ 50) keep their
#: JPEG stage: there the blocking is the larger damage (benchmarks/results/real-noise-sigma.md).
NOISE_SERVES_JPEG_MIN_QUALITY = _NOISE_SERVES_JPEG_MIN_QUALITY  # the analysis tells the noise stage the JPEG floor
#: What a person reads where the automatic plan left the JPEG stage to the noise stage.
NOISE_SERVES_JPEG_NOTE = ("not a stage of its own: the file is a camera JPEG (quality {q}) that is also noisy, "
                          "and the noise stage removes its JPEG artefacts with the noise (one denoiser run instead of "
                          "two: as good or better on camera JPEGs, at about half the CPU)")


def noise_serves_jpeg(report: DegradationReport) -> Optional[int]:
    """The file's JPEG quality when the automatic plan should let the noise stage alone restore a
    photo in which both noise and JPEG artefacts are found, else ``None``: the JPEG verdict comes
    from the file's own tables (:func:`known_from_file`) at an IJG quality of at least
    :data:`NOISE_SERVES_JPEG_MIN_QUALITY` (a camera's save).

    The JPEG stage restores with FFDNet as its prior; the noise stage after it runs FFDNet again.
    On a noisy camera JPEG the noise stage alone measured better and cheaper (2 real crops:
    +3.93 dB at 8.7 CPU-s/MP against +3.77 dB at 22.5 for both; 10 camera-pipeline photos: +0.44 dB
    per photo at 11 against 23 CPU-s/MP, benchmarks/results/real-noise-sigma.md)."""
    a = report.kinds.get(JPEG)
    if a is None or not known_from_file(report, JPEG):
        return None
    quality = a.measurements.get("quality")
    if quality is None or quality != quality or quality < NOISE_SERVES_JPEG_MIN_QUALITY:
        return None
    return int(quality)


#: Kinds the follow-up round never adds: blur that appears after a stage is that stage's own
#: smoothing (denoising, deblocking), and deblurring it re-sharpens what was just removed (a real
#: DSLR noise crop lost 1.5 dB that way: NikonD800_10_100_6400_planandsofa_2). Haze and rain are
#: the scene's: a stage cannot create them, and haze "found" after brightening a dark photo is its
#: lifted shadows (a real LOL photo fell from 33.0 to 17.6 dB when dehazing followed low light).
FOLLOW_UP_NEVER = frozenset({"blur", "haze", "rain"})

#: Names a stage may have: the six kinds, plus the all-in-one generalist that runs first.
STAGE_NAMES: tuple[str, ...] = (GENERALIST,) + SPECIALIST_ORDER


@dataclass(frozen=True)
class Stage:
    """One step of a plan.

    ``name``: a degradation kind or ``"generalist"``. ``expert_id``: the registry id of the
    expert that runs it. ``strength`` in [0, 1]: how much of the expert's change is kept
    (0 = off, 1 = full effect). ``auto``: chosen by the analysis (it may be dropped when the
    assessment finds it did not help); ``False`` when the user asked for it explicitly.
    """

    name: str
    expert_id: str
    strength: float = 1.0
    auto: bool = True


@dataclass(frozen=True)
class Plan:
    """The ordered stages; ``left_out``: ``(kind, why)`` for each kind the analysis found that the
    automatic plan deliberately gives no stage (``why``: one sentence for a person); the
    follow-up round does not add those kinds either."""

    stages: tuple[Stage, ...] = field(default_factory=tuple)
    left_out: tuple[tuple[str, str], ...] = ()

    def strengths(self) -> dict[str, float]:
        return {s.name: s.strength for s in self.stages}

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Optional[Stage]:
        return next((s for s in self.stages if s.name == name), None)

    def with_strengths(self, strengths: Mapping[str, float]) -> "Plan":
        """A copy with the given stage strengths replaced (unknown names are ignored)."""
        return Plan(tuple(replace(s, strength=_clamp(strengths.get(s.name, s.strength))) for s in self.stages),
                    self.left_out)

    def with_expert(self, name: str, expert_id: str) -> "Plan":
        return Plan(tuple(replace(s, expert_id=expert_id) if s.name == name else s for s in self.stages), self.left_out)

    def to_list(self) -> list[dict]:
        return [{"stage": s.name, "expert": s.expert_id, "strength": round(s.strength, 3)} for s in self.stages]


def _clamp(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


def parse_strength_settings(items: Iterable[str]) -> dict[str, float]:
    """Parse CLI ``KIND=STRENGTH`` items (strength in [0, 1], or a percentage like ``60%``).

    Raises ``ValueError`` with a one-line message on a bad item.
    """
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KIND=STRENGTH, got {item!r}")
        name, value = (p.strip() for p in item.split("=", 1))
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown degradation kind {name!r}; expected one of {', '.join(STAGE_NAMES)}")
        try:
            v = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise ValueError(f"strength for {name} must be a number in [0, 1], got {value!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"strength for {name} must be in [0, 1], got {value}")
        out[name] = v
    return out


def parse_kind_list(text: str) -> list[str]:
    """Parse ``--only noise,jpeg`` into kinds (raises ``ValueError`` on an unknown kind)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError("--only needs at least one kind")
    for k in kinds:
        if k != GENERALIST:
            check_kind(k)
    return kinds


def auto_strength(report: DegradationReport, kind: str, sigma_strength: bool = False) -> float:
    """The strength the analysis proposes for a detected kind: full correction, eased off
    where the analyser is unsure (OPIR: lean towards the gentler result under uncertainty).

    ``sigma_strength``: the expert's strength scales the noise level it removes (FFDNet removes
    σ·s): then 1. The σ it is told is already the measured need (engine.analysis.noise_sigma,
    fitted at strength 1), and the confidence that noise is present says nothing about its size:
    white noise of σ 15 read at confidence 0.25 was denoised as σ 10.8 and came out 1.6 dB below
    the same expert told the measured σ (benchmarks/results/real-noise-sigma.md)."""
    if sigma_strength:
        return 1.0
    a = report.kinds.get(kind)
    confidence = 1.0 if a is None else float(a.confidence)
    return round(_clamp(0.6 + 0.4 * confidence), 2)


@dataclass(frozen=True)
class PlanChoices:
    """What the user chose, for every front end alike (CLI flags, a batch's settings, the
    window's Auto).

    ``auto``: include what the analysis finds. ``strengths``: ``{stage name: strength 0..1}``
    the user set; those stages are included even when not detected. ``only``: restrict the plan
    to these stage names (included even if not detected). ``use_generalist``: an automatic plan
    may put the all-in-one generalist first. ``allow_generative``: experts that invent detail
    (``ExpertInfo.generative``) may be chosen, in the first plan and in the follow-up round.
    ``experts``: ``{stage name: expert id}`` overriding the measured choice.
    """

    auto: bool = True
    strengths: Mapping[str, float] = field(default_factory=dict)
    only: Optional[tuple[str, ...]] = None
    use_generalist: bool = True
    allow_generative: bool = False
    experts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strengths", MappingProxyType(dict(self.strengths)))
        object.__setattr__(self, "experts", MappingProxyType(dict(self.experts)))
        if self.only is not None:
            object.__setattr__(self, "only", tuple(self.only))


class Planner:
    """Plans for one expert registry. Holds no state besides the registry and the presence
    threshold, so one planner serves a whole batch and every thread."""

    def __init__(self, registry: ExpertRegistry, threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> None:
        self.registry = registry
        self.threshold = threshold

    # -- choosing experts -------------------------------------------------------------------
    def best_expert(self, task: str, allow_generative: bool = False) -> Optional[str]:
        """The id of the expert a plan uses for ``task``: the best available one by the measured
        ranking (:meth:`ExpertRegistry.for_task`), skipping generative experts unless allowed;
        ``None`` if none."""
        for e in self.registry.for_task(task):
            if allow_generative or not e.info.generative:
                return e.info.id
        return None

    def upscaler(self, scale: int, allow_generative: bool = False) -> Optional[str]:
        """The id of the best available ``scale``× upscaler (measured rank; generative ones only
        when allowed), or ``None``."""
        for e in self.registry.for_task(UPSCALE):
            if e.info.scale == scale and (allow_generative or not e.info.generative):
                return e.info.id
        return None

    def _sigma_strength(self, expert_id: str) -> bool:
        try:
            return bool(self.registry.get(expert_id).info.sigma_strength)
        except KeyError:
            return False

    def _expert_for(self, name: str, choices: PlanChoices) -> Optional[str]:
        return choices.experts.get(name) or self.best_expert(name, choices.allow_generative)

    # -- the first plan ---------------------------------------------------------------------
    def plan(self, report: DegradationReport, choices: PlanChoices = PlanChoices()) -> Plan:
        """The ordered plan for ``report`` under ``choices``.

        - ``choices.auto``: every kind the report finds at or above the threshold (and at or
          above :data:`AUTO_MIN_SEVERITY`), strength from :func:`auto_strength`, preceded by the
          best available generalist (if any and ``use_generalist``; if it has ``lead_kinds``,
          only when one of them that is also in :data:`AUTO_GENERALIST_LEAD_KINDS` is found and
          was not read from the file itself).
        - ``choices.strengths``: named stages are included even when the analysis did not flag
          them, with exactly that strength (0 keeps the stage but off).
        - ``choices.only``: restrict the plan to these stage names (included even if not detected).
        Stages whose task has no available expert are left out.
        """
        only_set = set(choices.only) if choices.only is not None else None
        wanted: dict[str, tuple[float, bool]] = {}
        left_out: list[tuple[str, str]] = []
        if choices.auto:
            for kind in report.present(self.threshold):
                if _auto_allows(report, kind):
                    wanted[kind] = (auto_strength(report, kind), True)
            quality = noise_serves_jpeg(report) if NOISE in wanted and JPEG in wanted else None
            if quality is not None and JPEG not in choices.strengths and JPEG not in choices.experts:
                del wanted[JPEG]
                left_out.append((JPEG, NOISE_SERVES_JPEG_NOTE.format(q=quality)))
        if only_set is not None:
            wanted = {k: v for k, v in wanted.items() if k in only_set}
            for k in only_set:
                wanted.setdefault(k, (1.0, False))
        for name, value in choices.strengths.items():
            wanted[name] = (_clamp(value), False)

        generalist_wanted = GENERALIST in wanted or (
            choices.auto and choices.use_generalist and only_set is None and any(k in KINDS for k in wanted))
        stages: list[Stage] = []
        if generalist_wanted:
            strength, is_auto = wanted.get(GENERALIST, (1.0, True))
            expert_id = self._expert_for(GENERALIST, choices)
            leads = self.registry.get(expert_id).info.lead_kinds if expert_id else ()
            led = [k for k in wanted
                   if k in leads and k in AUTO_GENERALIST_LEAD_KINDS and not known_from_file(report, k)]
            if expert_id and (GENERALIST in wanted or not leads or led):
                stages.append(Stage(GENERALIST, expert_id, strength, is_auto))
        for kind in SPECIALIST_ORDER:
            if kind not in wanted:
                continue
            strength, is_auto = wanted[kind]
            expert_id = self._expert_for(kind, choices)
            if expert_id:
                if is_auto and self._sigma_strength(expert_id):
                    strength = auto_strength(report, kind, sigma_strength=True)
                stages.append(Stage(kind, expert_id, strength, is_auto))
        return Plan(tuple(stages), tuple(left_out))

    # -- the follow-up round ----------------------------------------------------------------
    def follow_up(self, plan: Plan, final: Optional[DegradationReport], choices: PlanChoices = PlanChoices()) -> Plan:
        """RAR's "repeat": kinds that the restored photo (analysed as ``final``: the output of
        the last stage kept) now shows but the plan never addressed (typically noise made
        visible by brightening a dark photo) get one more specialist each, appended after the
        plan, chosen as in the first plan (measured rank, no generative expert unless
        ``choices.allow_generative``; the user's ``choices.experts`` respected). Only for
        automatic plans without ``only``; returns ``plan`` itself when nothing is to be added."""
        if not choices.auto or choices.only is not None or final is None:
            return plan
        extra = []
        for kind in SPECIALIST_ORDER:
            if kind in FOLLOW_UP_NEVER or plan.stage(kind) is not None or kind in choices.strengths \
                    or kind in dict(plan.left_out):
                continue
            if final.severity(kind) >= max(self.threshold, AUTO_MIN_SEVERITY.get(kind, 0.0)):
                expert_id = self._expert_for(kind, choices)
                if expert_id:
                    extra.append(Stage(kind, expert_id, auto_strength(final, kind, self._sigma_strength(expert_id)),
                                       True))
        return Plan(plan.stages + tuple(extra), plan.left_out) if extra else plan

    # -- the window's controls --------------------------------------------------------------
    def for_controls(self, auto_plan: Plan, enabled: Mapping[str, bool], strengths: Mapping[str, float],
                     experts: Mapping[str, str], keep: Iterable[str] = (), dropped: Iterable[str] = ()) -> Plan:
        """The plan a panel of per-stage controls describes (``enabled``/``strengths``/``experts``
        per stage name), starting from ``auto_plan`` (the plan the photo got, follow-up included).

        The auto plan's stages stay in their order (a follow-up stage may come last), even when
        switched off, so that switching one back on is free; a switched-off generalist is left
        out, so the specialists after it see the unrestored photo and do their own kind's work.
        A stage switched on, or named in ``keep`` (it ran before: switching it off and on again
        is free), goes where :data:`STAGE_NAMES` puts it, as a user stage (``auto=False``).
        Whatever is switched on is therefore in the composed pixels.

        ``dropped``: the auto plan's stages whose automatic result was dropped (an expert that left
        the photo unchanged, e.g. a deblurrer unsure whether a round blur is the scene's own depth of
        field). Moving such a stage's slider away from the plan's strength asks for it, as ``--set``
        does: it becomes a user stage (``auto=False``, so ``ExpertContext.requested``) and runs again
        unjudged. A kept stage's slider only scales what it computed (no run)."""
        def expert_for(name: str, default: str = "") -> str:
            return experts.get(name) or default

        def left_out(name: str) -> bool:
            return name == GENERALIST and not enabled.get(name, False)

        dropped = set(dropped)

        def asked(s: Stage) -> bool:
            return s.name in dropped and abs(float(strengths.get(s.name, s.strength)) - s.strength) > 1e-6

        stages = [Stage(s.name, expert_for(s.name, s.expert_id), float(strengths.get(s.name, 1.0)),
                        s.auto and not asked(s))
                  for s in auto_plan.stages if not left_out(s.name)]
        keep = set(keep)
        rank = {n: i for i, n in enumerate(STAGE_NAMES)}
        for name in STAGE_NAMES:
            if auto_plan.stage(name) is not None or not expert_for(name) or left_out(name):
                continue
            if enabled.get(name, False) or name in keep:
                at = next((i for i, s in enumerate(stages) if rank[s.name] > rank[name]), len(stages))
                stages.insert(at, Stage(name, expert_for(name), float(strengths.get(name, 1.0)), auto=False))
        return Plan(tuple(stages))


def build_plan(
    report: DegradationReport,
    registry: ExpertRegistry,
    *,
    auto: bool = True,
    strengths: Optional[Mapping[str, float]] = None,
    only: Optional[Iterable[str]] = None,
    threshold: float = DEFAULT_PRESENCE_THRESHOLD,
    use_generalist: bool = True,
    allow_generative: bool = False,
    experts: Optional[Mapping[str, str]] = None,
) -> Plan:
    """:meth:`Planner.plan` with the choices as keywords (see :class:`PlanChoices`)."""
    choices = PlanChoices(auto=auto, strengths=strengths or {}, only=None if only is None else tuple(only),
                          use_generalist=use_generalist, allow_generative=allow_generative, experts=experts or {})
    return Planner(registry, threshold).plan(report, choices)


def known_from_file(report: DegradationReport, kind: str) -> bool:
    """Whether ``kind``'s verdict came from the file itself (a JPEG's own quantisation tables).
    Such a kind does not bring in a generalist that leads on it: the jpeg specialist restores with
    the file's tables, which measured better than the generalist before it
    (benchmarks/results/jpeg-restoration.md)."""
    a = report.kinds.get(kind)
    return a is not None and a.measurements.get("from_file") == 1.0


def best_expert(registry: ExpertRegistry, task: str, allow_generative: bool = False) -> Optional[str]:
    """:meth:`Planner.best_expert` for ``registry``."""
    return Planner(registry).best_expert(task, allow_generative)
