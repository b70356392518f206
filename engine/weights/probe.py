"""Probe a model file on a small test image before it is accepted: is it an image→image model?

``models import`` runs every file through :func:`probe_onnx` or :func:`probe_descriptor`, so a
file that loads but is not an image restorer — an ONNX ``Identity`` on ``float[3]``, a net
that turns a colour photo into one channel, one that returns NaN — is refused at import with
one line, instead of failing (or writing nonsense) in every later restore.

A model passes when, given a random ``1×C×h×w`` image (C = its input channels, 1 or 3; h, w =
its fixed size or 64), it returns a finite ``1×C×(h·s)×(w·s)`` array for one integer scale s
in 1..8.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, one_line

#: Edge of the test image for models with dynamic height and width, pixels.
PROBE_SIZE = 64
MAX_SCALE = 8


@dataclass(frozen=True)
class ProbeResult:
    """What the test run showed: ``channels`` in and out (equal), ``scale`` = output/input size,
    ``conditioned``: the model takes per-kind strengths as a second input."""

    channels: int
    scale: int
    conditioned: bool = False


def probe_onnx(path: Path) -> ProbeResult:
    """Run an ONNX model once on a small random image (ONNX Runtime, CPU, one thread)."""
    from ..runtime.onnx_backend import OnnxRunner
    from ..kinds import KINDS

    path = Path(path)
    runner = OnnxRunner(path, device="cpu", threads=1)
    (inp,) = [i for i in runner.session.get_inputs() if i.name == runner.input_name]
    shape = list(inp.shape)
    if len(shape) != 4 or "float" not in str(inp.type):
        raise ModelError(f"cannot import {path.name}: it is not an image-to-image model (its input is "
                         f"{inp.type} {_dims(shape)}, expected float N×C×H×W)")
    channels = shape[1] if isinstance(shape[1], int) else 3
    h = shape[2] if isinstance(shape[2], int) else PROBE_SIZE
    w = shape[3] if isinstance(shape[3], int) else PROBE_SIZE
    if channels not in (1, 3):
        raise ModelError(f"cannot import {path.name}: it takes {channels}-channel images; Restora runs "
                         "1-channel (grey) and 3-channel (colour) models")
    x = np.random.default_rng(0).random((1, channels, h, w), dtype=np.float32)
    strengths = np.full(len(KINDS), 0.5, np.float32) if runner.conditioned else None
    try:
        y = runner(x, strengths) if runner.conditioned else runner(x)
    except Exception as err:  # noqa: BLE001 - any failure on a plain image means: not usable
        raise ModelError(f"cannot import {path.name}: it fails on a {h}x{w} test image "
                         f"({one_line(err)})") from None
    return replace(_check_output(path.name, np.asarray(y), channels, h, w), conditioned=bool(runner.conditioned))


def probe_descriptor(descriptor: Any, name: str) -> ProbeResult:
    """Check a spandrel descriptor's channels and run it once on a small random image (torch,
    CPU). Face models (which need a 512 px aligned face) are checked by their channels only."""
    from spandrel import ImageModelDescriptor

    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"cannot import {name}: {descriptor.architecture.name} is not an image-to-image model")
    cin, cout = int(descriptor.input_channels), int(descriptor.output_channels)
    if cin not in (1, 3) or cout != cin:
        raise ModelError(f"cannot import {name}: it turns {cin}-channel images into {cout}-channel ones; "
                         "Restora needs a model whose output has the channels of its input (1 or 3)")
    scale = int(descriptor.scale)
    if "face" in str(descriptor.purpose).lower():
        return ProbeResult(cin, scale)
    import torch

    from ..runtime.torch_backend import TorchRunner

    req = descriptor.size_requirements
    multiple = max(int(req.multiple_of), 1)
    side = max(int(req.minimum), 32)
    side = -(-side // multiple) * multiple
    x = np.random.default_rng(0).random((1, cin, side, side), dtype=np.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y = TorchRunner(descriptor, device="cpu", fp16=False, channels_last=False)(x)
    except Exception as err:  # noqa: BLE001 - any failure on a plain image means: not usable
        raise ModelError(f"cannot import {name}: it fails on a {side}x{side} test image ({one_line(err)})") from None
    finally:
        torch.set_num_threads(threads)
    return _check_output(name, np.asarray(y), cin, side, side)


def _check_output(name: str, y: np.ndarray, channels: int, h: int, w: int) -> ProbeResult:
    if y.ndim != 4 or y.shape[0] != 1:
        raise ModelError(f"cannot import {name}: it is not an image-to-image model (a {h}x{w} image gave "
                         f"an output of shape {tuple(y.shape)})")
    if y.shape[1] != channels:
        raise ModelError(f"cannot import {name}: it turns {channels}-channel images into {y.shape[1]}-channel "
                         "ones; Restora needs a model whose output has the channels of its input")
    scale = y.shape[2] // h
    if scale < 1 or scale > MAX_SCALE or y.shape[2] != h * scale or y.shape[3] != w * scale:
        raise ModelError(f"cannot import {name}: a {h}x{w} image came out {y.shape[2]}x{y.shape[3]}, "
                         f"not an integer upscale (1x to {MAX_SCALE}x) of it")
    if not np.isfinite(y).all():
        raise ModelError(f"cannot import {name}: it returns NaN or infinite values on a test image")
    return ProbeResult(channels, int(scale))


def _dims(shape: list) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"

