"""The ``restora`` command (DESIGN.md's CLI contract)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from ..kinds import KINDS


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"restora: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import detect, doctor, restore

    parser = _Parser(prog="restora", description="Detect what is wrong with photos and restore them.")
    parser.add_argument("--version", action="version", version=doctor.version_line())
    parser.add_argument("--verbose", "-v", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    restore.add_parser(sub)
    detect.add_parser(sub)
    try:
        from . import models
    except ImportError:  # the neural extra (weights manager) is not installed
        models = None
    if models is not None:
        models.add_parser(sub)
    doctor.add_parser(sub)
    g = sub.add_parser("gui", help="open the desktop application", description="Open the desktop application.")
    g.add_argument("files", nargs="*", metavar="FILES", help="photos or folders to open")
    g.set_defaults(run=_run_gui)
    return parser


def _run_gui(args: argparse.Namespace) -> int:
    try:
        from app.main import main as gui_main
    except ImportError as e:
        print(f"restora: the GUI is not available ({e}); install the 'gui' extra", file=sys.stderr)
        return 1
    return int(gui_main(list(args.files)) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 all succeeded, 1 any failed, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="restora: %(message)s", stream=sys.stderr)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("restora: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "KINDS"]
