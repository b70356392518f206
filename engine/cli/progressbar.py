"""A dependency-free progress line on stderr for batches."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressLine:
    """Redraws one line (``\\r``) on a terminal; on a pipe or file it stays silent so logs only
    get the per-file lines. Fractions in [0, 1]."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, width: int = 28) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._shown = False

    def update(self, index: int, fraction: float, message: str = "") -> None:
        """``index``: 0-based item; ``fraction``: progress within it."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and fraction < 1.0:
            return
        self._last = now
        overall = (index + min(max(fraction, 0.0), 1.0)) / self.total
        filled = int(round(overall * self.width))
        bar = "█" * filled + "·" * (self.width - filled)
        text = f"\r{bar} {overall * 100:5.1f}%  [{index + 1}/{self.total}] {message}"[:120]
        self.stream.write(text.ljust(120))
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()
            self._shown = False

    def files_done(self, done: int, message: str = "") -> None:
        """Whole files finished so far (a batch whose files run in parallel)."""
        if done:
            self.update(done - 1, 1.0, message)
        else:
            self.update(0, 0.0, message)
