"""Run a spandrel ``ImageModelDescriptor`` on numpy tiles (the tiler's ``fn``).

fp16 is used when the descriptor supports it and the device does it well (GPU only);
channels-last memory format on CUDA, where cuDNN's convolutions are faster with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelError, one_line
from . import device as devices
from .tiling import TileOutOfMemory

#: The CPU allocator's message when an allocation fails (torch raises a plain RuntimeError).
_CPU_OOM = re.compile(r"DefaultCPUAllocator: (can't|not enough memory)|can't allocate memory", re.IGNORECASE)


def is_cpu_allocation_failure(error: BaseException) -> bool:
    """True for torch's CPU allocation failure ("DefaultCPUAllocator: can't allocate memory")."""
    return bool(_CPU_OOM.search(str(error)))



class TorchRunner:
    """Callable ``runner(tile)``: float32 NCHW numpy ``(1, C, h, w)`` in [0, 1] → float32 numpy
    ``(1, C', h*scale, w*scale)`` in [0, 1] (spandrel clamps), run under ``torch.inference_mode``.

    ``fp16``: ``None`` = automatic (descriptor supports half and the device does fp16 well).
    ``channels_last``: ``None`` = on CUDA only.
    """

    def __init__(self, descriptor: Any, device: str = "cpu", fp16: Optional[bool] = None,
                 channels_last: Optional[bool] = None) -> None:
        import torch

        self.descriptor = descriptor
        self.device = device
        self.fp16 = bool(descriptor.supports_half and devices.supports_fp16(device)) if fp16 is None else fp16
        self.channels_last = (device == "cuda") if channels_last is None else channels_last
        self.dtype = torch.float16 if self.fp16 else torch.float32
        descriptor.to(torch.device(device)).eval()
        descriptor.to(self.dtype)
        if self.channels_last:
            descriptor.model.to(memory_format=torch.channels_last)

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        """Run one tile. A GPU out-of-memory error (``torch.OutOfMemoryError``) propagates for the
        tiler to halve the tile; the CPU allocator's failure (a plain ``RuntimeError``) becomes
        :class:`TileOutOfMemory` for the same reason; any other failure is a :class:`ModelError`
        raised at once (retrying a broken model at smaller tiles cannot help)."""
        import torch

        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(tile, dtype=np.float32)).to(self.device, self.dtype)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = self.descriptor(x)
                return y.float().cpu().numpy()
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            if is_cpu_allocation_failure(err):
                raise TileOutOfMemory(f"out of memory on a {tile.shape[2]}x{tile.shape[3]} tile: "
                                      f"{one_line(err, 240)}") from err
            raise ModelError(f"{self.descriptor.architecture.name}: the model failed on a "
                             f"{tile.shape[2]}x{tile.shape[3]} tile ({one_line(err, 240)})") from err

    def release_memory(self) -> None:
        """Return cached GPU blocks to the driver (after an out-of-memory error)."""
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()
        elif self.device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()


def load_image_model(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Load a model file into a spandrel ``ImageModelDescriptor`` on ``device``.

    Reading is delegated to :func:`engine.weights.safe_load.load_descriptor` (safetensors, or
    ``torch.load(weights_only=True)`` for ``.pth``; never plain pickle or TorchScript). Raises
    :class:`ModelError` when the file is not an image-to-image model.
    """
    from spandrel import ImageModelDescriptor

    from ..weights.safe_load import load_descriptor

    descriptor = load_descriptor(Path(path))
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"{Path(path).name}: {descriptor.architecture.name} is not an image-to-image model")
    return descriptor.to(device)
