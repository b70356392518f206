"""The threaded 127.0.0.1 HTTP server the download tests' stand-ins share (test helper).

:class:`LocalServer` listens on a random free port, logs every request in
:attr:`LocalServer.requests` as ``(method, unquoted path, headers)`` and hands ``HEAD``/``GET`` to the
subclass's :meth:`LocalServer.serve`; :func:`send_body` writes a response body with the hostile
behaviours a file may be given (``cut_after``, ``drip``). Subclasses: ``hubserver.HubServer``
(the Hugging Face hub) and ``urlserver.UrlServer`` (plain URLs).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Optional
from urllib.parse import unquote, urlsplit


class LocalServer:
    """Threaded HTTP server on 127.0.0.1 and a random free port; a context manager."""

    #: The server thread's name.
    name = "localserver"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, suffix: str) -> list[dict[str, str]]:
        """Headers of every GET whose path ends with ``suffix``, in order."""
        return [h for m, p, h in self.requests if m == "GET" and p.endswith(suffix)]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def serve(self, handler: BaseHTTPRequestHandler, path: str, body: bool) -> None:
        """Answer one request (``body``: a GET, else a HEAD) for the URL path ``path`` (as sent,
        still quoted)."""
        raise NotImplementedError

    def _handler_class(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urlsplit(self.path).path
                with server._lock:
                    server.requests.append((self.command, unquote(path),
                                            {k.lower(): v for k, v in self.headers.items()}))
                server.serve(self, path, body)

        return Handler


def drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection now, mid-response."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def send_file(handler: BaseHTTPRequestHandler, data: bytes, start: int, status: int, body: bool,
              stop: threading.Event, file, headers: Iterable[tuple[str, str]] = ()) -> None:
    """Answer ``status`` (200, or 206 with ``Content-Range``) with ``data`` from byte ``start``
    on, its sha256 as ``ETag``, the extra ``headers``, and (``body``: a GET) the bytes through
    :func:`send_body`."""
    partial = status == 206
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(data) - start))
    if partial:
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    handler.end_headers()
    if body:
        send_body(handler, data[start:], stop, file)


def send_body(handler: BaseHTTPRequestHandler, payload: bytes, stop: threading.Event, file) -> None:
    """Write ``payload`` as the response body. ``file.cut_after``: send only that many bytes,
    then drop the connection (once: the attribute is cleared). ``file.drip = (n, seconds)``: send
    n bytes every ``seconds``, dropping the connection when ``stop`` is set."""
    try:
        cut: Optional[int] = file.cut_after
        if cut is not None:
            file.cut_after = None
            handler.wfile.write(payload[:cut])
            handler.wfile.flush()
            drop(handler)
            return
        if file.drip is not None:
            n, pause = file.drip
            for i in range(0, len(payload), n):
                if stop.wait(pause):
                    drop(handler)
                    return
                handler.wfile.write(payload[i:i + n])
                handler.wfile.flush()
            return
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True
