"""The ``restora`` command (DESIGN.md's CLI contract)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
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
    """Run the CLI; returns the exit status (0 all succeeded, 1 any failed, 2 bad usage, 130 / 143
    stopped by Ctrl-C / SIGTERM)."""
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
    if args.command in ("restore", "detect"):
        return _run_stoppable(args)
    return int(args.run(args))


#: After Ctrl-C or SIGTERM, how long (s) the batch commands wait for the run to reach its next
#: cancellation check and clean up before they delete their temporary files and exit anyway.
STOP_GRACE_S = 2.0


class _Stop:
    """Ctrl-C and SIGTERM for the batch commands: the first one cancels :attr:`token` (the one
    cancellation mechanism the window's Cancel uses too: checked between tiles, bands, stages and
    files, and an ONNX Runtime run is stopped mid-tile); a second one stops at once."""

    def __init__(self) -> None:
        from ..progress import CancelToken

        self.token = CancelToken()
        self.signum: Optional[int] = None
        self.at = 0.0
        self.again = False  # a second signal: do not wait for the grace period

    def handle(self, signum, frame) -> None:
        if self.signum is not None:
            self.again = True
            return
        self.signum, self.at = signum, time.monotonic()
        self.token.cancel()

    def waited_enough(self) -> bool:
        return self.signum is not None and (self.again or time.monotonic() - self.at > STOP_GRACE_S)

    def install(self) -> Optional[dict]:
        """Install :meth:`handle` for SIGTERM, and for SIGINT unless it is ignored (a background
        job of a shell); returns the previous handlers, or ``None`` outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signum == signal.SIGINT and signal.getsignal(signum) == signal.SIG_IGN:
                    continue
                previous[signum] = signal.signal(signum, self.handle)
        except (ValueError, OSError):
            self.restore(previous)
            return None
        return previous

    @staticmethod
    def restore(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _stopped_line(args: argparse.Namespace, signum: int) -> str:
    resume = "; add --skip-existing to the same command to resume" if args.command == "restore" else ""
    return (f"restora: {'terminated' if signum == signal.SIGTERM else 'interrupted'}; outputs already written "
            f"are complete, nothing half-written is left{resume}")


def _run_stoppable(args: argparse.Namespace) -> int:
    """Run a batch command so that Ctrl-C / SIGTERM stop it within about :data:`STOP_GRACE_S`:
    the work runs on a thread, this (main) thread waits and handles the signals at once (a
    signal handler runs only on the main thread, and only between two Python instructions, never
    inside a long numpy or network call). A ``--cluster`` run stays on the main thread (Ray's
    driver), whose loop waits in short slices and checks the token. Exit status 130 (SIGINT) or
    143 (SIGTERM)."""
    from ..errors import Cancelled

    stop = _Stop()
    args.cancel = stop.token
    previous = stop.install()
    if previous is None:
        return int(args.run(args))
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["status"] = int(args.run(args))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = e

    worker = threading.Thread(target=work, name="restora-run", daemon=True)
    try:
        if getattr(args, "cluster", None):
            work()
        else:
            worker.start()
            while worker.is_alive() and not stop.waited_enough():
                worker.join(0.05)
    finally:
        stop.restore(previous)
    error = outcome.get("error")
    if stop.signum is None or (not worker.is_alive() and not isinstance(error, Cancelled)):
        if error is not None:
            raise error
        return outcome["status"]
    status = 128 + int(stop.signum)
    if worker.is_alive():  # inside a call that does not check for cancellation: leave it
        from ..imageio.atomic import remove_live_temp_files

        remove_live_temp_files()
        print(_stopped_line(args, stop.signum), file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    print(_stopped_line(args, stop.signum), file=sys.stderr)
    return status


__all__ = ["main", "build_parser", "KINDS"]
