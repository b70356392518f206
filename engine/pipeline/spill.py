"""Full-size stage changes kept within a byte budget: in memory up to it, on disk past it.

A one-shot restoration (the CLI, a batch) never moves a slider, so it has no use for every
stage's float32 change (12 bytes per pixel each) in memory at once: it composes once, row band
by row band (:meth:`engine.pipeline.session.RestorationSession.compose_into`). A
:class:`ChangeStore` keeps changes in memory while their total stays within its budget and
writes the rest to a raw float32 file each (:class:`SpilledArray`), read back one row band at a
time. Whole rows are read with plain ``readinto`` (not memory-mapped), so what the kernel caches
of them is not part of the process's resident memory; a crop or a subsampled copy is read through
a memory map of one band at a time (:meth:`SpilledArray._gather`). Files are deleted when the
store is closed (or the array is garbage-collected).

The window keeps its changes in a store too, with :func:`window_change_budget`: past it, the
sliders move on screen-resolution copies of each change kept in memory
(:meth:`engine.pipeline.session.RestorationSession.compose` with a sampling step), a crop at
100 % reads the visible rows and columns from the files, and an export composes from the files
band by band, with the same float32 operations (so the same bytes) as from memory. The files hold
float32, not float16: float16 would change exported values by up to 16 levels of a 16-bit file.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..imageio.atomic import track_temp, untrack_temp

#: Rows per band when a full-size float image is produced or consumed band by band: 64 rows of a
#: 12 000-pixel-wide photo are 9 MB of float32 RGB, small against the photo and large enough
#: that the per-band overhead does not show.
BAND_ROWS = 64

#: ``RESTORA_CHANGE_BUDGET`` (bytes, or with a K/M/G suffix) overrides :data:`DEFAULT_CHANGE_BUDGET`.
BUDGET_VARIABLE = "RESTORA_CHANGE_BUDGET"
#: Bytes of full-size stage changes a one-shot restoration keeps in memory before it spills to
#: disk: every change of a 12 MP photo's usual plan (two FFDNet knots, 288 MB) stays in memory.
DEFAULT_CHANGE_BUDGET = 320 * 2**20


def band_slices(height: int, rows: int = BAND_ROWS) -> list[slice]:
    """Row slices of at most ``rows`` rows covering ``[0, height)`` in order."""
    rows = max(int(rows), 1)
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
    untrack_temp(Path(path))


class SpilledArray:
    """A float32 array kept in a raw file (C order), read back by row ranges.

    Indexing (``a[rows]``, ``a[rows, cols]``, ``a[::step, ::step]``) reads only the rows it
    needs (whole rows with ``readinto``; a column range or a sampling step through a memory map,
    band by band); ``np.asarray(a)`` reads the whole array. The file is deleted by :meth:`close` or
    when the object is garbage-collected.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.float32)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._finalizer = weakref.finalize(self, _remove, str(self.path))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @classmethod
    def create(cls, folder: Path, shape: tuple[int, ...]) -> "SpilledArray":
        """An empty file for an array of ``shape`` in ``folder`` (rows filled by :meth:`write_rows`)."""
        while True:  # named like an atomic write's temporary file, so a batch removes one left by a killed run
            path = Path(folder) / f".restora-change.{os.getpid()}-{secrets.token_hex(4)}.partial"
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            track_temp(path)
            return cls(path, shape)

    def write_rows(self, top: int, rows: np.ndarray) -> None:
        """Write ``rows`` (float32, ``shape[1:]`` per row) at row ``top``."""
        data = np.ascontiguousarray(rows, dtype=np.float32)
        if data.shape[1:] != self.shape[1:] or top < 0 or top + data.shape[0] > self.shape[0]:
            raise ValueError(f"rows of shape {data.shape} at {top} do not fit an array of shape {self.shape}")
        with open(self.path, "r+b") as handle:
            handle.seek(top * self._row_bytes)
            handle.write(memoryview(data).cast("B"))

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a new float32 array."""
        start, stop = max(start, 0), min(stop, self.shape[0])
        out = np.empty((max(stop - start, 0),) + self.shape[1:], self.dtype)
        if out.size:
            with open(self.path, "rb") as handle:
                handle.seek(start * self._row_bytes)
                if handle.readinto(memoryview(out).cast("B")) != out.nbytes:
                    raise OSError(f"{self.path}: spilled change is shorter than expected")
        return out

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        rows, rest = key[0], key[1:]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step < 0:
                return np.asarray(self)[key]
            if step == 1 and all(isinstance(r, slice) and r.indices(n) == (0, n, 1)
                                 for r, n in zip(rest, self.shape[1:], strict=False)):
                return self.read_rows(start, stop)
            return self._gather(range(start, stop, step), rest)
        return np.asarray(self)[key]

    def _gather(self, rows: range, rest: tuple) -> np.ndarray:
        """``self[rows, *rest]`` read through a memory map of one band of rows at a time: only the
        pages of the rows (and, within a row, the columns) asked for are read, and at most one
        band of them is mapped at once (a screen-sized crop or a subsampled copy of a large
        change costs about its own size, not the change's)."""
        tail = np.broadcast_to(np.float32(0), (1,) + self.shape[1:])[(slice(None),) + rest].shape[1:]
        out = np.empty((len(rows),) + tail, self.dtype)
        for first in range(0, len(rows), BAND_ROWS):
            band = rows[first:first + BAND_ROWS]
            top, bottom = band[0], band[-1] + 1
            mapped = np.memmap(self.path, self.dtype, "r", offset=top * self._row_bytes,
                               shape=(bottom - top,) + self.shape[1:])
            out[first:first + len(band)] = mapped[(slice(None, None, rows.step),) + rest]
            del mapped
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self.read_rows(0, self.shape[0])
        return full if dtype is None else full.astype(dtype, copy=False)

    def close(self) -> None:
        self._finalizer()


Change = Union[np.ndarray, SpilledArray]


class ChangeStore:
    """Where a one-shot restoration (or the window, :func:`window_change_budget`) keeps its
    full-size stage changes: in memory while their total is at most ``budget`` bytes, else in
    files in ``folder`` (default: the system's temporary folder). ``budget`` ``None``: :func:`change_budget`."""

    def __init__(self, budget: Optional[int] = None, folder: Optional[Path] = None) -> None:
        self.budget = change_budget() if budget is None else max(int(budget), 0)
        self.folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        self.in_memory = 0
        self.spilled: list[SpilledArray] = []
        #: A window keeps changes from two threads (a run, and its deferred knots).
        self._lock = threading.RLock()

    def fits(self, nbytes: int) -> bool:
        """Whether a change of ``nbytes`` more stays in memory (within the budget)."""
        return self.in_memory + int(nbytes) <= self.budget

    def prefers_in_place(self, nbytes: int) -> bool:
        """Whether a stage whose input and output are ``nbytes`` float arrays should write over
        its input (:func:`in_place_past_budget`)."""
        return in_place_past_budget(self.in_memory, nbytes, self.budget)

    def keep(self, change: np.ndarray) -> Change:
        """Keep ``change``: itself while it fits the budget, else a :class:`SpilledArray` copy
        (the caller then drops its array)."""
        with self._lock:
            if self.fits(change.nbytes):
                self.in_memory += change.nbytes
                return change
            spilled = SpilledArray.create(self.folder, change.shape)
            self.spilled.append(spilled)
        for band in band_slices(change.shape[0]):
            spilled.write_rows(band.start, change[band])
        return spilled

    def writer(self, shape: tuple[int, ...]) -> Optional[SpilledArray]:
        """A file for a change of ``shape`` that the caller fills band by band, or ``None`` when
        the change fits the budget in memory (it is then counted: the caller keeps an array)."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * 4
        with self._lock:
            if self.fits(nbytes):
                self.in_memory += nbytes
                return None
            spilled = SpilledArray.create(self.folder, shape)
            self.spilled.append(spilled)
        return spilled

    def park(self, array: np.ndarray) -> SpilledArray:
        """A copy of ``array`` on disk (written band by band, not counted against the budget),
        for an array that is about to be overwritten; deleted by :meth:`discard` or :meth:`close`."""
        parked = SpilledArray.create(self.folder, array.shape)
        with self._lock:
            self.spilled.append(parked)
        for band in band_slices(array.shape[0]):
            parked.write_rows(band.start, array[band])
        return parked

    def discard(self, spilled: SpilledArray) -> None:
        """Delete one file of this store now."""
        spilled.close()
        with self._lock:
            if spilled in self.spilled:
                self.spilled.remove(spilled)

    def close(self) -> None:
        """Delete every spilled file and forget the memory count."""
        with self._lock:
            spilled, self.spilled = self.spilled, []
            self.in_memory = 0
        for one in spilled:
            one.close()


def in_place_past_budget(in_memory: float, nbytes: float, budget: float) -> bool:
    """Whether a one-shot stage on a ``nbytes`` float array runs in place, with ``in_memory``
    bytes of changes already kept and a change budget of ``budget`` bytes: run beside its input,
    the stage keeps two full-size arrays more than in place (the input, and its change in
    memory), so it runs in place when those two do not fit the budget. With the default
    320 MiB a 12 MP photo's first stage (2 × 144 MB) still runs beside its input, from about
    14 MP on stages run in place (before issue 14's second pass: from about 28 MP, counting the
    change alone, so that a 24 MP photo held three full-size arrays at its peak and a 48 MP one
    only one)."""
    return in_memory + 2 * nbytes > budget


#: ``RESTORA_WINDOW_CHANGE_BUDGET`` (bytes, or with a K/M/G suffix) overrides :func:`window_change_budget`.
WINDOW_BUDGET_VARIABLE = "RESTORA_WINDOW_CHANGE_BUDGET"
#: Bytes of full-size stage changes the window keeps in memory at most: the two FFDNet knots of a
#: photo up to 5.5 MP (2 x 12 bytes per pixel). A larger photo's changes go to disk: its sliders
#: move on screen-resolution copies (from 2 MP on, :data:`engine.pipeline.session.SUBSAMPLED_COPIES_FROM`),
#: so what a change kept in memory would still speed up is the 100 % view and the export.
DEFAULT_WINDOW_CHANGE_BUDGET = 128 * 2**20
#: ... and at most this share of :func:`engine.pipeline.memory.memory_budget` (a small machine).
WINDOW_BUDGET_SHARE = 1 / 8


def window_change_budget() -> int:
    """Bytes of full-size stage changes the window's session keeps in memory (the rest on disk):
    :data:`WINDOW_BUDGET_VARIABLE` when set, else the smaller of :data:`DEFAULT_WINDOW_CHANGE_BUDGET`
    and :data:`WINDOW_BUDGET_SHARE` of the memory a photo may use (``memory_budget``)."""
    from .memory import memory_budget, parse_size

    text = os.environ.get(WINDOW_BUDGET_VARIABLE)
    if text:
        return parse_size(text)
    room = memory_budget()
    return DEFAULT_WINDOW_CHANGE_BUDGET if room is None else min(DEFAULT_WINDOW_CHANGE_BUDGET,
                                                                 int(room * WINDOW_BUDGET_SHARE))


def change_budget() -> int:
    """Bytes of changes kept in memory: :data:`BUDGET_VARIABLE` when set, else
    :data:`DEFAULT_CHANGE_BUDGET`."""
    from .memory import parse_size

    text = os.environ.get(BUDGET_VARIABLE)
    return parse_size(text) if text else DEFAULT_CHANGE_BUDGET
