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

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Union
from urllib.parse import unquote, urlsplit


@dataclass
class _File:
    data: bytes
    cut_after: Optional[int] = None
    drip: Optional[tuple[int, float]] = None
    ignore_range: bool = False
    redirect: bool = False


class UrlServer:
    """Threaded static file server on 127.0.0.1 and a random free port."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="urlserver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_url(self, original_url: str, data: Union[bytes, Path], **behaviour) -> str:
        """Serve ``data`` (bytes or a file's path) for ``original_url``; returns the local URL."""
        parts = urlsplit(original_url)
        path = f"/{parts.netloc}{unquote(parts.path)}"
        payload = Path(data).read_bytes() if isinstance(data, Path) else bytes(data)
        self.files[path] = _File(payload, **behaviour)
        return self.url + path

    def gets(self, name: str) -> list[dict[str, str]]:
        """Headers of every GET whose path ends with ``name``, in order."""
        return [h for m, p, h in self.requests if m == "GET" and p.endswith(name)]

    def __enter__(self) -> "UrlServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                with server._lock:
                    server.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
                redirected = path.startswith("/redirected")
                entry = server.files.get(path.removeprefix("/redirected"))
                if entry is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if entry.redirect and not redirected:
                    self.send_response(302)
                    self.send_header("Location", server.url + "/redirected" + path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start, status = entry.data, 0, 200
                m = re.match(r"bytes=(\d+)-$", (self.headers.get("Range") or "").strip())
                if m and not entry.ignore_range:
                    start, status = int(m.group(1)), 206
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(status)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                payload = data[start:]
                try:
                    if entry.cut_after is not None:
                        cut, entry.cut_after = entry.cut_after, None
                        self.wfile.write(payload[:cut])
                        self.wfile.flush()
                        self._drop()
                        return
                    if entry.drip is not None:
                        n, pause = entry.drip
                        for i in range(0, len(payload), n):
                            if server._stop.wait(pause):
                                self._drop()
                                return
                            self.wfile.write(payload[i:i + n])
                            self.wfile.flush()
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler


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
