"""The ``restora`` command (DESIGN.md's CLI contract)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
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
    # The engine never imports the app: the window is found as the installed ``restora-gui``
    # command (pyproject.toml's [project.scripts]).
    from importlib.metadata import entry_points

    try:
        (entry,) = entry_points(group="console_scripts", name="restora-gui")
        gui_main = entry.load()
    except (ValueError, ImportError) as e:
        print(f"restora: the GUI is not available ({e or 'restora-gui is not installed'}); install the 'gui' "
              "extra", file=sys.stderr)
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
    if not args.verbose:
        # tifffile logs each damaged tag it meets; the file's one-line error says it already.
        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    # Batch commands unwind on SIGTERM like on Ctrl-C; the GUI keeps the default (its Qt event
    # loop would not run a Python handler until some Python code runs).
    installed, previous = _terminate_like_interrupt() if args.command in ("restore", "detect") else (False, None)
    try:
        return int(args.run(args))
    except KeyboardInterrupt as e:
        resume = "; add --skip-existing to the same command to resume" if args.command == "restore" else ""
        print(f"restora: {'terminated' if isinstance(e, _Terminated) else 'interrupted'}; outputs already "
              f"written are complete, nothing half-written is left{resume}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(e, _Terminated) else 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it unwinds like Ctrl-C (temporary files removed)."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def _terminate_like_interrupt():
    """Make SIGTERM behave like Ctrl-C; returns ``(installed, previous handler)`` (not installed
    outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False, None
    try:
        return True, signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):
        return False, None


__all__ = ["main", "build_parser", "KINDS"]
