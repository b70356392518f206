"""Will a photo fit in memory? Estimated from its header and the plan, before the work starts.

A batch must refuse a photo it cannot restore with a clear line, early, instead of swapping for
minutes until the system kills it, and must not refuse one that fits. The estimate is built from
measured parts (``benchmarks/expert_memory.py`` → ``benchmarks/results/expert-memory.md`` for
each expert and the analysis; ``benchmarks/memory_scaling.py`` → ``memory-scaling.md`` for the
whole CLI, predicted against measured):

* a fixed part: the process, its libraries and the analysis network (:data:`PROCESS_BYTES`);
* the largest of the phases a restoration goes through, per input pixel: decoding
  (:data:`DECODE_BYTES_PER_PIXEL`), analysing (the input plus :data:`ANALYSIS_BYTES_PER_PIXEL`),
  each stage (the input, the stage's own input when stages ran before, the expert's measured
  share :data:`EXPERT_MEMORY`, the changes kept in memory; a stage run in place holds one
  full-size array less), the analysis of each stage's output, and saving
  (:data:`SAVE_BYTES_PER_PIXEL`);
* an upscale's output (:data:`UPSCALE_BYTES_PER_OUTPUT_PIXEL`).

Networks are counted with 512-pixel tiles: their tile is chosen from the memory still free when
they run (:class:`engine.runtime.tiling.AutoTiles` takes at most half of it), so it adapts to
what is left rather than deciding whether the photo fits. An expert that was not measured counts
as the most expensive one measured (:data:`UNMEASURED_EXPERT`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Collection, Optional, Sequence

from ..errors import NotEnoughMemoryError
from ..runtime.device import meminfo_available
from ..units import format_bytes
from .spill import in_place_past_budget

#: The process before any photo: Python, NumPy/OpenCV/ONNX Runtime, the analysis network and
#: what the allocator keeps (measured: 0.10 GB before decoding, 0.3 GB beside the arrays at the
#: peak of a 12 MP restoration; memory-scaling.md).
PROCESS_BYTES = 300e6
#: Decoding: the float32 pixels (12) and the decoded samples (3 for 8-bit RGB, 6 for 16-bit). 8-bit
#: Pillow samples are released as they are converted (about 12 B/px at 48 MP, memory-scaling.md),
#: and so are 16-bit ones once copied out of OpenCV's own array (a 16-bit RGBA PNG: its samples and
#: their copy, 8 + 8, then the samples' rows given back as the float pixels and alpha grow): 18
#: keeps a margin above every decoder.
DECODE_BYTES_PER_PIXEL = 18.0
#: The float32 input, and every other full-size float32 RGB array (a stage's output, a change).
FLOAT_BYTES_PER_PIXEL = 12.0
#: What the default analysis of a whole photo adds per pixel (expert-memory.md, "analysis": 55 MB
#: at 1.5 MP, 47 MB at 4 MP; it works on reduced copies, its network is in :data:`PROCESS_BYTES`).
ANALYSIS_BYTES_PER_PIXEL = 2.0
#: Saving: the composed float32 result while it is quantised (a one-shot save releases it as it
#: goes), then the 8/16-bit samples and the encoder's copy (16-bit RGBA: 8 + 8).
SAVE_BYTES_PER_PIXEL = 17.0
#: Each cached float32 RGB change (a stage's delta or a kind's share of the generalist's).
STAGE_BYTES_PER_PIXEL = FLOAT_BYTES_PER_PIXEL
#: What each expert's ``run`` adds above its input, ``(fixed bytes, bytes per input pixel)``:
#: its model, tile buffers, full-size arrays and output (expert-memory.md: a line through two
#: sizes; networks with 512-pixel tiles; a negative intercept counts as 0).
EXPERT_MEMORY: dict[str, tuple[float, float]] = {
    "classical.deblur.wiener": (50e6, 11.9),
    "classical.dehaze.dcp": (12e6, 35.2),
    "classical.lowlight.lime": (0.0, 78.4),  # intercept -5 MB, counted as 0
    "classical.derain.streak_median": (5e6, 60.1),
    "classical.jpeg.dct_qcs": (0.0, 18.4),  # intercept -10 MB, counted as 0
    # FFDNet streamed (issue 14): its output (12; none when it runs in place), the chroma pass'
    # quarter-size copy (3) and bands; 75.4 B/px when measured before (whole-array chroma pass).
    # Set from the noise plan's CLI peaks in memory-scaling.md (12 MP beside its input: 0.76 GB
    # measured, 0.82 predicted; 48 MP in place: 1.22 measured, 1.40 predicted); not re-measured
    # by expert_memory.py.
    "neural.ffdnet-color": (136e6, 20.0),
    # The JPEG restorer and the plug-and-play deblurrer run FFDNet tile by tile; counted as its
    # whole-array cost before issue 14 (on the synthetic photo of expert_memory.py the restorer had
    # no file tables and the deblurrer found no blur, so their own runs did not show theirs).
    "jpeg.qcp.neural.ffdnet-color": (136e6, 75.4),
    "deblur.pnp.neural.ffdnet-color": (136e6, 75.4),
    "neural.restora-generalist-v2": (212e6, 93.7),
    "neural.iat-lol-v1": (303e6, 74.0),
    "neural.iat-exposure": (303e6, 74.0),
    "lowlight.adaptive": (403e6, 196.5),
    "classical.denoise.dct": (130e6, 20.9),
}
#: An expert with no measurement: the largest fixed part and the largest bytes per pixel measured.
UNMEASURED_EXPERT = (max(f for f, _ in EXPERT_MEMORY.values()), max(b for _, b in EXPERT_MEMORY.values()))
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


def expert_cost(expert_id: str, pixels: int) -> float:
    """Bytes ``expert_id``'s run adds for a photo of ``pixels`` input pixels (:data:`EXPERT_MEMORY`,
    else :data:`UNMEASURED_EXPERT`)."""
    fixed, per_pixel = EXPERT_MEMORY.get(expert_id, UNMEASURED_EXPERT)
    return fixed + per_pixel * pixels


def estimate_bytes(width: int, height: int, *, cached_changes: int = 0, scale: int = 1,
                   change_budget: Optional[int] = None, experts: Sequence[str] = (),
                   in_place: Collection[str] = ()) -> int:
    """Peak bytes to restore a ``width`` x ``height`` photo (see the module docs for the model).

    ``experts``: the plan's stages' expert ids, in order (none: decoding, analysing and saving
    only, what any plan needs). ``cached_changes``: float changes the plan caches (stages plus
    told kinds). ``change_budget``: bytes of changes kept in memory when the rest goes to disk
    (a one-shot restoration, :class:`engine.pipeline.spill.ChangeStore`); ``None``: all in
    memory. ``in_place``: ids of experts that write over their input in a one-shot restoration
    (``run_in_place``), which they do where their input and change do not fit ``change_budget``
    (:func:`engine.pipeline.spill.in_place_past_budget`).
    ``scale``: the upscale factor."""
    pixels = int(width) * int(height)
    full = FLOAT_BYTES_PER_PIXEL * pixels
    change = STAGE_BYTES_PER_PIXEL * pixels
    phases = [DECODE_BYTES_PER_PIXEL * pixels, full + ANALYSIS_BYTES_PER_PIXEL * pixels,
              SAVE_BYTES_PER_PIXEL * pixels]
    if not experts and cached_changes > 0:  # changes without named experts (a caller that counts changes only)
        kept = change * max(cached_changes, 0)
        phases.append(full * 2 + (kept if change_budget is None else min(kept, float(change_budget))))
    per_stage = max(cached_changes, len(experts)) / max(len(experts), 1)
    in_memory = 0.0  # what the change store holds: each change while it fits the budget, else on disk
    for k, expert_id in enumerate(experts):
        overwrites = (expert_id in in_place and change_budget is not None
                      and in_place_past_budget(in_memory, full, change_budget))
        held = full + (full if k > 0 else 0.0)  # the input; the stage's own input when stages ran before
        phases.append(held + expert_cost(expert_id, pixels) - (full if overwrites else 0.0) + in_memory)
        for _ in range(int(round(per_stage))):
            if change_budget is None or in_memory + change <= change_budget:
                in_memory += change
        # its output analysed, with the changes so far; the expert's model and tile buffers stay
        # allocated (ONNX Runtime keeps its arena): a 24 MP noise stage in place peaks here, with
        # its change in memory (memory-scaling.md, third pass)
        fixed = EXPERT_MEMORY.get(expert_id, UNMEASURED_EXPERT)[0]
        phases.append(held + (0.0 if overwrites else full) + ANALYSIS_BYTES_PER_PIXEL * pixels + in_memory + fixed)
    upscale = UPSCALE_BYTES_PER_OUTPUT_PIXEL * pixels * scale * scale if scale != 1 else 0.0
    return int(PROCESS_BYTES + max(phases) + upscale)


def check_fits(source: Path, width: int, height: int, *, cached_changes: int = 0, scale: int = 1,
               budget: Optional[int] = None, change_budget: Optional[int] = None, experts: Sequence[str] = (),
               in_place: Collection[str] = ()) -> None:
    """Raise :class:`NotEnoughMemoryError` (one line naming the file, the need and the room)
    when :func:`estimate_bytes` exceeds ``budget`` (default: :func:`memory_budget`)."""
    budget = memory_budget() if budget is None else budget
    if budget is None:
        return
    need = estimate_bytes(width, height, cached_changes=cached_changes, scale=scale, change_budget=change_budget,
                          experts=experts, in_place=in_place)
    if need > budget:
        raise NotEnoughMemoryError(
            f"{source}: {width}x{height} needs about {format_bytes(need, binary=True)} of memory to restore"
            f"{f' at {scale}x' if scale != 1 else ''}, but only {format_bytes(budget, binary=True)} is free; "
            f"reduce its size or free memory, then try again")
