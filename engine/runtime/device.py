"""Which compute device to run on, whether it does fp16, and how much memory it has free.

Devices are named by the strings the CLI uses: ``"cpu"``, ``"cuda"``, ``"mps"``.
torch is imported lazily so that the classical-only engine works without it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

from ..errors import RestoraError
from ..optional import how_to_get_torch
from ..units import format_bytes

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")

#: Assumed free memory when the platform cannot tell us (bytes).
FALLBACK_FREE_BYTES = 2 * 1024**3


class DeviceUnavailableError(RestoraError):
    """The device the user asked for is not present or not usable here."""


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def cuda_available() -> bool:
    torch = _torch()
    return bool(torch is not None and torch.cuda.is_available())


def mps_available() -> bool:
    torch = _torch()
    backend = getattr(getattr(torch, "backends", None), "mps", None)
    return bool(backend is not None and backend.is_available())


def gpu_possible() -> bool:
    """Whether this machine might have a GPU torch could use, judged without importing torch
    (which takes seconds): False when torch is not installed, or on Linux and Windows when no
    NVIDIA or AMD (ROCm) driver is present; True otherwise (then torch is asked)."""
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform.startswith("linux"):
        return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd"))
    if sys.platform == "win32":
        system = Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32"
        return any((system / dll).exists() for dll in ("nvcuda.dll", "amdhip64.dll"))
    return True  # macOS (MPS) and other systems: only torch can tell


def choose_device(preference: str = "auto") -> str:
    """Resolve a device preference to ``"cuda" | "mps" | "cpu"``.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU. An explicit ``"cuda"`` or ``"mps"``
    that is not available raises :class:`DeviceUnavailableError` (a :class:`RestoraError`);
    an unknown name raises it too.
    """
    pref = (preference or "auto").strip().lower()
    if pref not in DEVICES:
        raise DeviceUnavailableError(f"unknown device {preference!r}; expected one of {', '.join(DEVICES)}")
    if pref == "auto":
        if not gpu_possible():  # no driver: the CPU, without the seconds torch's import takes
            return "cpu"
        if cuda_available():
            return "cuda"
        if mps_available():
            return "mps"
        return "cpu"
    if pref in ("cuda", "mps") and _torch() is None:
        raise DeviceUnavailableError(f"device {pref!r} needs the optional torch runtime, which is not "
                                     f"installed ({how_to_get_torch()}); or use --device cpu or auto")
    if pref == "cuda" and not cuda_available():
        raise DeviceUnavailableError("device 'cuda' was requested but no CUDA GPU is usable here "
                                     "(is a CUDA build of torch installed?); use --device cpu or auto")
    if pref == "mps" and not mps_available():
        raise DeviceUnavailableError("device 'mps' was requested but Apple Metal (MPS) is not available "
                                     "here; use --device cpu or auto")
    return pref


def supports_fp16(device: str) -> bool:
    """Whether half precision is worth using on ``device``: true on CUDA GPUs with compute
    capability >= 7 (tensor cores) and on MPS; false on the CPU (fp16 there is slow or unsupported)."""
    if device == "cuda" and cuda_available():
        major, _minor = _torch().cuda.get_device_capability()
        return major >= 7
    return device == "mps" and mps_available()


def free_memory(device: str) -> int:
    """Free memory in bytes usable for inference on ``device``.

    CUDA: ``torch.cuda.mem_get_info``. MPS: the recommended working-set size minus what torch
    has allocated. CPU: available physical pages from ``os.sysconf``; where the platform has no
    such query (Windows) :data:`FALLBACK_FREE_BYTES`.
    """
    if device == "cpu":
        return cpu_free_memory()  # without importing torch (seconds) for an answer it does not give
    torch = _torch()
    if device == "cuda" and cuda_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    if device == "mps" and mps_available():
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        allocated = getattr(torch.mps, "current_allocated_memory", None)
        if recommended is not None and allocated is not None:
            return max(int(recommended()) - int(allocated()), 0)
        return FALLBACK_FREE_BYTES
    return cpu_free_memory()


def meminfo_available() -> Optional[int]:
    """Linux's ``MemAvailable`` in bytes: free memory plus the page cache that can be dropped."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_free_memory() -> int:
    """Memory a new allocation can get without swapping, in bytes: ``MemAvailable`` where Linux
    tells it, else the free pages (``os.sysconf``), else :data:`FALLBACK_FREE_BYTES`. (Free pages
    alone shrink to almost nothing once the page cache fills the RAM, which made the automatic
    tile size, and so the output's last bits, depend on how many files had been read lately.)"""
    available = meminfo_available()
    if available:
        return available
    sysconf = getattr(os, "sysconf", None)
    if sysconf is None:
        return FALLBACK_FREE_BYTES
    try:
        pages = sysconf("SC_AVPHYS_PAGES")
        page_size = sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return FALLBACK_FREE_BYTES
    if pages <= 0 or page_size <= 0:
        return FALLBACK_FREE_BYTES
    return int(pages) * int(page_size)


def describe(device: str) -> str:
    """A short human label, e.g. ``"cuda (NVIDIA H100, 79.1 GiB)"`` or ``"cpu (2 cores)"``."""
    if device == "cuda" and cuda_available():
        torch = _torch()
        props = torch.cuda.get_device_properties(0)
        return f"cuda ({props.name}, {format_bytes(props.total_memory, binary=True)})"
    if device == "cpu":
        return f"cpu ({os.cpu_count() or 1} cores)"
    return device

