"""``restora restore INPUT... -o OUTDIR``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from ..errors import RestoraError, UsageError
from ..imageio.formats import OFFERED_FORMATS
from ..pipeline import RestoreOptions, Restorer, parse_kind_list, parse_strength_settings
from ..pipeline.batch import Batch
from ..pipeline.job import RestoreResult, check_options
from ..progress import CancelToken, Progress
from .common import describe_report, emit_json, resolve_device, say
from .progressbar import ProgressLine


def add_parser(sub) -> None:
    p = sub.add_parser("restore", help="restore photos into a folder",
                       description="Restore photos (files or folders, walked recursively) into OUTDIR.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photo files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the restored photos")
    p.add_argument("--auto", action="store_true",
                   help="use the analyser's plan (the default when neither --set nor --only is given)")
    p.add_argument("--set", action="append", default=[], metavar="KIND=STRENGTH",
                   help="strength 0..1 for a kind (noise, blur, jpeg, haze, lowlight, rain, generalist); repeatable")
    p.add_argument("--only", metavar="KIND,...", help="fix only these kinds")
    p.add_argument("--scale", type=int, choices=(1, 2, 4), default=1, help="upscale the result (default 1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--tile", type=int, metavar="PIXELS", help="tile size for networks (default: automatic)")
    p.add_argument("--format", dest="fmt", choices=("same",) + OFFERED_FORMATS, default="same")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bit depth (default: as the input)")
    p.add_argument("--jpeg-quality", type=int, default=RestoreOptions.jpeg_quality, metavar="1..100",
                   help="quality of JPEG and WebP outputs (default 95; 90 and above keep full-resolution colour)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave outputs that already exist as they are and report them as skipped "
                        "(run the same command again to resume an interrupted batch)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input to stdout")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write <stem>.uncertainty.png beside each output: 16-bit grey, value / 256 = "
                        "expected absolute error of that pixel in 8-bit levels; --json gains a summary")
    p.add_argument("--caution", type=float, default=0.0, metavar="0..1",
                   help="lean the result back towards the input where it is uncertain (the window's Caution "
                        "control): 0 = off (default), 1 = the input wherever the expected error is 12 levels or more")
    p.add_argument("--drop-uncertain", action="store_true",
                   help="also drop a stage the analysis chose whose result is uncertain (expected error 16 "
                        "levels or more on average) for a small gain (severity drop under 0.2); off by default: "
                        "measured in benchmarks/results/uncertainty-plan-rule.md")
    p.add_argument("--no-generalist", action="store_true", help="run only the specialist experts")
    p.add_argument("--expert", action="append", default=[], metavar="KIND=EXPERT_ID",
                   help="use this expert for a kind instead of the measured best (a wrong id lists the usable ones); "
                        "repeatable")
    p.add_argument("--generative", action="store_true",
                   help="allow generative models (Real-ESRGAN) as the all-in-one generalist and upscaler")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="restore on a Ray cluster: 'local' starts one on this machine, or a Ray address "
                        "(ray://head:10001, auto); needs the 'cluster' extra")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --cluster: worker processes (default: one per GPU, else one per CPU)")
    p.add_argument("--worker-cpus", type=float, default=1.0, metavar="N",
                   help="with --cluster: CPUs each worker asks Ray for and uses as threads (default 1)")
    p.set_defaults(run=run)


def options_from_args(args: argparse.Namespace) -> RestoreOptions:
    strengths = parse_strength_settings(args.set)
    only = tuple(parse_kind_list(args.only)) if args.only else None
    auto = args.auto or (not strengths and only is None)
    if args.tile is not None and args.tile < 16:
        raise ValueError("--tile must be at least 16 pixels")
    experts = parse_expert_choices(args.expert)
    return RestoreOptions(auto=auto, strengths=strengths, only=only, scale=args.scale, tile=args.tile, experts=experts,
                          fmt=args.fmt, bit_depth=args.bit_depth, jpeg_quality=args.jpeg_quality,
                          overwrite=args.overwrite,
                          use_generalist=not args.no_generalist, allow_generative=args.generative,
                          skip_existing=args.skip_existing, uncertainty=args.uncertainty,
                          caution=args.caution, drop_uncertain=args.drop_uncertain)


def parse_expert_choices(items: list[str]) -> dict[str, str]:
    """``["blur=classical.deblur.wiener"]`` → ``{"blur": "classical.deblur.wiener"}``; raises
    ``ValueError`` (one line) on an item without ``=`` or an unknown kind."""
    from ..pipeline.plan import STAGE_NAMES

    out: dict[str, str] = {}
    for item in items:
        kind, _, expert_id = (p.strip() for p in item.partition("="))
        if not expert_id:
            raise ValueError(f"--expert expects KIND=EXPERT_ID, got {item!r}")
        if kind not in STAGE_NAMES:
            raise ValueError(f"unknown kind {kind!r} in --expert; expected one of {', '.join(STAGE_NAMES)}")
        out[kind] = expert_id
    return out


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        check_options(options)
    except (ValueError, UsageError) as e:
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    if (args.workers is not None or args.worker_cpus != 1.0) and (
            args.cluster is None or (args.workers is not None and args.workers < 1) or args.worker_cpus <= 0):
        print("restora: error: --workers/--worker-cpus need --cluster and a positive number", file=sys.stderr)
        return 2
    try:
        device = args.device if args.cluster else resolve_device(args.device)  # workers choose their own
    except RestoraError as e:
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    from ..imageio import is_supported

    batch = Batch.collect(args.inputs, Path(args.output), options, is_supported)
    try:
        batch.check()
    except UsageError as e:
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    failures = 0
    for problem in batch.problems:
        say(f"restora: {problem}")
        if problem.failed:
            failures += 1
            if args.json:
                emit_json(RestoreResult(input=problem.path, error=str(problem)).to_json())
    if not batch.items:
        print("restora: no photos to restore", file=sys.stderr)
        return 1
    for stale in batch.prepare():
        print(f"restora: removed {stale} (left by an interrupted run)", file=sys.stderr)
    if args.cluster:
        return _run_on_cluster(args, batch, failures)
    from ..experts.default import build_registry

    registry = build_registry(device=device)
    for kind, expert_id in options.experts.items():
        if expert_id not in registry or kind not in registry.get(expert_id).info.tasks:
            usable = ", ".join(e.info.id for e in registry.for_task(kind)) or "none"
            print(f"restora: error: --expert {kind}={expert_id}: no such expert for {kind}; "
                  f"available: {usable}", file=sys.stderr)
            return 2
    restorer = Restorer(registry, device=device)
    bar = ProgressLine(len(batch.items))
    cancel = getattr(args, "cancel", None) or CancelToken()  # cancelled by Ctrl-C / SIGTERM (engine.cli.main)
    started = time.perf_counter()
    tally = Tally(failures=failures)
    total = len(batch.items)

    def report(i: int, result: RestoreResult) -> None:
        bar.clear()
        tally.report(i, total, batch.items[i].path, result, args.json)

    try:  # the next file decodes and the last one encodes while this one is restored
        batch.run_overlapped(restorer, lambda i: Progress(lambda f, m, i=i: bar.update(i, f, m), cancel), report)
    finally:
        bar.clear()
    total += sum(1 for p in batch.problems if p.failed)
    tally.summary(total, time.perf_counter() - started)
    return 1 if tally.failures else 0


def stage_held_back(stage: dict) -> str:
    """The part of a dropped automatic stage's reason that says why it was held back and how to ask
    for it anyway (``"left unchanged: …; ask for …"``), or ``""`` when it says nothing of asking."""
    from ..experts.base import held_back

    return held_back(str(stage.get("reason") or "")) if stage.get("dropped") else ""


@dataclass
class Tally:
    """Counts a batch's outcomes while printing each file's line (stderr) and JSON (stdout)."""

    failures: int = 0
    done: int = 0
    skipped: int = 0
    json_stream: Optional[TextIO] = None  # default: stdout at the time of printing

    def report(self, index: int, count: int, source: Path, result: RestoreResult, as_json: bool,
               note: str = "") -> None:
        """``index``: the file's 0-based position; ``note`` ends its stderr line."""
        if result.error:
            self.failures += 1
            say(f"[{index + 1}/{count}] FAILED {result.error}{note}")
        elif result.skipped:
            self.skipped += 1
            say(f"[{index + 1}/{count}] skipped {source}: {result.output} already exists{note}")
        else:
            self.done += 1
            used = [s["stage"] for s in result.stages if not s.get("dropped")]
            dropped = [s["stage"] for s in result.stages if s.get("dropped") and not s.get("handled_by")]
            handled = [s["stage"] for s in result.stages if s.get("dropped") and s.get("handled_by")]
            extra = (f" (handled by the generalist: {', '.join(handled)})" if handled else "") + (
                f" (dropped: {', '.join(dropped)})" if dropped else "") + "".join(
                f" (no {kind} stage: {why})" for kind, why in result.left_out.items())
            lost = f"  not kept: {'; '.join(result.not_kept)}" if result.not_kept else ""
            say(f"[{index + 1}/{count}] {source} → {result.output}  "
                f"[{describe_report(result.report)}] stages: {', '.join(used) or 'none'}{extra}"
                f"  {result.seconds:.1f} s{lost}{note}")
            for stage in result.stages:  # a stage held back that the photographer can ask for: why, and how
                held = stage_held_back(stage)
                if held:
                    print(f"      {stage['stage']}: {held}", file=sys.stderr)
        if as_json:
            emit_json(result.to_json(), self.json_stream)

    def summary(self, total: int, seconds: float, note: str = "") -> None:
        summary = f"restora: restored {self.done} of {total} photo{'s' if total != 1 else ''} in {seconds:.1f} s{note}"
        if self.skipped:
            summary += f"; {self.skipped} skipped (output already there)"
        print(summary + (f"; {self.failures} failed" if self.failures else ""), file=sys.stderr)


def _run_on_cluster(args: argparse.Namespace, batch, failures: int) -> int:
    """``--cluster``: the same files, results, lines and exit status, restored by Ray workers."""
    from ..cluster import ClusterSettings, ClusterUnavailable, plan_jobs, restore_on_cluster

    settings = ClusterSettings(address=args.cluster, workers=args.workers, cpus_per_worker=args.worker_cpus,
                               device=args.device)
    total = len(batch.items)
    bar = ProgressLine(total)
    tally = Tally(failures=failures, json_stream=sys.stdout)

    def on_result(job, result, throughput) -> None:
        bar.clear()
        tally.report(job.index, total, job.item.path, result, args.json, f"  ({throughput.describe()})")

    try:
        # Ray prints its workers' and raylets' messages on stdout, which belongs to the JSON lines.
        with contextlib.redirect_stdout(sys.stderr):
            throughput = restore_on_cluster(batch, plan_jobs(batch), settings, on_result,
                                            on_progress=lambda t: bar.files_done(t.done, t.describe()),
                                            cancel=getattr(args, "cancel", None))
    except ClusterUnavailable as e:
        bar.clear()
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    finally:
        bar.clear()
    tally.summary(total + sum(1 for p in batch.problems if p.failed), throughput.elapsed,
                  f" on the cluster ({throughput.per_minute:.1f} files/min)")
    return 1 if tally.failures else 0
