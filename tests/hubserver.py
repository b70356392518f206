"""A local HTTP server that answers ``hf_hub_download`` like the Hugging Face hub (test helper).

Serves ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` for files registered with
:meth:`HubServer.add`, with the headers huggingface_hub 2.4 needs (``X-Repo-Commit``, ``ETag``,
``Content-Length``, ``Accept-Ranges``) and ``Range`` support for resumed downloads. It can cut
the connection part-way through the first GET of a file, to test resuming, or send a file
one byte at a time (``drip``), to test stalls. Every request is
logged in :attr:`HubServer.requests` as ``(method, path, headers)``.

Usage::

    with HubServer() as hub:
        hub.add("org/repo", "model.pth", data)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import unquote, urlsplit

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class _File:
    data: bytes
    commit: str
    cut_after: Optional[int] = None  # bytes sent before the connection is dropped, on the next GET
    drip: Optional[tuple[int, float]] = None  # (bytes, seconds): send the body this slowly


class HubServer:
    """Threaded hub stand-in on 127.0.0.1 and a random free port."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], _File] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hubserver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, filename: str, data: bytes, commit: str = DEFAULT_COMMIT,
            cut_after: Optional[int] = None, drip: Optional[tuple[int, float]] = None) -> None:
        """Serve ``data`` as ``filename`` of ``repo_id`` at any revision (answered as ``commit``).

        ``cut_after``: on the next GET of this file, send only that many bytes, then drop the
        connection (once). ``drip=(n, seconds)``: send the body n bytes every ``seconds`` (a
        stalled transfer; stops when the server shuts down).
        """
        self.files[(repo_id, filename)] = _File(data, commit, cut_after, drip)

    def gets(self, filename: str) -> list[dict[str, str]]:
        """Headers of every GET for ``filename``, in order."""
        return [h for m, p, h in self.requests if m == "GET" and p.endswith("/" + filename)]

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type:
        hub = self

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
                with hub._lock:
                    hub.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
                match = _RESOLVE.match(path)
                entry = None
                if match:
                    entry = hub.files.get((unquote(match["repo"]), unquote(match["file"])))
                if entry is None:
                    self._not_found(match is not None)
                    return
                data = entry.data
                start = 0
                status = 200
                range_header = self.headers.get("Range")
                if range_header:
                    m = re.match(r"bytes=(\d+)-(\d*)$", range_header.strip())
                    if m:
                        start = int(m.group(1))
                        status = 206
                sha = hashlib.sha256(data).hexdigest()
                self.send_response(status)
                self.send_header("X-Repo-Commit", entry.commit)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                payload = data[start:]
                if entry.cut_after is not None:
                    cut, entry.cut_after = entry.cut_after, None
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if entry.drip is not None:
                    n, pause = entry.drip
                    try:
                        for i in range(0, len(payload), n):
                            if hub._stop.wait(pause):
                                break
                            self.wfile.write(payload[i:i + n])
                            self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def _not_found(self, resolve_path: bool) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if resolve_path else "RepoNotFound")
                self.send_header("X-Error-Message", "not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
