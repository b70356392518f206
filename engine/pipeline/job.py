"""Restore or analyse whole files: load → analyse → plan → run → compose → upscale → save.

This is the one file job the CLI, the GUI's batch queue and cluster workers share; the
restoration itself (analyse, plan, run, follow-up) is :class:`engine.pipeline.orchestrator.Orchestrator`'s,
which the window uses too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ..analysis.jpeg_tables import JpegQuantisation
from ..analysis.report import DegradationReport
from ..errors import Cancelled, OutputExistsError, RestoraError, UsageError, describe_error
from ..experts.base import ExpertContext, ExpertRegistry
from ..kinds import UPSCALE
from ..imageio.formats import FORMATS, OFFERED_FORMATS, RASTER_FORMATS, same_output_format
from ..photo import Photo, PhotoMetadata
from ..progress import Progress
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD
from .orchestrator import Orchestrator, report_of_full_strength
from .plan import Plan, PlanChoices
from .session import RestorationSession, reads_jpeg_decoding
from .spill import ChangeStore

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RestoreOptions:
    """How to restore. ``strengths``/``only``/``auto`` as in :func:`build_plan`; ``scale`` 1, 2
    or 4; ``fmt`` one of ``"same"`` or :data:`engine.imageio.formats.OFFERED_FORMATS`; ``bit_depth`` 8, 16 or ``None``
    (same as input where the format allows); ``jpeg_quality`` 1..100 for JPEG/WebP outputs."""

    auto: bool = True
    strengths: Mapping[str, float] = field(default_factory=dict)
    only: Optional[tuple[str, ...]] = None
    scale: int = 1
    tile: Optional[int] = None
    fmt: str = "same"
    bit_depth: Optional[int] = None
    overwrite: bool = False
    jpeg_quality: int = 95
    use_generalist: bool = True
    allow_generative: bool = False
    experts: Mapping[str, str] = field(default_factory=dict)
    skip_existing: bool = False
    #: Also estimate where the result may be wrong (``engine.uncertainty``): the result's
    #: ``uncertainty`` summary, and ``restore_file`` writes ``<stem>.uncertainty.png`` beside it.
    uncertainty: bool = False
    #: The window's "Caution" control (0..1): lean the result back towards the input where it
    #: is uncertain (:func:`engine.uncertainty.lean`); 0 leaves the result as composed.
    caution: float = 0.0
    #: The plan's uncertainty rule (:mod:`engine.uncertainty.assess`): also drop a stage chosen by
    #: the analysis whose result is uncertain for a small gain. Off by default (measured in
    #: ``benchmarks/results/uncertainty-plan-rule.md``).
    drop_uncertain: bool = False

    def choices(self) -> PlanChoices:
        """The planning part of these options."""
        return PlanChoices(auto=self.auto, strengths=self.strengths, only=self.only,
                           use_generalist=self.use_generalist, allow_generative=self.allow_generative,
                           experts=self.experts)


def check_options(options: RestoreOptions) -> None:
    """Raise :class:`UsageError` (one line) for options that contradict each other, so a batch
    is refused before any photo is restored: a bit depth the chosen format cannot store, an
    unknown format or scale, ``overwrite`` together with ``skip_existing``."""
    if options.fmt != "same" and options.fmt not in OFFERED_FORMATS:
        raise UsageError(f"unknown output format {options.fmt!r}; expected same, {', '.join(OFFERED_FORMATS)}")
    if options.bit_depth is not None and options.bit_depth not in (8, 16):
        raise UsageError(f"--bit-depth must be 8 or 16, not {options.bit_depth}")
    if options.bit_depth is not None and options.fmt in FORMATS \
            and options.bit_depth not in FORMATS[options.fmt].bit_depths:
        raise UsageError(f"{options.fmt.upper()} cannot store {options.bit_depth}-bit images; "
                         f"use --format png or tiff for 16-bit")
    if options.scale not in (1, 2, 4):
        raise UsageError(f"--scale must be 1, 2 or 4, not {options.scale}")
    if not 1 <= int(options.jpeg_quality) <= 100:
        raise UsageError(f"JPEG quality must be between 1 and 100, not {options.jpeg_quality}")
    if not 0.0 <= float(options.caution) <= 1.0:
        raise UsageError(f"--caution must be between 0 and 1, not {options.caution:g}")
    if options.overwrite and options.skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other; choose one")


@dataclass
class RestoreResult:
    """The outcome for one input (the ``--json`` line of the CLI contract)."""

    input: Path
    output: Optional[Path] = None
    report: Optional[DegradationReport] = None
    report_after: Optional[DegradationReport] = None
    stages: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    error: Optional[str] = None
    #: True when the output already existed and ``skip_existing`` left it as it was.
    skipped: bool = False
    #: What the output could not keep from the input, one short phrase each (e.g. "alpha
    #: channel (JPEG has none)"); empty when everything was kept.
    not_kept: list[str] = field(default_factory=list)
    #: With ``RestoreOptions.uncertainty``: ``{"mean", "p95", "fraction_above"}`` of the expected
    #: absolute error map (8-bit levels; fraction of pixels above
    #: :data:`engine.uncertainty.UNCERTAIN_LEVELS`), its sidecar file, and the map itself (HxW).
    uncertainty: Optional[dict] = None
    uncertainty_path: Optional[Path] = None
    uncertainty_map: Optional[np.ndarray] = field(default=None, repr=False)
    #: ``{kind: why}`` for kinds the analysis found that the automatic plan gave no stage of their
    #: own (:attr:`engine.pipeline.plan.Plan.left_out`), one sentence for a person.
    left_out: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "report": None if self.report is None else self.report.severities(),
            "report_after": None if self.report_after is None else self.report_after.severities(),
            "stages": self.stages,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "skipped": self.skipped,
            "not_kept": list(self.not_kept),
            "left_out": dict(self.left_out),
            "uncertainty": None if self.uncertainty is None else dict(
                self.uncertainty, **({"map": str(self.uncertainty_path)} if self.uncertainty_path else {})),
        }


def output_extension(photo: Optional[Photo], source: Path, fmt: str, content: Optional[str] = None) -> str:
    """The output file extension (with dot) for ``fmt``.

    ``"same"`` keeps the format of the input's *content* (``photo.source_format``, or
    ``content`` when no photo is decoded yet): the input's own extension when it names that
    format, else the format's usual one (a PNG named ``.jpg`` gives ``.png``, so its 16 bits
    and alpha are kept); RAW becomes ``.tif``. With neither, the input's extension is kept.
    """
    if fmt == "same":
        content = photo.source_format if photo is not None else content
        suffix = source.suffix.lower()
        if content is None:
            return suffix or ".png"
        if content != "raw" and RASTER_FORMATS.get(suffix) == content:
            return suffix
        return FORMATS[same_output_format(content)].extension
    if fmt not in OFFERED_FORMATS:
        raise RestoraError(f"unknown output format {fmt!r}; expected same, {', '.join(OFFERED_FORMATS)}")
    return FORMATS[fmt].extension


class Restorer:
    """Restores photo files with one expert registry (built once, shared by a whole batch):
    load → :class:`Orchestrator` (analyse, plan, run, follow-up) → compose → upscale → save."""

    def __init__(self, registry: ExpertRegistry, *, device: str = "cpu", analyser=None) -> None:
        self.orchestrator = Orchestrator(registry, device=device, analyser=analyser)
        self.registry = registry
        self.device = device

    @property
    def planner(self):
        return self.orchestrator.planner

    def session(self, image: np.ndarray, options: RestoreOptions = RestoreOptions(),
                jpeg: Optional[JpegQuantisation] = None,
                metadata: Optional[PhotoMetadata] = None, changes: Optional[ChangeStore] = None) -> RestorationSession:
        """A session for ``image`` (see :meth:`Orchestrator.session`)."""
        return self.orchestrator.session(image, tile=options.tile, jpeg=jpeg, metadata=metadata, changes=changes)

    def plan_for(self, session: RestorationSession, options: RestoreOptions) -> Plan:
        return self.orchestrator.plan(session, options.choices())

    def restore_photo(self, photo: Photo, options: RestoreOptions = RestoreOptions(),
                      progress: Optional[Progress] = None, *,
                      budget: Optional[int] = None, changes: Optional[ChangeStore] = None,
                      consume: bool = False) -> tuple[Photo, RestoreResult]:
        """Restore an in-memory photo. Returns the restored photo (not saved) and the result.

        ``budget``: bytes the restoration may use; a plan that needs more is refused
        (:class:`engine.errors.NotEnoughMemoryError`) before any stage runs. ``None``: no check.
        ``changes``: where the full-size stage changes are kept (within its byte budget in
        memory, the rest on disk; closed when done); ``None``: all in memory. ``consume``: the
        result is composed into ``photo.pixels`` itself (the caller needs the input no more),
        saving a full-size float copy. Both are ignored with ``options.uncertainty`` (its map
        reads the input and every change after composing).
        """
        progress = progress or Progress()
        t0 = time.perf_counter()
        if options.uncertainty or options.caution > 0.0:
            changes, consume = None, False
        session = self.session(photo.pixels, options, jpeg=photo.jpeg, metadata=photo.metadata, changes=changes)
        session.overwrite_input = consume and not options.drop_uncertain  # the rule reads each stage's input
        session.drop_uncertain = options.drop_uncertain
        # composed once, at the plan's strengths: the maps and Caution read that result and each stage's
        # full-strength change, never the slider's 0.5 knot
        session.one_shot = True
        progress(0.0, "analysing")
        report = session.analyse()
        plan = self.plan_for(session, options)
        if budget is not None:
            from .memory import check_fits

            experts = [stage.expert_id for stage in plan.stages]
            # a conditioned generalist also caches one share per kind it is told
            conditioned = any(self.registry.get(e).info.conditioned for e in experts)
            told = len(plan.stages) + (len(report.present(DEFAULT_PRESENCE_THRESHOLD)) if conditioned else 0)
            # a JPEG photo's input is written over only where no later stage reads the file's decoding
            in_place = {e for i, e in enumerate(experts)
                        if getattr(self.registry.get(e), "run_in_place", None) is not None
                        and (session.jpeg is None or not any(reads_jpeg_decoding(self.registry.get(x))
                                                             for x in experts[i:]))} \
                if session.overwrite_input else set()
            check_fits(photo.path or Path("<memory>"), photo.width, photo.height, cached_changes=told,
                       scale=options.scale, budget=budget, experts=experts, in_place=in_place,
                       change_budget=None if session.changes is None else session.changes.budget)
        upscale_share = 0.5 if options.scale != 1 else 0.0
        run_end = 0.95 - upscale_share * 0.9
        outcome = self.orchestrator.restore(session, options.choices(), progress.sub(0.05, run_end), plan=plan)
        plan, results = outcome.plan, outcome.results
        strengths = plan.strengths()
        stages = [r.to_dict(strengths.get(r.name, 1.0)) for r in results]
        umap = uncertain = faces = None
        if options.uncertainty or options.caution > 0.0:
            from ..uncertainty import SessionUncertainty

            uncertain = SessionUncertainty(session)
        if options.uncertainty:
            from ..uncertainty import stage_maps, summarise

            umap = uncertain.composed(strengths)
            faces = uncertain.faces(strengths)
            for stage, smap in stage_maps(session, results, uncertainty=uncertain).items():  # summaries in the JSON
                for d in stages:
                    if d["stage"] == stage:
                        d["uncertainty"] = summarise(smap)
        if uncertain is not None and options.caution > 0.0:
            pixels = uncertain.compose(strengths, options.caution)  # the window's Caution, on a full-resolution map
        else:
            pixels = session.compose_into(strengths, into_input=consume)
        session.release()  # the stage changes are composed: upscaling, analysing and saving run without them
        if options.scale != 1:
            pixels, upscale_stage = self.upscale(pixels, options, progress.sub(0.95 - upscale_share * 0.9, 0.95))
            stages.append(upscale_stage)
        report_after = report
        if options.scale == 1 and plan.stages:
            reused = None if options.caution > 0.0 else report_of_full_strength(results, strengths)
            report_after = reused if reused is not None else session.analyser(pixels)
        restored = photo.with_pixels(pixels.astype(np.float32, copy=False))
        result = RestoreResult(input=photo.path or Path("<memory>"), report=report, report_after=report_after,
                               stages=stages, seconds=time.perf_counter() - t0, left_out=dict(plan.left_out))
        if umap is not None:
            from ..uncertainty import summarise

            result.uncertainty, result.uncertainty_map = summarise(umap, faces=faces), umap
        progress(1.0, "done")
        return restored, result

    def certain_experts(self, options: RestoreOptions, pixels: int) -> list[str]:
        """Before decoding, what the options make certain: for each kind named by ``only`` (a
        stage the user asked for), the cheapest expert that may serve it (the one ``experts``
        names, else the least memory of the registry's for that kind); the costliest of those,
        as one stage. A photo refused from its header then could not fit under any plan."""
        from .memory import expert_cost

        chosen = []
        for kind in options.only or ():
            ids = [options.experts[kind]] if kind in options.experts else \
                [e.info.id for e in self.registry.for_task(kind)]
            if ids:
                chosen.append(min(ids, key=lambda e: expert_cost(e, pixels)))
        return [max(chosen, key=lambda e: expert_cost(e, pixels))] if chosen else []

    def upscale(self, pixels: np.ndarray, options: RestoreOptions, progress: Progress) -> tuple[np.ndarray, dict]:
        if options.scale not in (2, 4):
            raise RestoraError(f"--scale must be 1, 2 or 4, got {options.scale}")
        expert_id = self.planner.upscaler(options.scale, options.allow_generative)
        if expert_id is None:
            raise RestoraError(f"no {options.scale}x upscaler is available")
        expert = self.registry.get(expert_id)
        t0 = time.perf_counter()
        out = expert.run(pixels, ExpertContext(progress=progress, device=self.device, tile=options.tile))
        return out, {"stage": UPSCALE, "expert": expert.info.id, "model": expert.info.model_id,
                     "strength": 1.0, "dropped": False,
                     "reason": "", "seconds": round(time.perf_counter() - t0, 3)}

    def restore_file(self, source: Path, target_for, options: RestoreOptions = RestoreOptions(),
                     progress: Optional[Progress] = None, *, decoded=None, write_later=None) -> RestoreResult:
        """Load ``source``, restore it, save it to the path ``target_for(photo)`` returns.

        ``target_for`` is a callable ``(Photo) -> Path`` so that the output extension can
        depend on the decoded photo (RAW → TIFF). An existing output is skipped (reported in
        ``result.skipped``) with ``options.skip_existing``, replaced with ``options.overwrite``,
        else the photo fails. A photo that cannot fit in memory is refused from its header,
        before it is decoded.

        One photo fails alone: whatever goes wrong (a bad file, an expert's bug, out of memory)
        becomes ``result.error`` (one line, :func:`describe_error`) and nothing is written;
        only :class:`Cancelled` and ``KeyboardInterrupt`` propagate.

        A batch overlaps files with the two keywords (see :meth:`Batch.run_overlapped`):
        ``decoded``, a future of ``load_photo(source)`` started ahead; ``write_later``, called
        as ``write_later(write)`` instead of saving here, where ``write()`` saves and finishes
        the result (raising as saving does); the result is returned unsaved then.
        """
        from ..imageio import load_photo, save_photo
        from ..imageio.atomic import check_name_fits
        from ..imageio.loading import DEFAULT_MAX_PIXELS, probe_size
        from ..imageio.saving import not_kept_on_save
        from .memory import check_fits, memory_budget

        t0 = time.perf_counter()
        progress = progress or Progress()
        try:
            progress(0.0, "loading")
            budget = memory_budget()
            size = probe_size(source)
            if size is not None and size[0] * size[1] <= DEFAULT_MAX_PIXELS:  # else loading says it is too large
                check_fits(source, *size, scale=options.scale, budget=budget,
                           experts=self.certain_experts(options, size[0] * size[1]))
            photo = load_photo(source) if decoded is None else decoded.result()
            target = target_for(photo)
            check_name_fits(target)  # the checks before the work: do not restore for nothing
            if target.exists() or target.is_symlink():
                if options.skip_existing:
                    return RestoreResult(input=source, output=target, skipped=True,
                                         seconds=time.perf_counter() - t0)
                if not options.overwrite:
                    raise OutputExistsError(f"{target}: already exists (use --overwrite to replace it)")
            if options.uncertainty:
                from ..uncertainty.sidecar import sidecar_path

                side = sidecar_path(target)
                check_name_fits(side)
                if (side.exists() or side.is_symlink()) and not options.overwrite:
                    raise OutputExistsError(f"{side}: already exists (use --overwrite to replace it)")
            # Before the work: a depth the output format cannot store fails here, not after restoring.
            not_kept = not_kept_on_save(photo, target, bit_depth=options.bit_depth)
            # One shot: changes past the budget go to disk beside the output; the result is
            # composed into the decoded pixels (this photo object is ours alone).
            changes = ChangeStore(folder=target.parent if target.parent.is_dir() else None)
            try:
                restored, result = self.restore_photo(photo, options, progress.sub(0.02, 0.97), budget=budget,
                                                      changes=changes, consume=True)
            finally:
                changes.close()
            del photo
            progress.check()
            result.not_kept = not_kept
            result.input = source

            def write() -> RestoreResult:
                # its pixels are ours alone: freed once converted to the file's samples
                result.output = save_photo(restored, target, bit_depth=options.bit_depth,
                                           overwrite=options.overwrite, jpeg_quality=options.jpeg_quality,
                                           consume=True)
                if result.uncertainty_map is not None:
                    from ..uncertainty.sidecar import write_sidecar

                    result.uncertainty_path = write_sidecar(result.output, result.uncertainty_map,
                                                            overwrite=options.overwrite,
                                                            size=(restored.width, restored.height))
                    result.uncertainty_map = None  # the batch keeps results; the map is in the file
                result.seconds = time.perf_counter() - t0
                return result

            if write_later is not None:
                write_later(write)
                return result
            write()
            progress(1.0, "saved")
            return result
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - the one policy: this photo fails, the batch goes on
            log.debug("%s failed", source, exc_info=True)
            return RestoreResult(input=source, error=describe_error(e, source), seconds=time.perf_counter() - t0)

    def detect_file(self, source: Path) -> tuple[Optional[DegradationReport], Optional[str]]:
        """Analyse one file: ``(report, None)`` or ``(None, one-line error)``."""
        from ..imageio import load_photo
        from ..imageio.loading import DEFAULT_MAX_PIXELS, probe_size
        from .memory import check_fits

        try:
            size = probe_size(source)
            if size is not None and size[0] * size[1] <= DEFAULT_MAX_PIXELS:
                check_fits(source, *size)
            photo = load_photo(source)
            return self.session(photo.pixels, jpeg=photo.jpeg, metadata=photo.metadata).analyse(), None
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - same policy as restore_file: this file fails alone
            log.debug("%s failed", source, exc_info=True)
            return None, describe_error(e, source)
