"""Progress reporting and cooperative cancellation shared by every long-running engine call."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from .errors import Cancelled

#: Receives the fraction done in [0, 1] and an optional short message.
ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """Thread-safe flag checked by long loops (between tiles, stages, files).

    A call that cannot check the flag itself (one ONNX Runtime run) is stopped from the outside:
    :meth:`on_cancel` runs a hook when the token is cancelled while the call is in progress.
    :meth:`cancel` may be called from any thread or a signal handler.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.RLock()  # re-entrant: a signal handler may cancel while this thread holds it
        self._hooks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            hook()

    @contextlib.contextmanager
    def on_cancel(self, hook: Callable[[], None]) -> Iterator[None]:
        """Within the block, ``hook()`` is called (once, on the cancelling thread) if the token is
        cancelled; at once if it already is."""
        with self._lock:
            self._hooks.append(hook)
            already = self._event.is_set()
        try:
            if already:
                hook()
            yield
        finally:
            with self._lock:
                self._hooks.remove(hook)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


_current = threading.local()


@contextlib.contextmanager
def cancel_scope(token: Optional[CancelToken]) -> Iterator[None]:
    """Make ``token`` this thread's :func:`current_cancel` within the block (the tiler sets it
    around each tile, so a network runner can stop mid-tile without a token of its own)."""
    previous = getattr(_current, "token", None)
    _current.token = token
    try:
        yield
    finally:
        _current.token = previous


def current_cancel() -> Optional[CancelToken]:
    """The token of the innermost :func:`cancel_scope` on this thread, or ``None``."""
    return getattr(_current, "token", None)


@dataclass
class Progress:
    """Maps a sub-task's progress (0..1) into a slice ``[start, end]`` of its parent's range.

    ``Progress(callback)`` covers 0..1; ``p.sub(0.2, 0.5)`` makes a child whose 0..1 lands in
    0.2..0.5 of the parent. Every call also checks the cancel token, so reporting progress is
    a cancellation point.
    """

    callback: Optional[ProgressCallback] = None
    cancel: Optional[CancelToken] = None
    start: float = 0.0
    end: float = 1.0
    message: str = ""
    _last: float = field(default=-1.0, repr=False)

    def __call__(self, fraction: float, message: str = "") -> None:
        self.check()
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.callback is not None:
            self.callback(self.start + (self.end - self.start) * fraction, message or self.message)

    def sub(self, start: float, end: float, message: str = "") -> "Progress":
        """A child progress covering ``[start, end]`` (fractions of this one's range)."""
        span = self.end - self.start
        return Progress(self.callback, self.cancel, self.start + span * start, self.start + span * end,
                        message or self.message)

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()


def null_progress() -> Progress:
    return Progress()
