"""``restora restore INPUT... -o OUTDIR``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import Cancelled, RestoraError
from ..pipeline import RestoreOptions, Restorer, parse_kind_list, parse_strength_settings
from ..pipeline.inputs import collect_inputs, output_path_for
from ..pipeline.job import OUTPUT_FORMATS, RestoreResult, output_extension
from ..progress import CancelToken, Progress
from .common import describe_report, emit_json, resolve_device
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
    p.add_argument("--format", dest="fmt", choices=("same",) + tuple(OUTPUT_FORMATS), default="same")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bit depth (default: as the input)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--json", action="store_true", help="print one JSON object per input to stdout")
    p.add_argument("--no-generalist", action="store_true", help="run only the specialist experts")
    p.add_argument("--generative", action="store_true",
                   help="allow generative models (Real-ESRGAN) as the all-in-one generalist and upscaler")
    p.set_defaults(run=run)


def options_from_args(args: argparse.Namespace) -> RestoreOptions:
    strengths = parse_strength_settings(args.set)
    only = tuple(parse_kind_list(args.only)) if args.only else None
    auto = args.auto or (not strengths and only is None)
    if args.tile is not None and args.tile < 16:
        raise ValueError("--tile must be at least 16 pixels")
    return RestoreOptions(auto=auto, strengths=strengths, only=only, scale=args.scale, tile=args.tile,
                          fmt=args.fmt, bit_depth=args.bit_depth, overwrite=args.overwrite,
                          use_generalist=not args.no_generalist, allow_generative=args.generative)


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
    except RestoraError as e:
        print(f"restora: error: {e}", file=sys.stderr)
        return 2
    from ..experts.default import build_registry
    from ..imageio import is_supported

    outdir = Path(args.output)
    items, problems = collect_inputs(args.inputs, is_supported)
    failures = 0
    for message in problems:
        failures += 1
        print(f"restora: {message}", file=sys.stderr)
        if args.json:
            emit_json(RestoreResult(input=Path(message.split(":")[0]), error=message).to_json())
    if not items:
        print("restora: no photos to restore", file=sys.stderr)
        return 1
    registry = build_registry(device=device)
    restorer = Restorer(registry, device=device)
    bar = ProgressLine(len(items))
    cancel = CancelToken()
    claimed: dict[Path, Path] = {}
    started = time.perf_counter()
    done = 0
    for i, item in enumerate(items):
        progress = Progress(lambda f, m, i=i: bar.update(i, f, m), cancel)

        def target_for(photo, item=item):
            target = output_path_for(item, outdir, output_extension(photo, item.path, options.fmt))
            other = claimed.get(target.resolve())
            if other is not None:
                raise RestoraError(f"{item.path}: output {target} would replace the one from {other}")
            claimed[target.resolve()] = item.path
            return target

        try:
            result = restorer.restore_file(item.path, target_for, options, progress)
        except Cancelled:
            bar.clear()
            print("restora: cancelled", file=sys.stderr)
            return 1
        bar.clear()
        if result.error:
            failures += 1
            print(f"[{i + 1}/{len(items)}] FAILED {result.error}", file=sys.stderr)
        else:
            done += 1
            used = [s["stage"] for s in result.stages if not s.get("dropped")]
            dropped = [s["stage"] for s in result.stages if s.get("dropped") and not s.get("handled_by")]
            handled = [s["stage"] for s in result.stages if s.get("dropped") and s.get("handled_by")]
            extra = (f" (handled by the generalist: {', '.join(handled)})" if handled else "") + (
                f" (dropped: {', '.join(dropped)})" if dropped else "")
            print(f"[{i + 1}/{len(items)}] {item.path} → {result.output}  "
                  f"[{describe_report(result.report)}] stages: {', '.join(used) or 'none'}{extra}"
                  f"  {result.seconds:.1f} s", file=sys.stderr)
        if args.json:
            emit_json(result.to_json())
    total = len(items) + len(problems)
    elapsed = time.perf_counter() - started
    summary = f"restora: restored {done} of {total} photo{'s' if total != 1 else ''} in {elapsed:.1f} s"
    print(summary + (f"; {failures} failed" if failures else ""), file=sys.stderr)
    return 1 if failures else 0
