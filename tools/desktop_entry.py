"""Regenerate the ``MimeType`` line of ``resources/restora.desktop`` from the engine's table of
readable extensions (``engine.imageio.formats.MIME_TYPES``), so the desktop entry offers every
file type the loader reads and nothing else.

Usage: ``python tools/desktop_entry.py`` (rewrites the file) or ``--check`` (exit 1 if stale).
"""

from __future__ import annotations

import sys
from pathlib import Path

DESKTOP_FILE = Path(__file__).resolve().parents[1] / "resources" / "restora.desktop"


def mime_line() -> str:
    from engine.imageio.formats import MIME_TYPES, SUPPORTED_EXTENSIONS

    types = sorted({MIME_TYPES[e] for e in SUPPORTED_EXTENSIONS})
    return "MimeType=" + ";".join(types) + ";"


def render(text: str) -> str:
    lines = [mime_line() if line.startswith("MimeType=") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    current = DESKTOP_FILE.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in argv:
        return 0 if current == wanted else 1
    DESKTOP_FILE.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
