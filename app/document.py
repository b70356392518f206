"""The open photo and its restoration controls (a view-model with no Qt in it).

A :class:`Document` owns the loaded photo, the engine session (with its stage cache) and the
user's :class:`ControlState`. Strength and on/off changes only re-compose cached stage results;
adding a stage or choosing another expert needs a run, which :meth:`Document.needs_run` tells.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping, Optional

import numpy as np

from engine.analysis.report import DegradationReport
from engine.imageio.atomic import remove_stale_partials
from engine.kinds import GENERALIST, KINDS, LABELS
from engine.photo import Photo
from engine.pipeline import Plan, PlanChoices, RestoreOptions, Restorer, RestorationSession, StageResult
from engine.pipeline.plan import STAGE_NAMES
from engine.pipeline.spill import ChangeStore, window_change_budget
from engine.progress import Progress

#: Strength a stage gets when the user switches on a kind the analysis did not flag.
DEFAULT_MANUAL_STRENGTH = 1.0
#: The change map's full scale: a mean change of this much (in [0, 1] pixel units, i.e. 10 %
#: of the tonal range, about 26 of 255 levels) or more is drawn at full strength.
CHANGE_MAP_FULL_SCALE = 0.1
#: The uncertainty overlay's full scale: an expected absolute error of this many 8-bit levels
#: or more is drawn at full strength (the legend says so).
UNCERTAINTY_FULL_SCALE = 32.0
#: The preview's uncertainty map is computed on at most this many pixels (the export uses the
#: same map, so the file matches the preview).
UNCERTAINTY_PREVIEW_PIXELS = 2_000_000


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class ControlState:
    """What the controls panel shows: per stage name, on/off, strength in [0, 1] and expert id.

    Immutable, so it can be stored on the undo stack and compared with ``==``.
    """

    enabled: Mapping[str, bool] = field(default_factory=dict)
    strengths: Mapping[str, float] = field(default_factory=dict)
    experts: Mapping[str, str] = field(default_factory=dict)
    #: How far the result leans back towards the original where it is uncertain (0..1, see
    #: :func:`engine.uncertainty.lean`); composed like a strength, never a run.
    caution: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled", _frozen(self.enabled))
        object.__setattr__(self, "strengths", _frozen(self.strengths))
        object.__setattr__(self, "experts", _frozen(self.experts))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ControlState) and dict(self.enabled) == dict(other.enabled)
                and dict(self.strengths) == dict(other.strengths) and dict(self.experts) == dict(other.experts)
                and self.caution == other.caution)

    __hash__ = None  # type: ignore[assignment]

    def with_strength(self, name: str, strength: float) -> "ControlState":
        return replace(self, strengths={**self.strengths, name: min(max(float(strength), 0.0), 1.0)})

    def with_enabled(self, name: str, on: bool) -> "ControlState":
        return replace(self, enabled={**self.enabled, name: bool(on)})

    def with_caution(self, caution: float) -> "ControlState":
        return replace(self, caution=min(max(float(caution), 0.0), 1.0))

    def with_expert(self, name: str, expert_id: str) -> "ControlState":
        return replace(self, experts={**self.experts, name: expert_id})

    def effective_strengths(self) -> dict[str, float]:
        """``{stage: strength}`` with switched-off stages at 0 (what compose and export use)."""
        return {n: (float(s) if self.enabled.get(n, False) else 0.0) for n, s in self.strengths.items()}

    def active_strengths(self) -> dict[str, float]:
        """Only the switched-on stages with their strengths (what a batch "current settings" uses)."""
        return {n: float(s) for n, s in self.strengths.items() if self.enabled.get(n, False)}


@dataclass(frozen=True)
class StageRow:
    """One line of the controls panel. ``choices``: ``(expert id, display name, description)``
    of the installed experts for the stage, best first; ``status``: a short note (e.g. why a stage was dropped);
    ``handled_by``: the stage (the generalist) that did this kind's work instead, so the slider
    still acts."""

    name: str
    label: str
    severity: Optional[float]
    enabled: bool
    strength: float
    expert_id: str
    choices: tuple[tuple[str, str, str], ...]
    dropped: bool = False
    status: str = ""
    handled_by: Optional[str] = None


class PhotoPreview:
    """What the viewer shows of a photo that is still being analysed and restored: the original
    on both sides (an :class:`app.viewer.ImageSource`), so the photo is on screen as soon as it
    is decoded. 8-bit display levels are made per sampling step from the samples the screen
    shows, never for the whole photo at once."""

    revision = 0

    def __init__(self, photo: Photo) -> None:
        self.photo = photo
        self.width = photo.width
        self.height = photo.height
        self._levels: dict[int, np.ndarray] = {}

    def before(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        level = self._levels.get(step)
        if level is None:
            from .imaging import to_display_uint8

            level = self._levels[step] = to_display_uint8(self.photo.pixels[::step, ::step])
        return level[rows.start // step:-(-rows.stop // step), cols.start // step:-(-cols.stop // step)]

    after = before

    def change_map(self, step: int) -> Optional[np.ndarray]:
        return None

    def uncertainty_map(self, step: int) -> Optional[np.ndarray]:
        return None


class StagePreview(PhotoPreview):
    """What the viewer shows while a photo's stages land one by one: the original on the left,
    on the right the stages that have run so far composed at the plan's strengths (exactly what
    the finished document shows when the last stage has landed). Built off the UI thread by
    :meth:`build`; shares the original's 8-bit display levels."""

    _revisions = iter(range(1, 1 << 62))

    def __init__(self, original: PhotoPreview, after8: np.ndarray, results: list[StageResult]) -> None:
        self.photo = original.photo
        self.width, self.height = original.width, original.height
        self._levels = original._levels  # the original's display levels, made once per step
        self._after8 = after8
        self._after_levels: dict[int, np.ndarray] = {1: after8}
        self.results = results
        self.revision = next(self._revisions)  # a new picture each time (viewer cache key)

    #: Rows composed at a time when a preview is built (bounds the float32 scratch to a band).
    BAND_ROWS = 256

    @classmethod
    def build(cls, original: PhotoPreview, session: RestorationSession, plan: Plan,
              results: list[StageResult]) -> "StagePreview":
        """Compose ``results`` (a run's stages so far) at ``plan``'s strengths into 8-bit display
        pixels, band by band (no full-size float32 copy). Call off the UI thread."""
        from .imaging import display_in_bands

        strengths = plan.strengths()
        h, w = session.image.shape[:2]
        after8 = display_in_bands(h, w, cls.BAND_ROWS, lambda rows: session.compose(
            strengths, region=(rows, slice(0, w)), results=results))
        return cls(original, after8, results)

    @property
    def landed(self) -> list[StageResult]:
        """The stages so far that changed the picture (kept, not dropped)."""
        return [r for r in self.results if not r.dropped and r.delta is not None]

    def after(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        level = self._after_levels.get(step)
        if level is None:
            level = self._after_levels[step] = np.ascontiguousarray(self._after8[::step, ::step])
        return level[rows.start // step:-(-rows.stop // step), cols.start // step:-(-cols.stop // step)]


#: ``on_stage(session, plan, results so far)``: a stage of the opening restoration just ran.
StageCallback = Callable[[RestorationSession, Plan, list[StageResult]], None]


class Document:
    """One opened photo: pixels, report, the auto plan, the controls and the cached stages."""

    def __init__(self, photo: Photo, restorer: Restorer, session: RestorationSession, auto_plan: Plan) -> None:
        self.photo = photo
        self.restorer = restorer
        self.session = session
        self.auto_plan = auto_plan
        self.auto_state = self._state_from_plan(auto_plan)
        #: The auto plan's stages its run dropped (not those the generalist handled): moving one's
        #: slider asks for it (the Planner's ``for_controls``).
        self._auto_dropped = frozenset(r.name for r in session.results if r.dropped and r.handled_by is None)
        self.state = self.auto_state
        self._ran: Optional[tuple] = None
        self._ran_names: frozenset[str] = frozenset()
        self._display8: dict[int, np.ndarray] = {}
        self.revision = 0  # bumped whenever the restored pixels change (viewer cache key)
        self._unleaned: Optional[int] = None  # the revision last drawn without its Caution blend
        #: Seconds the last run that actually ran experts took (``None``: none yet).
        self.last_run_seconds: Optional[float] = None
        self._before_histogram = None
        from engine.uncertainty import SessionUncertainty

        #: Held while experts run on this document's session (:meth:`run`, :meth:`complete_knots`)
        #: and by :meth:`close`, so that a background knot run never overlaps a run or the release.
        self._experts = threading.Lock()
        self._closed = False
        #: The composed result's uncertainty (engine.uncertainty), cached per setting.
        self.uncertainty = SessionUncertainty(session, max_pixels=UNCERTAINTY_PREVIEW_PIXELS)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def open(cls, photo: Photo, restorer: Restorer, progress: Optional[Progress] = None,
             tile: Optional[int] = None, on_stage: Optional[StageCallback] = None) -> "Document":
        """Analyse ``photo``, plan and run it as the CLI does (the orchestrator's automatic
        restoration, follow-up round included), and show that (call this off the UI thread).
        The full-size stage changes stay in memory within :func:`window_change_budget`, the rest
        in temporary files until :meth:`close` (the sliders then move on screen-resolution
        copies; the export composes from the files, the same bytes).
        A stage whose strength is a physical parameter (the denoiser) runs at full strength only:
        :meth:`complete_knots` adds the knots its slider composes from (until then the slider
        scales its change linearly; strengths 0 and 1, the automatic plan's, are exact either way).
        ``tile``: tile edge in pixels for the experts, ``None`` for automatic; ``on_stage``: told
        of each stage as it lands (on this thread), so a window can show it."""
        progress = progress or Progress()
        progress(0.0, "analysing")
        orchestrator = restorer.orchestrator
        store = ChangeStore(window_change_budget())
        # change files a killed window left behind (a dead writer's only: see remove_stale_partials)
        remove_stale_partials(store.folder, recursive=False)
        session = orchestrator.session(photo.pixels, tile=tile, jpeg=photo.jpeg, metadata=photo.metadata,
                                       changes=store)
        # the photo is on screen after one denoiser run; its slider's half-strength knot follows
        # (complete_knots, on a window's background worker)
        session.defer_knots = True
        try:
            session.analyse()
            progress(0.1, "restoring")
            listener = None if on_stage is None else (lambda plan, results: on_stage(session, plan, results))
            outcome = orchestrator.restore(session, PlanChoices(), progress.sub(0.1, 0.8), on_stage=listener)
            results = outcome.results
            doc = cls(photo, restorer, session, outcome.plan)
            doc.run(doc.state, progress.sub(0.8, 1.0))
        except BaseException:
            session.release()  # cancelled or failed: its changes' files go now
            raise
        if results:
            doc.last_run_seconds = sum(r.seconds for r in doc.session.results)
        return doc

    def _state_from_plan(self, plan: Plan) -> ControlState:
        enabled, strengths, experts = {}, {}, {}
        for name in self.stage_names():
            stage = plan.stage(name)
            enabled[name] = stage is not None
            strengths[name] = stage.strength if stage is not None else DEFAULT_MANUAL_STRENGTH
            experts[name] = stage.expert_id if stage is not None else (
                self.restorer.planner.best_expert(name) or next((c[0] for c in self.expert_choices(name)), ""))
        return ControlState(enabled, strengths, experts)

    # -- facts ------------------------------------------------------------------------------
    @property
    def report(self) -> DegradationReport:
        return self.session.report

    @property
    def width(self) -> int:
        return self.photo.width

    @property
    def height(self) -> int:
        return self.photo.height

    def stage_names(self) -> list[str]:
        """Stages the panel offers: the six kinds, plus the generalist when one is installed."""
        return [n for n in STAGE_NAMES if n in KINDS or self.auto_plan.stage(n) or self.expert_choices(n)]

    def expert_choices(self, name: str) -> list[tuple[str, str, str]]:
        """``(expert id, display name, description)`` of the available experts for stage
        ``name``, best first (the Planner's order)."""
        registry = self.restorer.registry
        return [(e.info.id, e.info.name, e.info.description) for e in registry.for_task(name)]

    def rows(self, state: Optional[ControlState] = None) -> list[StageRow]:
        """The panel's rows for ``state`` (default: the state shown now)."""
        state = state or self.state
        results = {r.name: r for r in self.session.results}
        rows = []
        for name in self.stage_names():
            res: Optional[StageResult] = results.get(name)
            sev = None if name == GENERALIST else self.report.severity(name)
            rows.append(StageRow(
                name=name, label=LABELS.get(name, name), severity=sev,
                enabled=bool(state.enabled.get(name, False)),
                strength=float(state.strengths.get(name, DEFAULT_MANUAL_STRENGTH)),
                expert_id=state.experts.get(name, ""), choices=tuple(self.expert_choices(name)),
                dropped=bool(res is not None and res.dropped), status=res.reason if res is not None else "",
                handled_by=res.handled_by if res is not None else None))
        return rows

    # -- plan for a state -------------------------------------------------------------------
    def plan_for(self, state: ControlState) -> Plan:
        """The stages to run for ``state`` (the Planner's :meth:`~engine.pipeline.plan.Planner.for_controls`:
        the auto plan plus what the user switched on; stages that ran stay so that switching
        them back on is free)."""
        return self.restorer.planner.for_controls(self.auto_plan, state.enabled, state.strengths, state.experts,
                                                  keep=self._ran_names, dropped=self._auto_dropped)

    @staticmethod
    def _signature(plan: Plan) -> tuple:
        return tuple((s.name, s.expert_id, s.auto) for s in plan.stages)

    def run_signature(self, state: ControlState) -> tuple:
        """What a run for ``state`` computes: stage names, experts and auto flags (strengths
        are not part of it: they only change the composition)."""
        return self._signature(self.plan_for(state))

    def needs_run(self, state: ControlState) -> bool:
        """Whether showing ``state`` needs experts to run (new stage or other expert)."""
        return self._ran != self._signature(self.plan_for(state))

    def run(self, state: ControlState, progress: Optional[Progress] = None) -> list[StageResult]:
        """Run (or fetch from the cache) the plan for ``state``. Call off the UI thread. The run
        ends when the pixels are done: ``state``'s uncertainty map and sentence are not made here
        (:meth:`measure_uncertainty` makes them, cancellably, on a window's maps worker), so
        nothing of the document changes after the last point where ``progress`` can cancel it."""
        import time

        plan = self.plan_for(state)
        t0 = time.perf_counter()
        with self._experts:
            runs = self.session.expert_runs
            results = self.restorer.orchestrator.run(self.session, plan, progress)
            ran = self.session.expert_runs != runs
        if ran:  # a run served from the cache is not "the last run"
            self.last_run_seconds = time.perf_counter() - t0
        self._ran = self._signature(plan)
        self._ran_names = frozenset(plan.names())
        self.state = state
        self.revision += 1
        return results

    def set_state(self, state: ControlState) -> None:
        """Show ``state`` (the caller has made sure it needs no run)."""
        if state != self.state:
            self.state = state
            self.revision += 1

    # -- pixels for the viewer and the export -----------------------------------------------
    def before(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        """uint8 crop of the original, from a cache of 8-bit display levels (one per step)."""
        level = self._display8.get(step)
        if level is None:  # per pixel, so the same as subsampling the full-size 8-bit levels
            from .imaging import to_display_uint8

            level = self._display8[step] = to_display_uint8(self.photo.pixels[::step, ::step])
        return level[rows.start // step:-(-rows.stop // step), cols.start // step:-(-cols.stop // step)]

    def after(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        """What the viewer shows: :meth:`_compose`'s crop, except while the Caution blend's map of a
        new setting is not made (:meth:`measure_uncertainty` makes it off the UI thread): then the
        result without the blend, and :meth:`caution_pending` says so."""
        return self._shown(region=(rows, cols), step=step)

    def _shown(self, region=None, step: int = 1) -> np.ndarray:
        if self.caution_pending():
            self._unleaned = self.revision
            return self.session.compose(self.state.effective_strengths(), region=region, step=step)
        return self._compose(region=region, step=step)

    def caution_pending(self) -> bool:
        """Whether Caution is on and its map for the setting shown is not made yet."""
        return self.state.caution > 0.0 and bool(self.session.results) and \
            self.uncertainty.composed(self.state.effective_strengths(), compute=False) is None

    def refresh_caution(self) -> bool:
        """After a map arrived: when the picture was drawn without its Caution blend and the blend
        can be made now, a new :attr:`revision` (so the viewer redraws) and True."""
        if self._unleaned is not None and self._unleaned == self.revision and not self.caution_pending():
            self._unleaned = None
            self.revision += 1
            return True
        return False

    def _compose(self, region=None, step: int = 1) -> np.ndarray:
        """What the preview and the export show: the strengths, then the Caution blend."""
        return self.uncertainty.compose(self.state.effective_strengths(), self.state.caution, region=region, step=step)

    def uncertainty_map(self, step: int) -> Optional[np.ndarray]:
        """Expected absolute error of what is shown, per pixel, for the overlay: float32
        (H/step)x(W/step) in [0, 1], 1.0 = :data:`UNCERTAINTY_FULL_SCALE` levels or more. Computes
        nothing (a paint asks): the full-resolution map of the setting shown when it is made, else
        its preview-grid map when that is, else ``None``; :meth:`measure_uncertainty` makes them."""
        if not self.session.results:
            return None
        return self.uncertainty.heat(self.state.effective_strengths(), step, UNCERTAINTY_FULL_SCALE, compute=False)

    def uncertainty_measured(self, state: Optional[ControlState] = None) -> bool:
        """Whether every map ``state`` (default: the one shown) reads is made: its full-resolution
        map and sentence (the overlay and the sentence are final) and, with Caution on, the map
        its blend reads (a photo with nothing restored: yes)."""
        state = state or self.state
        if not self.session.results:
            return True
        strengths = state.effective_strengths()
        return self.uncertainty.describe(strengths, compute=False) is not None and \
            (state.caution <= 0.0 or self.uncertainty.composed(strengths, compute=False) is not None)

    def uncertainty_status(self) -> str:
        """What the Uncertainty overlay's caption adds while its map is not final: ``""`` when it is."""
        if self.uncertainty_measured():
            return ""
        if self.uncertainty.composed(self.state.effective_strengths(), compute=False) is not None:
            return "quick preview, measuring at full resolution…"
        return "measuring this setting…"

    def measure_uncertainty(self, state: ControlState, preview: bool = False,
                            on_preview: Optional[Callable[[], None]] = None,
                            progress: Optional[Progress] = None) -> None:
        """Make ``state``'s full-resolution uncertainty map and sentence (seconds on a 5 MP photo:
        call off the UI thread; cached per setting). First, when ``preview`` asks for it to show
        meanwhile or Caution's blend reads it, the preview-grid map (about a quarter of the cost),
        then ``on_preview()``. ``progress`` is checked between the maps and inside each (between
        bands and feature planes): its ``Cancelled`` stops the measurement midway (a newer setting
        superseded this one, or the window closes) and leaves nothing of the stopped map cached."""
        if not self.session.results:
            return
        strengths = state.effective_strengths()
        wanted = state.caution > 0.0 or (preview and self.uncertainty.full(strengths, compute=False) is None)
        if wanted and self.uncertainty.composed(strengths, compute=False) is None:
            self.uncertainty.composed(strengths, progress=progress)
            if on_preview is not None:
                on_preview()
        if progress is not None:
            progress.check()
        self.uncertainty.describe(strengths, progress=progress)

    def uncertainty_text(self) -> str:
        """One sentence for the analysis panel: how much of the result is uncertain, and where; while
        the setting shown is not measured yet (:meth:`measure_uncertainty`), says so. Computes nothing."""
        if not self.session.results:
            return ""
        text = self.uncertainty.describe(self.state.effective_strengths(), compute=False)
        return text if text is not None else "Measuring the uncertainty of this setting…"

    def change_map(self, step: int) -> Optional[np.ndarray]:
        """Mean absolute change per pixel, 1.0 = :data:`CHANGE_MAP_FULL_SCALE` or more."""
        if not self.session.results:
            return None
        return self.session.change_map(self.state.effective_strengths(), step=step,
                                       full_scale=CHANGE_MAP_FULL_SCALE)

    def histograms(self):
        """``(before, after)`` :class:`engine.histogram.Histogram` of the original and of what the
        preview shows now (:meth:`after`: without the Caution blend while its map is being made), on
        a quarter-megapixel sample. Call off the UI thread."""
        from engine.histogram import compute_histogram, sample_step

        step = sample_step(self.height, self.width)
        if self._before_histogram is None:
            self._before_histogram = compute_histogram(self.photo.pixels[::step, ::step])
        after = compute_histogram(self._shown(step=step))
        return self._before_histogram, after

    def knots_pending(self, state: Optional[ControlState] = None) -> bool:
        """Whether a stage shown waits for its deferred knots; with ``state``, only one whose
        strength there they would change (strictly between 0 and 1)."""
        return self.session.knots_pending(None if state is None else state.effective_strengths())

    def complete_knots(self, progress: Optional[Progress] = None) -> bool:
        """Run the deferred knots of the stages shown (one denoiser run each: call off the UI
        thread); True when any landed, and the picture then has a new :attr:`revision` (a
        strength between the knots composes from them now). ``progress``'s ``Cancelled`` stops
        it; what did not land stays pending. Waits for a run in progress to end first."""
        with self._experts:
            if self._closed:
                return False
            landed = self.session.complete_knots(progress)
        if landed:
            self.revision += 1
        return landed

    def restored_photo(self, progress: Optional[Progress] = None) -> Photo:
        """The full-resolution result for export (exactly what the preview composes; where the
        setting shown needs deferred knots, they are run first, so the file has the exact result)."""
        if self.knots_pending(self.state):
            self.complete_knots(progress)
        return self.photo.with_pixels(self._compose())

    def close(self) -> None:
        """Forget the stage changes and delete their temporary files (the photo was closed or
        replaced); the document cannot compose afterwards."""
        with self._experts:  # a background knot run stops at its next check (it is cancelled first)
            self._closed = True
            self.session.release()
        self._display8.clear()

    def batch_options(self, **kwargs) -> RestoreOptions:
        """Options that apply this document's current settings to other photos."""
        experts = {n: e for n, e in self.state.experts.items() if e and self.state.enabled.get(n, False)}
        return RestoreOptions(auto=False, strengths=self.state.active_strengths(), experts=experts,
                              use_generalist=bool(self.state.enabled.get(GENERALIST, False)), **kwargs)
