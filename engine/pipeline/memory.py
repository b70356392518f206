"""Will a photo fit in memory? Estimated from its header and the plan, before the work starts.

A batch must refuse a photo it cannot restore with a clear line, early, instead of swapping for
minutes until the system kills it. The estimate counts what the pipeline holds for the whole
photo (the decoded samples, the float pixels, the cached change of every stage and of every kind
a conditioned generalist was told, the composed result, the upscaled output); networks and
classical experts work in tiles whose size already adapts to the free memory.

Calibration (``benchmarks/memory_budget.py``, results in ``benchmarks/results/memory_budget.md``:
peak ``ru_maxrss`` above the loaded process for 512² and 1024² PNGs, one thread, two runs on a
loaded machine): the automatic plan (bundled generalist) grew by 115–221 bytes per input pixel,
five classical stages by 253–412. :data:`DECODE_BYTES_PER_PIXEL` + :data:`BASE_BYTES_PER_PIXEL`
+ :data:`STAGE_BYTES_PER_PIXEL` per cached change gives 402 and 414 bytes for those plans: at or
above the largest slope measured (the estimate used to sit in the middle of the range, 252 and
264, and so under-estimated the worst run by a third). The check is meant to refuse photos that
clearly cannot fit, not to predict the peak exactly; ``tests/test_perf.py`` holds it to the
measured maxima.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..errors import NotEnoughMemoryError
from ..runtime.device import meminfo_available
from ..units import format_bytes

#: Decoding: up to 8 bytes of integer samples (16-bit RGBA) plus the float32 RGB pixels and alpha.
DECODE_BYTES_PER_PIXEL = 24.0
#: What a session holds per pixel with no stage at all (input, analysis, composition, saving).
BASE_BYTES_PER_PIXEL = 330.0
#: Each cached float32 RGB change (a stage's delta or a kind's share of the generalist's).
STAGE_BYTES_PER_PIXEL = 12.0
#: Per output pixel of an upscale (its float32 result, the tile buffers, the quantised copy).
UPSCALE_BYTES_PER_OUTPUT_PIXEL = 40.0
#: Share of the free memory a photo may plan to use (the rest is left for the system).
USABLE_FRACTION = 0.9
#: ``RESTORA_MEMORY_BUDGET`` overrides the free-memory probe: bytes, or with a K/M/G suffix.
BUDGET_VARIABLE = "RESTORA_MEMORY_BUDGET"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"2G"`` → 2·2³⁰ bytes (K, M, G, T suffixes are powers of 1024); raises ValueError."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (expected bytes or a number with K, M or G)")
    return int(float(match.group(1)) * 1024 ** "bkmgt".index((match.group(2) or "b").lower()))


def _cgroup_room() -> Optional[int]:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _rlimit_room() -> Optional[int]:
    try:
        import resource
    except ImportError:
        return None
    rooms = []
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and soft > 0:
            rooms.append(soft)
    return min(rooms) if rooms else None


def memory_budget() -> Optional[int]:
    """Bytes one photo may plan to use: :data:`BUDGET_VARIABLE` when set, else
    :data:`USABLE_FRACTION` of the smallest of the system's available memory, the cgroup's
    room and the process limits. ``None`` when nothing can be measured (no check then)."""
    override = os.environ.get(BUDGET_VARIABLE)
    if override:
        return parse_size(override)
    rooms = [r for r in (meminfo_available(), _cgroup_room(), _rlimit_room()) if r is not None]
    return int(min(rooms) * USABLE_FRACTION) if rooms else None


def estimate_bytes(width: int, height: int, *, cached_changes: int = 0, scale: int = 1,
                   change_budget: Optional[int] = None) -> int:
    """Peak bytes to restore a ``width`` x ``height`` photo whose plan caches ``cached_changes``
    float changes (stages plus told kinds), upscaled by ``scale``. ``change_budget``: bytes of
    changes kept in memory when the rest goes to disk (a one-shot restoration,
    :class:`engine.pipeline.spill.ChangeStore`); ``None``: all are in memory."""
    pixels = int(width) * int(height)
    changes = STAGE_BYTES_PER_PIXEL * max(cached_changes, 0) * pixels
    if change_budget is not None:
        changes = min(changes, float(change_budget))
    per_pixel = DECODE_BYTES_PER_PIXEL + BASE_BYTES_PER_PIXEL
    upscale = UPSCALE_BYTES_PER_OUTPUT_PIXEL * pixels * scale * scale if scale != 1 else 0.0
    return int(pixels * per_pixel + changes + upscale)




def check_fits(source: Path, width: int, height: int, *, cached_changes: int = 0, scale: int = 1,
               budget: Optional[int] = None, change_budget: Optional[int] = None) -> None:
    """Raise :class:`NotEnoughMemoryError` (one line naming the file, the need and the room)
    when :func:`estimate_bytes` exceeds ``budget`` (default: :func:`memory_budget`)."""
    budget = memory_budget() if budget is None else budget
    if budget is None:
        return
    need = estimate_bytes(width, height, cached_changes=cached_changes, scale=scale, change_budget=change_budget)
    if need > budget:
        raise NotEnoughMemoryError(
            f"{source}: {width}x{height} needs about {format_bytes(need, binary=True)} of memory to restore"
            f"{f' at {scale}x' if scale != 1 else ''}, but only {format_bytes(budget, binary=True)} is free; "
            f"reduce its size or free memory, then try again")
