"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A reader never sees a half-written file, an interrupted write leaves the old file (if any)
intact, and no temporary file is left behind on error. Used for photos, downloads and JSON.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
from pathlib import Path
from typing import Iterator, Union

from ..errors import OutputExistsError, PhotoSaveError

PathLike = Union[str, "os.PathLike[str]"]

_TEMP_SUFFIX = ".partial"


def _create_temp_beside(target: Path) -> Path:
    """Create an empty, new temporary file in ``target``'s folder and return its path.

    The file is created with mode 0o666 filtered by the process umask (like any normal
    output), and its name starts with a dot so folder watchers and walkers skip it.
    """
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise PhotoSaveError(f"{target}: could not create a temporary file beside it")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _publish(temp: Path, target: Path, overwrite: bool) -> None:
    """Move ``temp`` onto ``target``; without ``overwrite`` an existing target is never replaced."""
    if overwrite:
        os.replace(temp, target)
        return
    try:
        # A hard link fails atomically when the target exists, closing the check-then-rename race.
        os.link(temp, target)
    except FileExistsError:
        raise OutputExistsError(f"{target}: already exists (use overwrite to replace it)") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                             errno.EACCES):
            raise
        # The file system has no hard links (FAT, some network shares): check, then rename.
        if target.exists():
            raise OutputExistsError(f"{target}: already exists (use overwrite to replace it)") from None
        os.replace(temp, target)
        return
    temp.unlink()


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically becomes ``path``.

    Missing parent folders are created. If ``path`` exists and ``overwrite`` is false,
    :class:`OutputExistsError` is raised before anything is written (and again at the end
    should the file have appeared meanwhile). On any exception inside the block the
    temporary file is removed and the exception propagates; ``path`` is left untouched.

    Example::

        with atomic_output("out/photo.png", overwrite=False) as tmp:
            image.save(tmp, format="PNG")
    """
    target = Path(path)
    if target.is_dir():
        raise PhotoSaveError(f"{target}: is a folder, not a file")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target}: already exists (use overwrite to replace it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PhotoSaveError(f"{target.parent}: cannot create the folder ({err.strerror or err})") from err
    try:
        temp = _create_temp_beside(target)
    except OSError as err:
        raise PhotoSaveError(f"{target}: cannot write in this folder ({err.strerror or err})") from err
    try:
        yield temp
        _fsync_file(temp)
        _publish(temp, target, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def atomic_write_bytes(path: PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Atomically write ``data`` to ``path`` and return it as a :class:`Path`.

    Unlike :func:`atomic_output`, the default here is to replace an existing file (the usual
    need for caches, JSON and downloads); pass ``overwrite=False`` to refuse instead.
    """
    target = Path(path)
    with atomic_output(target, overwrite=overwrite) as temp:
        temp.write_bytes(data)
    return target


def atomic_write_text(path: PathLike, text: str, *, overwrite: bool = True, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` (encoded with ``encoding``) to ``path``; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding), overwrite=overwrite)


def leftover_temp_files(path: PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_output` began for ``path`` and never finished (left
    only when the writing process was killed outright); safe to delete once no writer of
    ``path`` is alive."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*{_TEMP_SUFFIX}"))
