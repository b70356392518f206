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

from ..errors import Cancelled, ModelError, one_line
from ..progress import current_cancel
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


#: ``RESTORA_THREADS``: intra-op threads for every network (ONNX Runtime and torch); unset: see
#: :func:`default_threads`.
THREADS_VARIABLE = "RESTORA_THREADS"


def default_threads() -> int:
    """Intra-op threads a network runs with when the caller does not say: ``$RESTORA_THREADS``
    when set, else one per CPU this process may use (at most 8).

    Measured on a shared 2-core machine (``benchmarks/results/threads.md``): with other programs
    holding the cores, neither one nor two threads won consistently (one run each way, within
    the load's noise); a batch that runs several photos at once (``--cluster`` workers) should
    give each one thread (``RESTORA_THREADS=1`` or ``--worker-cpus``)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def session_options(threads: Optional[int] = None, spinning: bool = False) -> Any:
    """ONNX Runtime session options for Restora's networks: ``threads`` intra-op threads
    (``None``: :func:`default_threads`), one inter-op thread, full graph optimisation, and
    thread spinning off by default: spinning workers busy-wait between operators, CPU that other
    programs on a shared machine could use (measured: the same or less CPU per call without it,
    and no slower)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads) if threads else default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return options


def open_session(path: str | os.PathLike[str], device: str = "cpu", threads: Optional[int] = None) -> Any:
    """An ONNX Runtime session for the model file ``path`` on ``device``'s providers with
    :func:`session_options`; a file it cannot open raises :class:`ModelError` (one line)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads),
                                    providers=choose_providers(device))
    except Exception as err:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
        raise ModelError(f"{Path(path).name}: could not open the ONNX model "
                         f"({one_line(err, 240, with_type=True)})") from err


def runtime_error_types() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's exception types raised while running a session: every class its pybind
    layer defines (``Fail``, ``RuntimeException``, ``InvalidArgument``, ``NotImplemented``...;
    none of them derives from ``RuntimeError``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = (getattr(state, n) for n in dir(state))
    return tuple(t for t in found if isinstance(t, type) and issubclass(t, Exception))


def run_session(session: Any, outputs: Optional[list[str]], feed: dict) -> list:
    """``session.run(outputs, feed)``, stopped mid-run (raising :class:`Cancelled`) when the
    token of this thread's :func:`engine.progress.cancel_scope` is cancelled meanwhile: ONNX
    Runtime's ``RunOptions.terminate``, set from the cancelling thread."""
    token = current_cancel()
    if token is None:
        return session.run(outputs, feed)
    import onnxruntime as ort

    options = ort.RunOptions()
    with token.on_cancel(lambda: setattr(options, "terminate", True)):
        try:
            return session.run(outputs, feed, options)
        except Exception:
            if token.cancelled:
                raise Cancelled("cancelled") from None
            raise


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
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        self.session: Any = open_session(p, device, threads)
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
            vectors = np.asarray(strengths, np.float32)
            vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors  # one per batch item, or shared
            feed[STRENGTHS_INPUT] = vectors if len(vectors) == x.shape[0] else np.repeat(vectors[:1], x.shape[0], 0)
        try:
            (y, *_rest) = run_session(self.session, None, feed)
        except self._errors as err:
            if is_allocation_failure(err):
                raise TileOutOfMemory(f"ONNX Runtime ran out of memory on a {x.shape[2]}x{x.shape[3]} tile: "
                                      f"{one_line(err, 240)}") from err
            raise ModelError(f"{self.name}: ONNX Runtime failed on a {x.shape[2]}x{x.shape[3]} tile "
                             f"({one_line(err, 240, with_type=True)})") from err
        return np.asarray(y, dtype=np.float32)

