"""Which files a batch processes and where each one's output goes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional


@dataclass(frozen=True)
class BatchItem:
    """``path``: the input file; ``relative``: its path relative to the folder it was found in
    (just its name when it was given directly)."""

    path: Path
    relative: Path


def collect_inputs(paths: Iterable[os.PathLike | str], is_supported) -> tuple[list[BatchItem], list[str]]:
    """Expand files and folders (recursively, sorted) into batch items.

    Files given explicitly are kept even if their extension is unknown (loading will report
    them); inside folders only files for which ``is_supported(path)`` is true are taken, and
    hidden files/folders are skipped. Returns ``(items, problems)`` where problems are
    one-line messages for inputs that do not exist.
    """
    items: list[BatchItem] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    f = Path(root) / name
                    if name.startswith(".") or not is_supported(f):
                        continue
                    if f.resolve() not in seen:
                        seen.add(f.resolve())
                        items.append(BatchItem(f, f.relative_to(p)))
        elif p.exists():
            if p.resolve() not in seen:
                seen.add(p.resolve())
                items.append(BatchItem(p, Path(p.name)))
        else:
            problems.append(f"{p}: no such file or folder")
    return items, problems


def output_path_for(item: BatchItem, outdir: Path, extension: str) -> Path:
    """``OUTDIR/<relative path of input>/<stem><extension>`` (extension with its dot)."""
    return outdir / item.relative.parent / (item.relative.stem + extension)


def is_same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def find_output_collision(target: Path, claimed: dict[Path, Path]) -> Optional[Path]:
    """The input that already claimed ``target`` in this batch, if any."""
    return claimed.get(target.resolve())
