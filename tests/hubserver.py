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
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote

from localserver import LocalServer, send_file

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class _File:
    data: bytes
    commit: str
    cut_after: Optional[int] = None  # bytes sent before the connection is dropped, on the next GET
    drip: Optional[tuple[int, float]] = None  # (bytes, seconds): send the body this slowly


class HubServer(LocalServer):
    """Hub stand-in on 127.0.0.1 and a random free port."""

    name = "hubserver"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[tuple[str, str], _File] = {}

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
        return super().gets("/" + filename)

    def serve(self, h, path: str, body: bool) -> None:
        match = _RESOLVE.match(path)
        entry = None
        if match:
            entry = self.files.get((unquote(match["repo"]), unquote(match["file"])))
        if entry is None:
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound" if match is not None else "RepoNotFound")
            h.send_header("X-Error-Message", "not found")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data, start, status = entry.data, 0, 200
        m = re.match(r"bytes=(\d+)-(\d*)$", (h.headers.get("Range") or "").strip())
        if m:
            start, status = int(m.group(1)), 206
        sha = hashlib.sha256(data).hexdigest()
        send_file(h, data, start, status, body, self._stop, entry,
                  [("X-Repo-Commit", entry.commit), ("X-Linked-Etag", f'"{sha}"'), ("X-Linked-Size", str(len(data)))])
