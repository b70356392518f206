"""A batch of photos restored into one output folder, with the guarantees every front end shares.

The CLI, the GUI's queue and cluster workers all run a batch through :class:`Batch`:

* :meth:`Batch.check` refuses the whole batch before any work (:class:`UsageError`, the CLI's
  exit status 2) when options contradict each other or when an output would replace an input;
* :meth:`Batch.prepare` removes temporary files an interrupted run left in the output folder;
* :meth:`Batch.run_item` restores one photo and never raises for it (one file fails alone with
  its reason; an existing output is skipped with ``skip_existing``), except for cancellation.

Example::

    batch = Batch.collect(["photos"], Path("restored"), options, is_supported)
    batch.check()          # raises UsageError before any work
    batch.prepare()
    for item in batch.items:
        result = batch.run_item(restorer, item, progress)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..errors import RestoraError, UsageError, describe_error
from ..photo import Photo
from ..progress import Progress
from .inputs import BatchItem, InputProblem, collect_inputs, output_path_for
from .job import RestoreOptions, RestoreResult, Restorer, check_options, output_extension


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _collision(source: Path, target: Path, victim: Path) -> str:
    if _real(victim) == _real(source):
        return f"{source}: its output would replace the input itself ({target})"
    return f"{source}: its output {target} would replace the input {victim}"


@dataclass
class Batch:
    """``items`` restored into ``outdir`` with ``options``; ``problems`` are the inputs that were
    skipped while collecting (see :func:`collect_inputs`)."""

    items: list[BatchItem]
    outdir: Path
    options: RestoreOptions
    problems: list[InputProblem] = field(default_factory=list)
    _claimed: dict[Path, Path] = field(default_factory=dict, repr=False)
    _inputs: dict[Path, Path] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.outdir = Path(self.outdir)
        self._inputs = {_real(item.path): item.path for item in self.items}

    def __getstate__(self) -> dict:  # picklable for cluster workers: the lock is per process
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def collect(cls, inputs: Iterable[os.PathLike | str], outdir: os.PathLike | str, options: RestoreOptions,
                is_supported) -> "Batch":
        """Walk ``inputs`` (files and folders) into a batch; the output folder is not walked."""
        items, problems = collect_inputs(inputs, is_supported, exclude=[outdir])
        return cls(items, Path(outdir), options, problems)

    # -- before any work --------------------------------------------------------------------
    def expected_target(self, item: BatchItem) -> Path:
        """The output path ``item`` will get, told from its name and first bytes (no decoding)."""
        from ..imageio import sniff_format

        content = sniff_format(item.path) if self.options.fmt == "same" else None
        return output_path_for(item, self.outdir, output_extension(None, item.path, self.options.fmt, content))

    def input_collisions(self) -> list[str]:
        """One line per input whose output would be an input of this batch (the same file, through
        links or not). Checks both the extension the name suggests and the content's own."""
        lines = []
        for item in self.items:
            candidates = {self.expected_target(item)}
            if self.options.fmt == "same":
                candidates.add(output_path_for(item, self.outdir, output_extension(None, item.path, "same")))
            for target in sorted(candidates):
                victim = self._input_at(target)
                if victim is not None:
                    lines.append(_collision(item.path, target, victim))
                    break
        return lines

    def check(self) -> None:
        """Raise :class:`UsageError` (the first problem; the rest counted) for conflicting options
        or an output that would replace an input. Costs a stat and 16 bytes read per input."""
        try:
            check_options(self.options)
        except RestoraError as e:
            raise UsageError(str(e)) from None
        if self.outdir.exists() and not self.outdir.is_dir():
            raise UsageError(f"{self.outdir}: the output must be a folder, and this is a file")
        collisions = self.input_collisions()
        if collisions:
            more = f" (and {len(collisions) - 1} more)" if len(collisions) > 1 else ""
            raise UsageError(f"{collisions[0]}{more}; choose an output folder outside the inputs "
                             f"(inputs are never modified)")

    def prepare(self) -> list[Path]:
        """Delete temporary files that a killed run left in the folders this batch writes into
        (not their sub-folders: ``-o ~`` must not scan a whole home folder); returns them."""
        from ..imageio import remove_stale_partials

        folders = sorted({self.expected_target(item).parent for item in self.items})
        removed: list[Path] = []
        for folder in folders:
            if folder.is_dir():
                removed += remove_stale_partials(folder, recursive=False)
        return removed

    # -- the work ---------------------------------------------------------------------------
    def _input_at(self, target: Path) -> Optional[Path]:
        real = _real(target)
        if real in self._inputs:
            return self._inputs[real]
        if target.exists():
            for key, original in self._inputs.items():
                try:
                    if os.path.samefile(key, target):
                        return original
                except OSError:
                    continue
        return None

    def target_for(self, item: BatchItem, photo: Photo) -> Path:
        """The output path for ``item`` once decoded; raises :class:`RestoraError` when another
        input of this batch already claimed it, or when it is an input."""
        target = output_path_for(item, self.outdir, output_extension(photo, item.path, self.options.fmt))
        victim = self._input_at(target)
        if victim is not None:
            raise UsageError(f"{_collision(item.path, target, victim)}; not restored")
        with self._lock:
            other = self._claimed.get(_real(target))
            if other is not None and other != item.path:
                raise RestoraError(f"{item.path}: its output {target} would replace the one from {other}")
            self._claimed[_real(target)] = item.path
        return target

    def run_item(self, restorer: Restorer, item: BatchItem, progress: Optional[Progress] = None, *,
                 decoded=None, write_later=None) -> RestoreResult:
        """Restore one item. Never raises for the photo (its error is ``result.error``; an existing
        output with ``skip_existing`` gives ``result.skipped``); only cancellation propagates.
        An existing output is recognised from the name before the photo is even decoded.
        ``decoded``/``write_later``: see :meth:`Restorer.restore_file` (used by
        :meth:`run_overlapped`)."""
        from ..errors import Cancelled

        try:
            if self.options.skip_existing:
                expected = self.expected_target(item)
                if expected.exists():
                    with self._lock:
                        self._claimed.setdefault(_real(expected), item.path)
                    return RestoreResult(input=item.path, output=expected, skipped=True)
            return restorer.restore_file(item.path, lambda photo: self.target_for(item, photo), self.options,
                                         progress, decoded=decoded, write_later=write_later)
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - restore_file already applies it; this covers the name checks
            return RestoreResult(input=item.path, error=describe_error(e, item.path))


    # -- overlapping files ------------------------------------------------------------------
    def run_overlapped(self, restorer: Restorer, progress_for: Callable[[int], Progress],
                       on_result: Callable[[int, RestoreResult], None]) -> None:
        """Restore every item in order, overlapping decoding, inference and encoding across files:
        the next file is decoded in the background while this one is restored (one file ahead,
        only when its pixels are small, see :func:`prefetch_allowed`), and each output is encoded
        in the background while the next file is restored (one encode at a time; a large
        output is written before the next file starts, as without overlap).

        ``on_result(index, result)`` is called on this thread, in the items' order, once the
        file is completely written (or failed or skipped); ``progress_for(index)`` gives the
        item's :class:`Progress`. Raises :class:`Cancelled` when that progress's token is
        cancelled: the encode in flight is finished first (outputs are written atomically, so
        a file is either complete or absent) and reported; a file decoded ahead is dropped.
        """
        from concurrent.futures import ThreadPoolExecutor

        decoder = ThreadPoolExecutor(1, thread_name_prefix="restora-decode")
        encoder = ThreadPoolExecutor(1, thread_name_prefix="restora-encode")
        pending: list[tuple[int, RestoreResult, object]] = []  # at most one: written in the background

        def report_written(wait: bool) -> None:
            while pending and (wait or pending[0][2] is None or pending[0][2].done()):
                index, result, future = pending.pop(0)
                if future is not None:
                    try:
                        future.result()
                    except Exception as e:  # noqa: BLE001 - a failed write fails its file only
                        result.output, result.error = None, describe_error(e, result.input)
                on_result(index, result)

        ahead = self._prefetch(decoder, 0) if self.items else None
        try:
            for i, item in enumerate(self.items):
                decoded, ahead = ahead, (self._prefetch(decoder, i + 1) if i + 1 < len(self.items) else None)
                base = progress_for(i)

                def tick(fraction: float, message: str = "", base: Progress = base) -> None:
                    report_written(wait=False)  # the last file's line as soon as it is on disk
                    base(fraction, message)

                writes: list = []
                # a large output is written here: held while the next photo is restored, it would
                # raise the batch's peak memory by its whole size
                background = prefetch_allowed(item.path, scale=self.options.scale)
                result = self.run_item(restorer, item, Progress(tick, base.cancel), decoded=decoded,
                                       write_later=lambda write, writes=writes, background=background:
                                       writes.append(encoder.submit(write)) if background else write())
                report_written(wait=True)  # one encode at a time: the previous one is done now
                pending.append((i, result, writes[0] if writes else None))
            report_written(wait=True)
        finally:
            if ahead is not None:
                ahead.cancel()
            decoder.shutdown(wait=False, cancel_futures=True)
            encoder.shutdown(wait=True)  # a cancelled batch still completes the file being written
            try:
                report_written(wait=True)
            except Exception:  # noqa: BLE001 - already leaving with an error; do not mask it
                pass

    def _prefetch(self, pool, index: int):
        """Start decoding item ``index`` on ``pool`` (a future of its :class:`Photo`), or ``None``
        when it should not be decoded ahead (skipped, too large, unreadable header)."""
        item = self.items[index]
        if self.options.skip_existing and self.expected_target(item).exists():
            return None
        if not prefetch_allowed(item.path):
            return None
        from ..imageio import load_photo

        return pool.submit(load_photo, item.path)


#: A file is decoded ahead (while the one before it is restored) only when its decoded float32
#: pixels take at most this many bytes and at most :data:`PREFETCH_BUDGET_SHARE` of the memory
#: budget: decoding is a small share of a restoration's time, and a large photo held early
#: would raise the batch's peak memory by its whole size.
PREFETCH_MAX_BYTES = 256 * 2**20
PREFETCH_BUDGET_SHARE = 0.125


def prefetch_allowed(path: Path, scale: int = 1) -> bool:
    """Whether ``path`` is small enough to be decoded ahead, or its output (``scale`` times its
    sides) to be written in the background (see :data:`PREFETCH_MAX_BYTES`)."""
    from ..imageio.loading import probe_size
    from .memory import memory_budget

    try:
        size = probe_size(path)
    except Exception:  # noqa: BLE001 - the restoration itself reports an unreadable file
        return False
    if size is None:
        return False
    need = size[0] * size[1] * 3 * 4 * scale * scale
    budget = memory_budget()
    return need <= PREFETCH_MAX_BYTES and (budget is None or need <= budget * PREFETCH_BUDGET_SHARE)
