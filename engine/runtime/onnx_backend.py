"""Run an ONNX model with ONNX Runtime on numpy tiles (the tiler's ``fn``).

The model takes one float32 NCHW input with dynamic height and width and returns one float32
NCHW output. The CPU provider is always there; CUDA, DirectML and CoreML are used when the
installed onnxruntime build has them and the chosen device calls for them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelError, one_line
from .tiling import TileOutOfMemory

#: Accelerated providers to try per Restora device, best first (the CPU provider is appended).
GPU_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cuda": ("CUDAExecutionProvider", "DmlExecutionProvider"),
    "mps": ("CoreMLExecutionProvider",),
    "cpu": (),
}


def choose_providers(device: str, available: Optional[list[str]] = None) -> list[str]:
    """Execution providers for ``device`` among ``available`` (default: the installed build's),
    always ending with ``CPUExecutionProvider``."""
    if available is None:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    chosen = [p for p in GPU_PROVIDERS.get(device, ()) if p in available]
    return chosen + ["CPUExecutionProvider"]


def runtime_error_types() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's exception types raised while running a session: every class its pybind
    layer defines (``Fail``, ``RuntimeException``, ``InvalidArgument``, ``NotImplemented``...;
    none of them derives from ``RuntimeError``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = (getattr(state, n) for n in dir(state))
    return tuple(t for t in found if isinstance(t, type) and issubclass(t, Exception))


#: What ONNX Runtime says when an allocation fails (it has no out-of-memory exception type):
#: the CPU and CUDA arenas ("Failed to allocate memory for requested buffer of size N",
#: "BFCArena::AllocateRawInternal ... Available memory of N is smaller than requested bytes
#: of M"), CUDA itself ("CUDA failure 2: out of memory", cudaErrorMemoryAllocation, cuDNN/
#: cuBLAS allocation statuses) and the C++ runtime (std::bad_alloc).
_ORT_OOM = re.compile(r"failed to allocate memory|available memory of \d+ is smaller than|"
                      r"out of memory|cudaErrorMemoryAllocation|CUDNN_STATUS_ALLOC_FAILED|"
                      r"CUBLAS_STATUS_ALLOC_FAILED|bad_alloc|bad allocation", re.IGNORECASE)


def is_allocation_failure(error: BaseException) -> bool:
    """True when an ONNX Runtime error reports a failed memory allocation (retrying with a
    smaller tile may help); False for every other failure (a broken model, a wrong shape)."""
    return isinstance(error, MemoryError) or bool(_ORT_OOM.search(str(error)))


#: Name of the optional second input of a conditioned model: float32 N x 6, the strength in
#: [0, 1] of each degradation kind to remove (``engine.kinds.KINDS`` order).
STRENGTHS_INPUT = "strengths"


class OnnxRunner:
    """Callable ``runner(tile)``: float32 NCHW ``(1, C, h, w)`` → float32 NCHW output.

    A model may take a second input named :data:`STRENGTHS_INPUT` (a conditioned generalist);
    then ``conditioned`` is true and each call must pass ``strengths`` (length-6 vector).

    A failed allocation while running a tile is re-raised as :class:`TileOutOfMemory`, which
    makes the tiler halve the tile and retry (see :func:`is_allocation_failure`); any other ORT
    error (a broken or unsuitable model) is raised at once as a :class:`ModelError` naming the
    model, never retried.
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: Optional[int] = None) -> None:
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session: Any = ort.InferenceSession(str(p), sess_options=options,
                                                     providers=choose_providers(device))
        except Exception as err:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
            raise ModelError(f"{p.name}: could not open the ONNX model ({type(err).__name__}: {err})") from err
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        extra = [n for n in names[1:] if n != STRENGTHS_INPUT]
        if not inputs or extra:
            raise ModelError(f"{p.name}: expected one image input (and optionally '{STRENGTHS_INPUT}'), "
                             f"the model has {names}")
        self.name = p.name
        self.input_name = inputs[0].name
        self.conditioned = STRENGTHS_INPUT in names[1:]
        self.providers = list(self.session.get_providers())
        self._errors = runtime_error_types()

    def __call__(self, tile: np.ndarray, strengths: Optional[np.ndarray] = None) -> np.ndarray:
        x = np.ascontiguousarray(tile, dtype=np.float32)
        feed = {self.input_name: x}
        if self.conditioned:
            if strengths is None:
                raise ModelError("this model is conditioned on per-kind strengths; none were given")
            feed[STRENGTHS_INPUT] = np.repeat(np.asarray(strengths, np.float32).reshape(1, -1), x.shape[0], axis=0)
        try:
            (y, *_rest) = self.session.run(None, feed)
        except self._errors as err:
            if is_allocation_failure(err):
                raise TileOutOfMemory(f"ONNX Runtime ran out of memory on a {x.shape[2]}x{x.shape[3]} tile: "
                                      f"{one_line(err, 240)}") from err
            raise ModelError(f"{self.name}: ONNX Runtime failed on a {x.shape[2]}x{x.shape[3]} tile "
                             f"({one_line(err, 240, with_type=True)})") from err
        return np.asarray(y, dtype=np.float32)

