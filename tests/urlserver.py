"""A local HTTP file server for ``url`` catalog sources (test helper), with hostile behaviours.

Files are served in the layout of ``WeightsManager(url_mirror=server.url)`` /
``RESTORA_URL_MIRROR``: the original ``https://host/path`` is answered at
``http://127.0.0.1:PORT/host/path``. ``HEAD`` and ``GET`` with ``Range`` (206 +
``Content-Range``) are supported. Per file, a test can make the server

* ``cut_after=N``: send N bytes of the next GET, then drop the connection (once);
* ``drip=(n, seconds)``: send n bytes every ``seconds`` (a stalled or crawling transfer);
* ``ignore_range=True``: answer every GET with the whole file (200), like some servers do;
* ``redirect=True``: answer with a 302 to another path first, like GitHub release assets
  (``github.com/.../releases/download/...`` → ``objects.githubusercontent.com/...``).

Every request is logged in :attr:`UrlServer.requests` as ``(method, path, headers)``.

Usage::

    with UrlServer() as server:
        server.add_url("https://github.com/o/r/raw/<commit>/w.pth", data)
        manager = WeightsManager(catalog=..., url_mirror=server.url)
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

from localserver import LocalServer, send_file


@dataclass
class _File:
    data: bytes
    cut_after: Optional[int] = None
    drip: Optional[tuple[int, float]] = None
    ignore_range: bool = False
    redirect: bool = False


class UrlServer(LocalServer):
    """Static file server on 127.0.0.1 and a random free port."""

    name = "urlserver"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, _File] = {}

    def add_url(self, original_url: str, data: Union[bytes, Path], **behaviour) -> str:
        """Serve ``data`` (bytes or a file's path) for ``original_url``; returns the local URL."""
        parts = urlsplit(original_url)
        path = f"/{parts.netloc}{unquote(parts.path)}"
        payload = Path(data).read_bytes() if isinstance(data, Path) else bytes(data)
        self.files[path] = _File(payload, **behaviour)
        return self.url + path

    def serve(self, h, path: str, body: bool) -> None:
        path = unquote(path)
        redirected = path.startswith("/redirected")
        entry = self.files.get(path.removeprefix("/redirected"))
        if entry is None:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if entry.redirect and not redirected:
            h.send_response(302)
            h.send_header("Location", self.url + "/redirected" + path)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data, start, status = entry.data, 0, 200
        m = re.match(r"bytes=(\d+)-$", (h.headers.get("Range") or "").strip())
        if m and not entry.ignore_range:
            start, status = int(m.group(1)), 206
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        send_file(h, data, start, status, body, self._stop, entry)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
