"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A reader never sees a half-written file, an interrupted write leaves the old file (if any)
intact, and no temporary file is left behind on error. Used for photos, downloads and JSON.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Iterator, Union

from ..errors import OutputExistsError, PhotoSaveError

PathLike = Union[str, "os.PathLike[str]"]

_TEMP_SUFFIX = ".partial"
#: ``.<target name>.<pid>-<8 hex>.partial`` (the pid of the writer), and the older
#: ``.<target name>.<8 hex>.partial`` without it.
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.partial$")
#: A temporary file whose writer cannot be identified counts as stale after this long (s).
STALE_AFTER_S = 600.0


_live: set[Path] = set()
_live_lock = threading.Lock()


def track_temp(path: Path) -> None:
    """Note a temporary file this process is writing (see :func:`remove_live_temp_files`)."""
    with _live_lock:
        _live.add(Path(path))


def untrack_temp(path: Path) -> None:
    """The temporary file ``path`` was published or removed."""
    with _live_lock:
        _live.discard(Path(path))


def remove_live_temp_files() -> list[Path]:
    """Delete every temporary file this process began and has not yet published or removed
    (photos being written, stage changes kept on disk), for a process that is about to exit in
    the middle of its work (the CLI stopped by a signal); returns those deleted."""
    with _live_lock:
        paths = sorted(_live)
        _live.clear()
    removed = []
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


#: Longest file name (bytes) assumed where the file system does not say (ext4, APFS, NTFS: 255).
NAME_MAX = 255
#: Bytes a temporary name adds to the target's name: ``.`` + ``.<pid>-<8 hex>.partial`` (pids up to 10 digits).
_TEMP_EXTRA = 1 + 1 + 10 + 1 + 8 + len(_TEMP_SUFFIX)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _temp_stem(target: Path) -> str:
    """The part of ``target``'s temporary names that names it: the target's name, or where that
    would make the temporary name too long for its folder, the name's start and a digest of it
    (a photo named at the limit can still be written atomically)."""
    name = target.name
    room = _name_max(target.parent) - _TEMP_EXTRA
    encoded = os.fsencode(name)
    if len(encoded) <= room:
        return name
    digest = "~" + hashlib.sha256(encoded).hexdigest()[:8]
    start = encoded[:max(room - len(digest), 1)]
    return start.decode("utf-8", "ignore") + digest


def check_name_fits(path: PathLike) -> None:
    """Raise :class:`PhotoSaveError` when ``path``'s file name is longer than its folder's file
    system allows (the nearest existing folder's; :data:`NAME_MAX` where it does not say)."""
    target = Path(path)
    folder = target.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    name_bytes = len(os.fsencode(target.name))
    if name_bytes > _name_max(folder):
        raise PhotoSaveError(f"{target}: the file name is longer than this file system allows ({name_bytes} bytes)")


def _create_temp_beside(target: Path) -> Path:
    """Create an empty, new temporary file in ``target``'s folder and return its path.

    The file is created with mode 0o666 filtered by the process umask (like any normal
    output), and its name starts with a dot so folder watchers and walkers skip it.
    """
    for _ in range(100):
        candidate = target.with_name(f".{_temp_stem(target)}.{os.getpid()}-{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        track_temp(candidate)
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
    check_name_fits(target)
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
    finally:
        untrack_temp(temp)


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


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(folder: PathLike, *, recursive: bool = True) -> list[Path]:
    """Delete temporary files of Restora's own naming that an interrupted run (kill -9, power
    cut) left in ``folder`` (and its sub-folders; links are not followed). A file whose writing
    process is still alive on this machine is kept, as is one without a process id younger
    than :data:`STALE_AFTER_S`. Returns the paths removed; folders that cannot be read are
    passed over."""
    removed: list[Path] = []
    pending = [Path(folder)]
    now = time.time()
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(Path(entry.path))
                    continue
                match = _TEMP_NAME.match(entry.name)
                if match is None or not entry.is_file(follow_symlinks=False):
                    continue
                pid = match.group("pid")
                if pid is not None:
                    if int(pid) == os.getpid() or _writer_alive(int(pid)):
                        continue
                elif now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                    continue
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                continue
    return removed


def leftover_temp_files(path: PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_output` began for ``path`` and never finished (left
    only when the writing process was killed outright), whoever wrote them; safe to delete once
    no writer of ``path`` is alive (a cluster run retrying a file its dead worker was writing)."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    return sorted(target.parent.glob(f".{glob.escape(_temp_stem(target))}.*{_TEMP_SUFFIX}"))
