"""Pieces the ``restore`` and ``detect`` commands share."""

from __future__ import annotations

import json
import sys
from typing import Optional

from ..analysis.report import DegradationReport
from ..errors import RestoraError
from ..kinds import KINDS, LABELS


def resolve_device(preference: str) -> str:
    """``auto|cpu|cuda|mps`` → the device to use (raises RestoraError if unavailable)."""
    if preference == "cpu":
        return "cpu"
    try:
        from ..runtime.device import choose_device
    except ImportError as exc:
        if preference == "auto":
            return "cpu"
        raise RestoraError(f"device {preference!r} needs the neural runtime (torch), which is not installed") from exc
    return choose_device(preference)


#: Control characters (a newline or escape in a file name) shown as ``?`` on a human line, as ``ls`` does.
_CONTROL = {c: "?" for c in [*range(32), 127]}


def say(line: str, stream=None) -> None:
    """Print one human line to ``stream`` (default stderr): a file name cannot break it in two or
    send the terminal escape codes (``--json`` keeps names exact)."""
    print(line.translate(_CONTROL), file=stream or sys.stderr)


def emit_json(obj: dict, stream=None) -> None:
    """One JSON line on ``stream`` (default: stdout)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def describe_report(report: Optional[DegradationReport], threshold: float = 0.15) -> str:
    """``"noise 0.62, jpeg 0.41"`` (kinds at or above ``threshold``) or ``"looks clean"``."""
    if report is None:
        return ""
    found = report.present(threshold)
    if not found:
        return "looks clean"
    return ", ".join(f"{k} {report.severity(k):.2f}" for k in found)


def report_table(report: DegradationReport) -> str:
    rows = []
    for k in KINDS:
        s = report.severity(k)
        bar = "█" * int(round(s * 20))
        rows.append(f"  {LABELS[k]:<15} {s:4.2f} {bar}")
    return "\n".join(rows)
