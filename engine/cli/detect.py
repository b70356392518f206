"""``restora detect INPUT...``."""

from __future__ import annotations

import argparse
import sys

from .common import describe_report, emit_json, report_table, say


def add_parser(sub) -> None:
    p = sub.add_parser("detect", help="report what is wrong with photos",
                       description="Analyse photos and report a severity 0..1 for each degradation kind.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photo files or folders")
    p.add_argument("--json", action="store_true", help="print one JSON object per input to stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..imageio import is_supported
    from ..pipeline import Restorer
    from ..pipeline.inputs import collect_inputs
    from ..experts.base import ExpertRegistry

    items, problems = collect_inputs(args.inputs, is_supported)
    failures = sum(1 for p in problems if p.failed)
    for problem in problems:
        say(f"restora: {problem}")
        if args.json and problem.failed:
            emit_json({"input": str(problem.path), "report": None, "error": str(problem)})
    restorer = Restorer(ExpertRegistry())
    cancel = getattr(args, "cancel", None)  # Ctrl-C / SIGTERM (engine.cli.main)
    for item in items:
        if cancel is not None:
            cancel.raise_if_cancelled()
        report, error = restorer.detect_file(item.path)
        if error:
            failures += 1
            say(f"FAILED {error}")
            if args.json:
                emit_json({"input": str(item.path), "report": None, "error": error})
            continue
        if args.json:
            emit_json({"input": str(item.path), "report": report.severities(), "error": None})
        else:
            say(f"{item.path}: {describe_report(report)}", sys.stdout)
            print(report_table(report))
    if not items and not problems:
        print("restora: no photos found", file=sys.stderr)
        return 1
    return 1 if failures else 0
