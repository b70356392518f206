"""Fetch one file over HTTP(S) into a staging file: bounded in time, resumable, one line per retry.

Every model download goes through :func:`fetch_to_file` (Hugging Face hub files and ``url``
catalog sources alike); the caller then checks size and sha256 and renames the file into the
cache. It is built on ``requests`` (proxies from the environment, certificates, redirects)
and adds what a plain streamed GET lacks:

* **Time bounds.** Connecting may take ``connect_timeout_s``. A transfer counts as *stalled*
  when it received fewer than ``stall_min_bytes`` in the last ``stall_window_s`` seconds (a
  server sending one byte every 2 s never trips a socket read timeout, but it does stall),
  and the whole call — retries included — ends after ``total_timeout_s``. Each is reported as
  what it is: unreachable host, stall, overall time limit.
* **Resume.** Bytes already in the staging file are kept: a dropped connection (or a stall)
  is retried with an HTTP ``Range`` request from where it stopped, at most ``retries`` times,
  with one notice per retry. A server that ignores ``Range`` (answers 200) restarts from zero.
  A partial file left by a failed call is resumed by the next call when the caller keeps it.
* **Cancellation** between chunks through :class:`engine.progress.Progress`.

Reads use ``urllib3``'s ``read1`` (whatever the socket has, up to 64 KiB) so the time checks
run after every network read, never after a full buffer.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

from ..errors import ModelError, one_line
from ..progress import Progress
from ..units import format_bytes

log = logging.getLogger(__name__)

#: Environment variable: overall time limit of one download in seconds (default below).
TOTAL_TIMEOUT_ENV = "RESTORA_DOWNLOAD_TIMEOUT"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TransferLimits:
    """Time bounds of one download (seconds, bytes). ``total_timeout_s`` ``None`` means: read
    ``$RESTORA_DOWNLOAD_TIMEOUT``, else one hour."""

    connect_timeout_s: float = 15.0
    stall_window_s: float = 30.0
    stall_min_bytes: int = 16 * 1024
    total_timeout_s: Optional[float] = None
    retries: int = 3
    retry_pause_s: float = 1.0

    def total(self) -> float:
        if self.total_timeout_s is not None:
            return float(self.total_timeout_s)
        value = os.environ.get(TOTAL_TIMEOUT_ENV, "").strip()
        try:
            return float(value) if value else 3600.0
        except ValueError:
            raise ModelError(f"{TOTAL_TIMEOUT_ENV}={value!r} is not a number of seconds") from None


class Failure(str, enum.Enum):
    UNREACHABLE = "unreachable"   # no connection could be made (offline, DNS, refused)
    STALLED = "stalled"           # connected, but data stopped flowing (or crawled)
    TIMEOUT = "timeout"           # the overall time limit ran out
    CUT = "cut"                   # the connection dropped mid-transfer, retries exhausted
    HTTP = "http"                 # the server answered with an error status
    INCOMPLETE = "incomplete"     # the server sent a different size than announced/expected


class TransferError(ModelError):
    """A download failed; ``failure`` says how, ``status`` is the HTTP status for ``HTTP``.
    ``str()`` is one line for the user (the caller may prefix which model it was for)."""

    def __init__(self, message: str, failure: Failure, status: int = 0, keep_partial: bool = False,
                 reason: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        #: The bare cause ("Connection refused", "stalled: ..."), without the file and host.
        self.reason = reason
        self.status = status
        #: True when the staging file holds a valid prefix worth resuming from next time.
        self.keep_partial = keep_partial


class _Stall(Exception):
    pass


class _Cut(Exception):
    pass


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def fetch_to_file(url: str, dest: Path, *, expected_size: int = 0, headers: Optional[Mapping[str, str]] = None,
                  progress: Optional[Progress] = None, limits: Optional[TransferLimits] = None,
                  label: str = "", notify: Optional[Callable[[str], None]] = None,
                  check_space: Optional[Callable[[int], None]] = None) -> Path:
    """Download ``url`` into ``dest`` (appending to what ``dest`` already holds) and return ``dest``.

    ``expected_size``: bytes the file must have (0: take the server's ``Content-Length``); a
    longer partial file is discarded first. ``label``: short name for messages (default: the
    URL's file name). ``notify`` receives one line per retry. ``check_space(bytes still to
    fetch)`` is called once the size is known. Raises :class:`TransferError` (a
    :class:`ModelError`) on failure and :class:`engine.errors.Cancelled` when cancelled; the
    file is not verified here.
    """
    import requests
    import urllib3

    progress = progress or Progress()
    limits = limits or TransferLimits()
    label = label or Path(urlsplit(url).path).name or url
    host = host_of(url)
    deadline = time.monotonic() + limits.total()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if expected_size and dest.exists() and dest.stat().st_size > expected_size:
        dest.unlink()
    session = requests.Session()
    session.headers.update({"Accept-Encoding": "identity", "User-Agent": "restora"})
    attempt = 0
    if expected_size and check_space is not None:
        check_space(max(expected_size - (dest.stat().st_size if dest.exists() else 0), 0))
        check_space = None  # known before any request: checked once, here
    try:
        while True:
            done = dest.stat().st_size if dest.exists() else 0
            if expected_size and done == expected_size:
                progress(1.0, f"{label}: {format_bytes(done)}")
                return dest
            progress.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout(label, host, limits, done, expected_size)
            try:
                total = _one_request(session, url, dest, done, expected_size, headers, progress, limits,
                                     deadline, label, check_space)
                size = dest.stat().st_size
                if total and size != total:
                    raise _Cut(f"{size} of {total} bytes")
                if expected_size and size != expected_size:
                    raise TransferError(
                        f"{label} from {host} has {size} bytes, but {expected_size} were expected; "
                        "the file there is not the catalog's", Failure.INCOMPLETE)
                return dest
            except (_Stall, _Cut, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:
                got = dest.stat().st_size if dest.exists() else 0
                if attempt == 0 and got == done and _is_connect_failure(err):
                    raise TransferError(f"cannot reach {host} to download {label} ({_reason(err)})",
                                        Failure.UNREACHABLE, keep_partial=got > 0, reason=_reason(err)) from None
                stalled = isinstance(err, (_Stall, requests.exceptions.Timeout,
                                           urllib3.exceptions.ReadTimeoutError))
                if time.monotonic() >= deadline:
                    raise _timeout(label, host, limits, got, expected_size) from None
                attempt += 1
                if attempt > limits.retries:
                    what = "stalled" if stalled else "lost the connection"
                    raise TransferError(
                        f"download of {label} from {host} {what} {attempt} times and gave up at "
                        f"{_fraction(got, expected_size)} ({_reason(err)})",
                        Failure.STALLED if stalled else Failure.CUT, keep_partial=got > 0,
                        reason=_reason(err)) from None
                line = (f"{label}: {'download stalled' if stalled else 'connection lost'} at "
                        f"{_fraction(got, expected_size)}; resuming (retry {attempt} of {limits.retries})")
                log.warning("%s", line)
                log.debug("%s: %r", label, err)
                if notify is not None:
                    notify(line)
                progress(got / expected_size if expected_size else 0.0, line)
                time.sleep(min(limits.retry_pause_s * attempt, max(deadline - time.monotonic(), 0.0)))
    finally:
        session.close()


def _one_request(session, url: str, dest: Path, done: int, expected_size: int,
                 headers: Optional[Mapping[str, str]], progress: Progress, limits: TransferLimits,
                 deadline: float, label: str, check_space: Optional[Callable[[int], None]]) -> int:
    """One GET (ranged when ``done`` > 0) appended to ``dest``; returns the full file size (0 if
    unknown). Raises ``_Stall`` / ``_Cut`` / requests' exceptions for retryable failures."""
    request_headers = dict(headers or {})
    if done:
        request_headers["Range"] = f"bytes={done}-"
    read_timeout = max(min(limits.stall_window_s, deadline - time.monotonic()), 0.05)
    response = session.get(url, headers=request_headers, stream=True, allow_redirects=True,
                           timeout=(limits.connect_timeout_s, read_timeout))
    with response:
        status = response.status_code
        if status == 416 and done and expected_size and done == expected_size:
            return expected_size
        if status not in (200, 206):
            host = host_of(url)
            reason = {404: "not found", 401: "needs a login", 403: "access refused",
                      410: "gone", 429: "too many requests; try again later"}.get(status, response.reason or "error")
            raise TransferError(f"{host} answered HTTP {status} ({reason}) for {label} ({url})", Failure.HTTP,
                                status=status)
        length = int(response.headers.get("Content-Length", 0) or 0)
        if status == 206:
            total = _content_range_total(response.headers.get("Content-Range", "")) or (done + length if length else 0)
            mode = "ab"
        else:
            total, done, mode = length, 0, "wb"  # the server ignored Range: start over
        if expected_size and total and total != expected_size:
            raise TransferError(f"{label} on {host_of(url)} has {total} bytes, but the catalog's file has "
                                f"{expected_size}; it is not the same file", Failure.INCOMPLETE)
        full = expected_size or total
        if check_space is not None:
            check_space(max(full - done, 0))
        got = done
        window_start, window_bytes = time.monotonic(), 0
        raw = response.raw
        with open(dest, mode) as f:
            while True:
                progress.check()
                chunk = raw.read1(_CHUNK) if hasattr(raw, "read1") else raw.read(_CHUNK)
                now = time.monotonic()
                if chunk:
                    f.write(chunk)
                    got += len(chunk)
                    window_bytes += len(chunk)
                    amount = f"{format_bytes(got)} / {format_bytes(full)}" if full else format_bytes(got)
                    progress(got / full if full else 0.0, f"{label}: {amount}")
                elif full and got < full:
                    f.flush()
                    raise _Cut(f"the server closed the connection after {got} of {full} bytes")
                else:
                    break
                if full and got >= full:
                    break
                if now >= deadline:
                    f.flush()
                    raise _Stall("overall time limit")
                if now - window_start >= limits.stall_window_s:
                    if window_bytes < limits.stall_min_bytes:
                        f.flush()
                        raise _Stall(f"{window_bytes} bytes in the last {now - window_start:.0f} s")
                    window_start, window_bytes = now, 0
    return full


def _content_range_total(value: str) -> int:
    try:
        return int(value.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return 0


def _is_connect_failure(err: BaseException) -> bool:
    """True when no connection was made at all (requests raises ConnectionError / ConnectTimeout
    before any response; a failure while reading a body is not one)."""
    import requests

    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    return isinstance(err, requests.exceptions.ConnectionError) and not isinstance(
        err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError))


def _timeout(label: str, host: str, limits: TransferLimits, got: int, size: int) -> TransferError:
    return TransferError(f"download of {label} from {host} did not finish within {limits.total():.0f} s "
                         f"(the overall limit, {TOTAL_TIMEOUT_ENV}); stopped at {_fraction(got, size)}",
                         Failure.TIMEOUT, keep_partial=got > 0)


def _fraction(got: int, size: int) -> str:
    return f"{format_bytes(got)} of {format_bytes(size)} ({100 * got / size:.0f} %)" if size else format_bytes(got)


def _reason(err: BaseException) -> str:
    """A short human reason for a network failure (no library class names or object reprs)."""
    import requests
    import urllib3

    if isinstance(err, _Stall):
        return f"stalled: {err}"
    if isinstance(err, _Cut):
        return str(err)
    if isinstance(err, (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return "connection timed out"
    if isinstance(err, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
        return "no data arrived for the stall window"
    text = repr(err)
    if "NameResolutionError" in text or "Failed to resolve" in text or "Name or service not known" in text:
        return "the host name could not be resolved"
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if isinstance(err, (urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError)):
        return "the connection broke off"
    return one_line(err)


