"""Which files a batch processes and where each one's output goes.

Only regular files are ever opened: FIFOs, sockets, devices, dangling links and link loops are
reported and skipped (opening a FIFO would hang the batch), folders that cannot be read are
reported, and the batch's own output folder is never walked as an input.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence


@dataclass(frozen=True)
class BatchItem:
    """``path``: the input file; ``relative``: its path relative to the folder it was found in
    (just its name when it was given directly)."""

    path: Path
    relative: Path


class InputProblem(str):
    """One line about an input that was skipped (a ``str``: the message itself).

    ``path``: the entry it is about, exactly as found. ``failed``: true when the user asked
    for something that will not be done (a missing file, a FIFO, an unreadable folder), so a
    batch that has one does not end with success; false for a plain note (the output folder
    was found inside an input folder and is not walked).
    """

    path: Path
    failed: bool

    def __new__(cls, path: os.PathLike | str, message: str, *, failed: bool = True) -> "InputProblem":
        self = super().__new__(cls, f"{path}: {message}")
        self.path = Path(path)
        self.failed = failed
        return self


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _file_problem(path: Path) -> Optional[InputProblem]:
    """Why ``path`` (a found or given entry) cannot be opened as a photo, or ``None`` if it can."""
    try:
        st = os.stat(path)
    except OSError as err:
        if path.is_symlink():
            reason = "a link that loops" if err.errno == errno.ELOOP else "a link to nothing"
            return InputProblem(path, f"{reason}; skipped")
        return InputProblem(path, f"cannot be read ({err.strerror or err}); skipped")
    if not stat.S_ISREG(st.st_mode):
        return InputProblem(path, f"is {_kind_of(st.st_mode)}, not a photo file; skipped")
    return None


def _same_dir(a: os.stat_result, b: Optional[os.stat_result]) -> bool:
    return b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _stat_or_none(path: Optional[Path]) -> Optional[os.stat_result]:
    if path is None:
        return None
    try:
        return os.stat(path)
    except OSError:
        return None


#: How many of the images of other types a folder note names.
OTHER_TYPES_NAMED = 3
#: Image formats a photographer may keep beside photos that Restora does not read (named whatever
#: the system's MIME table says; any other ``image/*`` type counts too).
OTHER_IMAGE_EXTENSIONS = frozenset({".gif", ".heic", ".heif", ".avif", ".jxl", ".psd", ".psb", ".exr", ".hdr",
                                    ".jp2", ".j2k", ".svg", ".ico", ".tga", ".ppm", ".pgm", ".pbm", ".xcf"})


def looks_like_an_image(path: Path) -> bool:
    """Whether ``path``'s name says an image (of a type Restora does not read, when asked about one
    it does not support): a sidecar, a text file or a document does not."""
    if path.suffix.lower() in OTHER_IMAGE_EXTENSIONS:
        return True
    kind = mimetypes.guess_type(path.name)[0]
    return kind is not None and kind.startswith("image/")


def _other_types_note(folder: Path, others: Sequence[Path]) -> InputProblem:
    """The note (not a failure) for the images in ``folder`` of types Restora does not read."""
    names = ", ".join(p.name for p in others[:OTHER_TYPES_NAMED]) + (", ..." if len(others) > OTHER_TYPES_NAMED else "")
    count = f"{len(others)} image{'s' if len(others) != 1 else ''}"
    return InputProblem(folder, f"{count} of a type Restora does not read left out ({names})", failed=False)


def collect_inputs(paths: Iterable[os.PathLike | str], is_supported, *,
                   exclude: Sequence[os.PathLike | str] = ()) -> tuple[list[BatchItem], list[InputProblem]]:
    """Expand files and folders (recursively, sorted) into batch items.

    Files given explicitly are kept even if their extension is unknown (loading will report
    them); inside folders only files for which ``is_supported(path)`` is true are taken, and
    hidden files/folders are skipped. Links to folders are followed once (a link back into a
    folder already being walked is reported, never followed round). Folders in ``exclude``
    (the batch's output folder) are not walked.

    Returns ``(items, problems)``: one :class:`InputProblem` per input that does not exist,
    per supported-looking entry that is not a regular file, per folder that cannot be read,
    a note (``failed=False``) per excluded folder met during the walk, and a note per folder given
    that holds images of types Restora does not read (:func:`looks_like_an_image`; not hidden; named
    up to :data:`OTHER_TYPES_NAMED`; other files, such as sidecars and text, pass in silence).
    """
    items: list[BatchItem] = []
    problems: list[InputProblem] = []
    seen: set[Path] = set()
    excluded = [s for s in (_stat_or_none(Path(e)) for e in exclude) if s is not None]

    def add(f: Path, relative: Path) -> None:
        key = Path(os.path.realpath(f))
        if key not in seen:
            seen.add(key)
            items.append(BatchItem(f, relative))

    def walk(folder: Path, top: Path, ancestors: tuple[tuple[int, int], ...], other_types: list[Path]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            problems.append(InputProblem(folder, f"cannot read this folder ({err.strerror or err}); skipped"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                st = _stat_or_none(path)
                if st is None:
                    problems.append(InputProblem(path, "cannot read this folder; skipped"))
                    continue
                if any(_same_dir(st, ex) for ex in excluded):
                    problems.append(InputProblem(path, "is the output folder; not read as input", failed=False))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    problems.append(InputProblem(path, "a link that loops back to a folder above it; skipped"))
                    continue
                walk(path, top, ancestors + (key,), other_types)
                continue
            if not is_supported(path):
                if looks_like_an_image(path):
                    other_types.append(path)
                continue
            problem = _file_problem(path)
            if problem is not None:
                problems.append(problem)
                continue
            add(path, path.relative_to(top))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            # An input folder that is itself the output folder is still read: the batch check
            # refuses the run when an output would replace one of its files.
            st = os.stat(p)
            other_types: list[Path] = []
            walk(p, p, ((st.st_dev, st.st_ino),), other_types)
            if other_types:
                problems.append(_other_types_note(p, other_types))
        elif os.path.lexists(p):
            problem = _file_problem(p)
            if problem is not None:
                problems.append(problem)
            else:
                add(p, Path(p.name))
        else:
            problems.append(InputProblem(p, "no such file or folder"))
    return items, problems


def output_path_for(item: BatchItem, outdir: Path, extension: str) -> Path:
    """``OUTDIR/<relative path of input>/<stem><extension>`` (extension with its dot)."""
    return outdir / item.relative.parent / (item.relative.stem + extension)


def is_same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (through links, case-insensitive file
    systems or ``..``), or the same path when neither exists yet."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def find_output_collision(target: Path, claimed: dict[Path, Path]) -> Optional[Path]:
    """The input that already claimed ``target`` in this batch, if any."""
    return claimed.get(Path(os.path.realpath(target)))
