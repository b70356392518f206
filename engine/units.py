"""Quantities written for people: byte sizes (the one formatter the CLI, the window and the
error messages use)."""

from __future__ import annotations


def format_bytes(n: float, *, binary: bool = False) -> str:
    """``n`` bytes as ``"512 B"``, ``"64 kB"``, ``"0.5 MB"``, ``"63.9 MB"``, ``"8.0 GB"``: powers of
    1000 (disk and download sizes), or with ``binary`` powers of 1024 labelled ``KiB``/``MiB``/
    ``GiB`` (memory). Megabytes from a tenth of one up, gigabytes from one up."""
    base = 1024.0 if binary else 1000.0
    kilo, mega, giga = ("KiB", "MiB", "GiB") if binary else ("kB", "MB", "GB")
    n = float(n)
    if n < base:
        return f"{n:.0f} B"
    if n < 0.1 * base ** 2:
        return f"{n / base:.0f} {kilo}"
    if n < base ** 3:
        return f"{n / base ** 2:.1f} {mega}"
    return f"{n / base ** 3:.1f} {giga}"
