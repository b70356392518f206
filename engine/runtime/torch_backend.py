"""Run a spandrel ``ImageModelDescriptor`` on numpy tiles (the tiler's ``fn``).

fp16 is used when the descriptor supports it and the device does it well (GPU only);
channels-last memory format on CUDA, where cuDNN's convolutions are faster with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelError
from . import device as devices


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
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(tile, dtype=np.float32)).to(self.device, self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.descriptor(x)
            return y.float().cpu().numpy()

    def release_memory(self) -> None:
        """Return cached GPU blocks to the driver (after an out-of-memory error)."""
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()
        elif self.device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()


def load_descriptor(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Load a model file into a spandrel ``ImageModelDescriptor`` safely.

    ``.safetensors`` loads without any code execution; ``.pth``/``.ckpt`` go through spandrel's
    restricted unpickler and ``.pt`` through ``torch.load(weights_only=True)`` (plain pickle and
    TorchScript are never used). Raises
    :class:`ModelError` with a one-line message when the file is missing, unsafe or not an
    architecture spandrel knows.
    """
    from spandrel import ImageModelDescriptor, ModelLoader

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    ext = p.suffix.lower()
    try:
        if ext in (".safetensors", ".pth", ".ckpt"):
            # spandrel: safetensors (no code runs) or its restricted unpickler for .pth
            descriptor = ModelLoader(device="cpu").load_from_file(p)
        elif ext == ".pt":
            # spandrel would try TorchScript first for .pt; load it as plain weights instead
            import torch
            from spandrel.__helpers.canonicalize import canonicalize_state_dict

            state = torch.load(str(p), map_location="cpu", weights_only=True)
            descriptor = ModelLoader(device="cpu").load_from_state_dict(canonicalize_state_dict(state))
        else:
            raise ModelError(f"{p.name}: unsupported model file type {ext!r} (use .safetensors or .pth)")
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - third-party loaders raise anything; report it in one line
        raise ModelError(f"{p.name}: could not load the model ({type(err).__name__}: {err})") from err
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"{p.name}: {descriptor.architecture.name} is not an image-to-image model")
    return descriptor.to(device)
