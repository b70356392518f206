"""Restore or analyse whole files: load → analyse → plan → run → compose → upscale → save.

This is the one entry point the CLI and the GUI's batch queue share.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ..analysis.jpeg_tables import JpegQuantisation
from ..analysis.report import DegradationReport
from ..errors import Cancelled, OutputExistsError, RestoraError, UsageError
from ..experts.base import ExpertContext, ExpertRegistry
from ..kinds import UPSCALE
from ..imageio.formats import RASTER_FORMATS as _RASTER_FORMATS
from ..photo import Photo, PhotoMetadata
from ..progress import Progress
from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD
from .plan import AUTO_MIN_SEVERITY, SPECIALIST_ORDER, Plan, Stage, auto_strength, build_plan
from .session import RestorationSession, default_analyser

log = logging.getLogger(__name__)

#: Output formats the CLI contract names (``same`` keeps the input's).
OUTPUT_FORMATS: dict[str, str] = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}
#: Format name → its usual extension, for ``same`` when a file's name lies about its content.
_CONTENT_EXTENSIONS: dict[str, str] = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp",
                                       "bmp": ".bmp", "raw": ".tif"}
#: Bit depths each output format can store (``same`` is checked per photo when saving).
_FORMAT_DEPTHS: dict[str, tuple[int, ...]] = {"png": (8, 16), "tiff": (8, 16), "jpeg": (8,), "webp": (8,)}


def describe_error(error: BaseException, source: Optional[Path] = None) -> str:
    """The one-line reason a photo failed, for any exception (the policy every batch uses: the
    CLI, the GUI queue and cluster workers). Restora's own errors already name the file; any
    other error is named by its type with ``source`` in front."""
    if isinstance(error, RestoraError):
        return str(error)
    prefix = f"{source}: " if source is not None else ""
    if isinstance(error, MemoryError):
        return f"{prefix}not enough memory to restore this photo"
    text = " ".join(str(error).split())
    if len(text) > 160:
        text = text[:159] + "…"
    return f"{prefix}unexpected error ({type(error).__name__}{': ' + text if text else ''})"


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
    skip_existing: bool = False


def check_options(options: RestoreOptions) -> None:
    """Raise :class:`UsageError` (one line) for options that contradict each other, so a batch
    is refused before any photo is restored: a bit depth the chosen format cannot store, an
    unknown format or scale, ``overwrite`` together with ``skip_existing``."""
    if options.fmt != "same" and options.fmt not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {options.fmt!r}; expected same, {', '.join(OUTPUT_FORMATS)}")
    if options.bit_depth is not None and options.bit_depth not in (8, 16):
        raise UsageError(f"--bit-depth must be 8 or 16, not {options.bit_depth}")
    if options.bit_depth is not None and options.fmt in _FORMAT_DEPTHS \
            and options.bit_depth not in _FORMAT_DEPTHS[options.fmt]:
        raise UsageError(f"{options.fmt.upper()} cannot store {options.bit_depth}-bit images; "
                         f"use --format png or tiff for 16-bit")
    if options.scale not in (1, 2, 4):
        raise UsageError(f"--scale must be 1, 2 or 4, not {options.scale}")
    if not 1 <= int(options.jpeg_quality) <= 100:
        raise UsageError(f"JPEG quality must be between 1 and 100, not {options.jpeg_quality}")
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
        if content != "raw" and _RASTER_FORMATS.get(suffix) == content:
            return suffix
        return _CONTENT_EXTENSIONS.get(content, ".png")
    try:
        return OUTPUT_FORMATS[fmt]
    except KeyError:
        raise RestoraError(f"unknown output format {fmt!r}; expected same, {', '.join(OUTPUT_FORMATS)}") from None


#: Kinds the follow-up round never adds: blur that appears after a stage is that stage's own
#: smoothing (denoising, deblocking), and deblurring it re-sharpens what was just removed (a real
#: DSLR noise crop lost 1.5 dB that way: NikonD800_10_100_6400_planandsofa_2). Haze and rain are
#: the scene's: a stage cannot create them, and haze "found" after brightening a dark photo is its
#: lifted shadows (a real LOL photo fell from 33.0 to 17.6 dB when dehazing followed low light).
FOLLOW_UP_NEVER = frozenset({"blur", "haze", "rain"})


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
        if kind in FOLLOW_UP_NEVER:
            continue
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
                jpeg: Optional[JpegQuantisation] = None,
                metadata: Optional[PhotoMetadata] = None) -> RestorationSession:
        """A session for ``image``; ``jpeg``: the tables of the JPEG file it decodes (``Photo.jpeg``);
        ``metadata`` (the photo's EXIF facts) gives the default analysis its ISO / exposure-time
        noise prior."""
        kwargs = {} if self._analyser is None else {"analyser": self._analyser}
        if self._analyser is None and metadata is not None and metadata.iso:
            kwargs["analyser"] = functools.partial(default_analyser, iso=metadata.iso,
                                                   exposure_s=metadata.exposure_s)
        return RestorationSession(image, self.registry, device=self.device, tile=options.tile, jpeg=jpeg, **kwargs)

    def plan_for(self, session: RestorationSession, options: RestoreOptions) -> Plan:
        return build_plan(session.report, self.registry, auto=options.auto, strengths=options.strengths,
                          only=options.only, use_generalist=options.use_generalist,
                          allow_generative=options.allow_generative, experts=options.experts)

    def restore_photo(self, photo: Photo, options: RestoreOptions = RestoreOptions(),
                      progress: Optional[Progress] = None, *, budget: Optional[int] = None) -> tuple[Photo, RestoreResult]:
        """Restore an in-memory photo. Returns the restored photo (not saved) and the result.

        ``budget``: bytes the restoration may use; a plan that needs more is refused
        (:class:`engine.errors.NotEnoughMemoryError`) before any stage runs. ``None``: no check.
        """
        progress = progress or Progress()
        t0 = time.perf_counter()
        session = self.session(photo.pixels, options, jpeg=photo.jpeg, metadata=photo.metadata)
        progress(0.0, "analysing")
        report = session.analyse()
        plan = self.plan_for(session, options)
        if budget is not None:
            from .memory import check_fits

            told = len(plan.stages) + (len(report.present(DEFAULT_PRESENCE_THRESHOLD)) if plan.stages else 0)
            check_fits(photo.path or Path("<memory>"), photo.width, photo.height, cached_changes=told,
                       scale=options.scale, budget=budget)
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
        candidates = [e for e in self.registry.for_task(UPSCALE)
                      if e.info.scale == options.scale and (options.allow_generative or not e.info.generative)]
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
        depend on the decoded photo (RAW → TIFF). An existing output is skipped (reported in
        ``result.skipped``) with ``options.skip_existing``, replaced with ``options.overwrite``,
        else the photo fails. A photo that cannot fit in memory is refused from its header,
        before it is decoded.

        One photo fails alone: whatever goes wrong (a bad file, an expert's bug, out of memory)
        becomes ``result.error`` (one line, :func:`describe_error`) and nothing is written;
        only :class:`Cancelled` and ``KeyboardInterrupt`` propagate.
        """
        from ..imageio import load_photo, save_photo
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
                check_fits(source, *size, scale=options.scale, budget=budget)
            photo = load_photo(source)
            target = target_for(photo)
            if target.exists() or target.is_symlink():  # checked early: do not restore for nothing
                if options.skip_existing:
                    return RestoreResult(input=source, output=target, skipped=True,
                                         seconds=time.perf_counter() - t0)
                if not options.overwrite:
                    raise OutputExistsError(f"{target}: already exists (use --overwrite to replace it)")
            # Before the work: a depth the output format cannot store fails here, not after restoring.
            not_kept = not_kept_on_save(photo, target, bit_depth=options.bit_depth)
            restored, result = self.restore_photo(photo, options, progress.sub(0.02, 0.97), budget=budget)
            progress.check()
            result.not_kept = not_kept
            result.output = save_photo(restored, target, bit_depth=options.bit_depth, overwrite=options.overwrite,
                                       jpeg_quality=options.jpeg_quality)
            result.input = source
            result.seconds = time.perf_counter() - t0
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
