"""Restore or analyse whole files: load → analyse → plan → run → compose → upscale → save.

This is the one entry point the CLI and the GUI's batch queue share.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ..analysis.report import DegradationReport
from ..errors import Cancelled, OutputExistsError, RestoraError
from ..experts.base import ExpertContext, ExpertRegistry
from ..kinds import UPSCALE
from ..photo import Photo, PhotoMetadata
from ..progress import Progress
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD
from .plan import AUTO_MIN_SEVERITY, SPECIALIST_ORDER, Plan, Stage, auto_strength, build_plan
from .session import RestorationSession, default_analyser

#: Output formats the CLI contract names (``same`` keeps the input's).
OUTPUT_FORMATS: dict[str, str] = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore. ``strengths``/``only``/``auto`` as in :func:`build_plan`; ``scale`` 1, 2
    or 4; ``fmt`` one of ``"same"`` or :data:`OUTPUT_FORMATS`; ``bit_depth`` 8, 16 or ``None``
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

    def to_json(self) -> dict:
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "report": None if self.report is None else self.report.severities(),
            "report_after": None if self.report_after is None else self.report_after.severities(),
            "stages": self.stages,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def output_extension(photo: Photo, source: Path, fmt: str) -> str:
    """The output file extension (with dot) for ``fmt`` (``"same"`` keeps the input's own
    extension; RAW becomes ``.tif``)."""
    if fmt == "same":
        if photo.source_format == "raw":
            return ".tif"
        return source.suffix.lower() or ".png"
    try:
        return OUTPUT_FORMATS[fmt]
    except KeyError:
        raise RestoraError(f"unknown output format {fmt!r}; expected same, {', '.join(OUTPUT_FORMATS)}") from None


def follow_up_plan(plan: Plan, results: list, session: RestorationSession, options: RestoreOptions) -> Plan:
    """RAR's "repeat": kinds that the restored photo now shows but the plan never addressed
    (typically noise made visible by brightening a dark photo) get one more specialist each,
    appended after the plan. Only for automatic plans; returns ``plan`` itself when nothing
    is to be added."""
    if not options.auto or options.only is not None:
        return plan
    kept = [r for r in results if not r.dropped and r.output_report is not None]
    final = kept[-1].output_report if kept else None
    if final is None:
        return plan
    extra = []
    for kind in SPECIALIST_ORDER:
        if plan.stage(kind) is None and kind not in options.strengths \
                and final.severity(kind) >= max(DEFAULT_PRESENCE_THRESHOLD, AUTO_MIN_SEVERITY.get(kind, 0.0)):
            candidates = session.registry.for_task(kind)
            if candidates:
                extra.append(Stage(kind, candidates[0].info.id, auto_strength(final, kind), True))
    return Plan(plan.stages + tuple(extra)) if extra else plan


class Restorer:
    """Restores photos with one expert registry (built once, shared by a whole batch)."""

    def __init__(self, registry: ExpertRegistry, *, device: str = "cpu", analyser=None) -> None:
        self.registry = registry
        self.device = device
        self._analyser = analyser

    def session(self, image: np.ndarray, options: RestoreOptions = RestoreOptions(),
                metadata: Optional[PhotoMetadata] = None) -> RestorationSession:
        """A session for ``image``; ``metadata`` (the photo's EXIF facts) gives the default analysis
        its ISO / exposure-time noise prior."""
        kwargs = {} if self._analyser is None else {"analyser": self._analyser}
        if self._analyser is None and metadata is not None and metadata.iso:
            kwargs["analyser"] = functools.partial(default_analyser, iso=metadata.iso,
                                                   exposure_s=metadata.exposure_s)
        return RestorationSession(image, self.registry, device=self.device, tile=options.tile, **kwargs)

    def plan_for(self, session: RestorationSession, options: RestoreOptions) -> Plan:
        return build_plan(session.report, self.registry, auto=options.auto, strengths=options.strengths,
                          only=options.only, use_generalist=options.use_generalist,
                          allow_generative=options.allow_generative, experts=options.experts)

    def restore_photo(self, photo: Photo, options: RestoreOptions = RestoreOptions(),
                      progress: Optional[Progress] = None) -> tuple[Photo, RestoreResult]:
        """Restore an in-memory photo. Returns the restored photo (not saved) and the result."""
        progress = progress or Progress()
        t0 = time.perf_counter()
        session = self.session(photo.pixels, options, photo.metadata)
        progress(0.0, "analysing")
        report = session.analyse()
        plan = self.plan_for(session, options)
        upscale_share = 0.5 if options.scale != 1 else 0.0
        run_end = 0.95 - upscale_share * 0.9
        results = session.run(plan, progress.sub(0.05, run_end * 0.8))
        follow_up = follow_up_plan(plan, results, session, options)
        if follow_up is not plan:
            plan = follow_up
            results = session.run(plan, progress.sub(run_end * 0.8, run_end))
        strengths = plan.strengths()
        pixels = session.compose(strengths)
        stages = [r.to_dict(strengths.get(r.name, 1.0)) for r in results]
        if options.scale != 1:
            pixels, upscale_stage = self.upscale(pixels, options, progress.sub(0.95 - upscale_share * 0.9, 0.95))
            stages.append(upscale_stage)
        report_after = session.analyser(pixels) if options.scale == 1 and plan.stages else report
        restored = photo.with_pixels(pixels.astype(np.float32))
        result = RestoreResult(input=photo.path or Path("<memory>"), report=report, report_after=report_after,
                               stages=stages, seconds=time.perf_counter() - t0)
        progress(1.0, "done")
        return restored, result

    def upscale(self, pixels: np.ndarray, options: RestoreOptions, progress: Progress) -> tuple[np.ndarray, dict]:
        if options.scale not in (2, 4):
            raise RestoraError(f"--scale must be 1, 2 or 4, got {options.scale}")
        candidates = [e for e in self.registry.for_task(UPSCALE) if e.info.scale == options.scale]
        if not candidates:
            raise RestoraError(f"no {options.scale}x upscaler is available")
        expert = candidates[0]
        t0 = time.perf_counter()
        out = expert.run(pixels, ExpertContext(progress=progress, device=self.device, tile=options.tile))
        return out, {"stage": UPSCALE, "expert": expert.info.id, "model": expert.info.model_id,
                     "strength": 1.0, "dropped": False,
                     "reason": "", "seconds": round(time.perf_counter() - t0, 3)}

    def restore_file(self, source: Path, target_for, options: RestoreOptions = RestoreOptions(),
                     progress: Optional[Progress] = None) -> RestoreResult:
        """Load ``source``, restore it, save it to the path ``target_for(photo)`` returns.

        ``target_for`` is a callable ``(Photo) -> Path`` so that the output extension can
        depend on the decoded photo (RAW → TIFF). Never raises for a bad input: the error is
        in ``result.error`` (one line). :class:`Cancelled` is re-raised.
        """
        from ..imageio import load_photo, save_photo

        t0 = time.perf_counter()
        progress = progress or Progress()
        try:
            progress(0.0, "loading")
            photo = load_photo(source)
            target = target_for(photo)
            if target.exists() and not options.overwrite:  # checked early: do not restore for nothing
                raise OutputExistsError(f"{target}: already exists (use --overwrite to replace it)")
            restored, result = self.restore_photo(photo, options, progress.sub(0.02, 0.97))
            progress.check()
            result.output = save_photo(restored, target, bit_depth=options.bit_depth, overwrite=options.overwrite,
                                       jpeg_quality=options.jpeg_quality)
            result.input = source
            result.seconds = time.perf_counter() - t0
            progress(1.0, "saved")
            return result
        except Cancelled:
            raise
        except RestoraError as e:
            return RestoreResult(input=source, error=str(e), seconds=time.perf_counter() - t0)
        except MemoryError:
            return RestoreResult(input=source, error=f"{source}: not enough memory to restore this photo",
                                 seconds=time.perf_counter() - t0)

    def detect_file(self, source: Path) -> tuple[Optional[DegradationReport], Optional[str]]:
        """Analyse one file: ``(report, None)`` or ``(None, one-line error)``."""
        from ..imageio import load_photo

        try:
            photo = load_photo(source)
        except RestoraError as e:
            return None, str(e)
        analyser = self._analyser or self.session(photo.pixels, metadata=photo.metadata).analyser
        return analyser(photo.pixels), None
