"""Long work off the UI thread.

A :class:`JobRunner` runs one function at a time on its own thread pool. Every request gets a
generation number; starting a new job cancels the previous one (through its
:class:`engine.progress.CancelToken`) and results of older generations are dropped, so a slow
stale job can never overwrite a newer result. Results, progress and errors come back to the
GUI thread through queued signals.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import Cancelled, RestoraError, describe_error
from engine.progress import CancelToken, Progress

log = logging.getLogger(__name__)

#: A job body: receives a Progress (which raises Cancelled when cancelled) and returns a result.
JobFunction = Callable[[Progress], Any]


class _JobSignals(QObject):
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)


class _Job(QRunnable):
    def __init__(self, generation: int, fn: JobFunction, cancel: CancelToken, signals: _JobSignals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.generation, self.fn, self.cancel, self.signals = generation, fn, cancel, signals

    def run(self) -> None:
        gen, sig = self.generation, self.signals
        progress = Progress(lambda f, m: sig.progress.emit(gen, f, m), cancel=self.cancel)
        try:
            progress.check()
            result = self.fn(progress)
        except Cancelled:
            sig.cancelled.emit(gen)
        except Exception as e:  # a worker must report every failure instead of dying silently
            if not isinstance(e, RestoraError):
                log.exception("job failed")
            sig.failed.emit(gen, describe_error(e))
        else:
            sig.finished.emit(gen, result)


class JobRunner(QObject):
    """Runs the latest requested job; older ones are cancelled and their results dropped.

    Signals carry only the current generation's events: ``progress(fraction, message)``,
    ``finished(result)``, ``failed(message)``, ``cancelled()``; ``busyChanged(bool)``.
    """

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    busyChanged = Signal(bool)

    def __init__(self, parent: Optional[QObject] = None, threads: int = 1) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._generation = 0
        self._token: Optional[CancelToken] = None
        self._busy = False
        self._callbacks: dict[int, Optional[Callable[[Any], None]]] = {}
        self._signals: dict[int, _JobSignals] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def is_busy(self) -> bool:
        return self._busy

    def start(self, fn: JobFunction, on_done: Optional[Callable[[Any], None]] = None) -> int:
        """Cancel whatever runs, start ``fn`` and return its generation number."""
        if self._token is not None:
            self._token.cancel()
        self._generation += 1
        gen = self._generation
        self._token = CancelToken()
        signals = _JobSignals()
        signals.progress.connect(self._on_progress)
        signals.finished.connect(self._on_finished)
        signals.failed.connect(self._on_failed)
        signals.cancelled.connect(self._on_cancelled)
        self._signals[gen] = signals
        self._callbacks[gen] = on_done
        self._set_busy(True)
        self._pool.start(_Job(gen, fn, self._token, signals))
        return gen

    def cancel(self) -> None:
        """Ask the running job to stop (it stops at its next progress or tile check)."""
        if self._token is not None:
            self._token.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (for shutdown and tests)."""
        return self._pool.waitForDone(msecs)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _release(self, gen: int) -> bool:
        """Forget ``gen``'s plumbing; True if it is the current generation."""
        self._signals.pop(gen, None)
        current = gen == self._generation
        if current:
            self._token = None
            self._set_busy(False)
        return current

    def _on_progress(self, gen: int, fraction: float, message: str) -> None:
        if gen == self._generation:
            self.progress.emit(fraction, message)

    def _on_finished(self, gen: int, result: Any) -> None:
        callback = self._callbacks.pop(gen, None)
        if self._release(gen):
            if callback is not None:
                callback(result)
            self.finished.emit(result)

    def _on_failed(self, gen: int, message: str) -> None:
        self._callbacks.pop(gen, None)
        if self._release(gen):
            self.failed.emit(message)

    def _on_cancelled(self, gen: int) -> None:
        self._callbacks.pop(gen, None)
        if self._release(gen):
            self.cancelled.emit()
