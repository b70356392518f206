"""Safe reading of model files: tensors only, never arbitrary Python objects.

* ``.safetensors`` — read with safetensors (no code can run).
* ``.pth`` / ``.pt`` / ``.ckpt`` — ``torch.load(weights_only=True)``: torch's restricted unpickler
  that only rebuilds tensors and plain containers; a pickle that names any other global (the
  ``__reduce__`` trick) is refused *before* anything runs. Never plain ``pickle``, never
  TorchScript.
* ``.onnx`` — parsed and checked with ``onnx.checker``; ONNX graphs hold no Python code.

torch, spandrel and onnx are imported inside the functions so that importing this module
stays cheap.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import ModelError, one_line
from ..optional import require_torch_runtime

if TYPE_CHECKING:  # pragma: no cover
    import torch

PathLike = Union[str, Path]

#: Suffixes read as torch pickles through the restricted unpickler.
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
ONNX_SUFFIXES = (".onnx",)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Lowercase hex SHA-256 of a file, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class IdentifiedModel:
    """What spandrel recognised in a state dict.

    ``architecture``: spandrel's architecture id (e.g. ``"ESRGAN"``). ``scale``: output/input
    size. ``size_multiple``: inputs must be padded to a multiple of this; ``min_size``: smallest
    side in pixels. ``purpose``: spandrel's purpose (``"SR"``, ``"Restoration"``, ``"FaceSR"``…).
    """

    architecture: str
    scale: int
    input_channels: int
    output_channels: int
    purpose: str
    size_multiple: int
    min_size: int
    supports_half: bool
    parameters: int


@dataclass(frozen=True)
class OnnxInfo:
    """Inputs and outputs of a checked ONNX graph: ``(name, shape)`` with ``None`` for dynamic axes."""

    inputs: tuple[tuple[str, tuple[Any, ...]], ...]
    outputs: tuple[tuple[str, tuple[Any, ...]], ...]
    opset: int


def load_state_dict(path: PathLike) -> "dict[str, torch.Tensor]":
    """Read a ``.safetensors`` or ``.pth``-family file into a canonical ``{name: tensor}`` dict (CPU).

    Wrappers such as ``{"params_ema": {...}}`` and ``module.`` prefixes are removed the way
    spandrel does it. Raises :class:`ModelError` for unreadable files, unsupported suffixes and
    pickles that contain anything other than tensors and plain containers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    require_torch_runtime(f"model file {path.name}")
    if suffix in SAFETENSORS_SUFFIXES:
        state = _load_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        state = _load_pickle_weights_only(path)
    else:
        raise ModelError(f"{path.name}: unsupported model file type {suffix or '(none)'}; "
                         "use .safetensors, .pth or .onnx")
    from spandrel import canonicalize_state_dict

    if not isinstance(state, dict):
        raise ModelError(f"{path.name} does not contain a state dict (found {type(state).__name__})")
    state = canonicalize_state_dict(state)
    tensors = _only_tensors(state)
    if not tensors:
        raise ModelError(f"{path.name} contains no weight tensors")
    return tensors


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path.name} is not a valid safetensors file ({one_line(e)})") from None


def _load_pickle_weights_only(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelError(f"refusing to load {path.name}: {_unpickling_reason(e)}; the file will not be "
                         "loaded (a weights file holds only tensors, and Restora never runs code from one)") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError, KeyError) as e:
        raise ModelError(f"{path.name} is not a readable PyTorch weights file ({one_line(e)})") from None


def _unpickling_reason(error: BaseException) -> str:
    """Which call torch's restricted unpickler blocked (or what else it refused), without torch's
    boilerplate — in particular never its advice to load with ``weights_only=False``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    forbidden = (re.search(r"unsupported GLOBAL ([\w.]+)", text, re.I)
                 or re.search(r"GLOBAL ([\w.]+) was not an allowed global", text))
    if forbidden:
        return (f"it would call {forbidden.group(1)}, and the safe loader (torch.load with "
                "weights_only=True) blocked that call")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    useful = [p for p in paragraphs if "weights_only" not in p and not p.startswith("Check the documentation")]
    detail = re.sub(r"^WeightsUnpickler error:\s*", "", useful[0]) if useful else "unexpected pickle content"
    return f"the safe loader (torch.load with weights_only=True) refused it: {one_line(ValueError(detail))}"


def _only_tensors(state: dict) -> "dict[str, torch.Tensor]":
    import torch

    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def identify(path: PathLike) -> IdentifiedModel:
    """Load ``path`` safely and let spandrel recognise its architecture.

    Raises :class:`ModelError` naming the file when spandrel does not know the architecture.
    """
    descriptor = load_descriptor(path)
    return describe(descriptor)


def load_descriptor(path: PathLike, device: str = "cpu") -> Any:
    """A spandrel ``ModelDescriptor`` for ``path`` (weights read by :func:`load_state_dict`)."""
    require_torch_runtime(f"model file {Path(path).name}")
    from spandrel import MAIN_REGISTRY, UnsupportedModelError

    path = Path(path)
    state = load_state_dict(path)
    try:
        descriptor = MAIN_REGISTRY.load(state)
    except UnsupportedModelError:
        raise ModelError(f"{path.name}: unknown architecture; spandrel does not recognise these weights "
                         "(Restora can only import models whose architecture spandrel supports)") from None
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AssertionError) as e:
        raise ModelError(f"{path.name}: the weights look like a known architecture but do not load "
                         f"({one_line(e)})") from None
    return descriptor.to(device) if device != "cpu" else descriptor


def describe(descriptor: Any) -> IdentifiedModel:
    """Summarise a spandrel ``ModelDescriptor`` as an :class:`IdentifiedModel`."""
    req = descriptor.size_requirements
    return IdentifiedModel(
        architecture=str(descriptor.architecture.id),
        scale=int(descriptor.scale),
        input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels),
        purpose=str(descriptor.purpose),
        size_multiple=int(req.multiple_of),
        min_size=int(req.minimum),
        supports_half=bool(descriptor.supports_half),
        parameters=int(sum(p.numel() for p in descriptor.model.parameters())),
    )


def check_onnx(path: PathLike) -> OnnxInfo:
    """Parse and validate an ONNX file with ``onnx.checker``; raises :class:`ModelError` if invalid."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.shape_inference.InferenceError) as e:
        raise ModelError(f"{path.name} is not a valid ONNX model ({one_line(e)})") from None
    except (DecodeError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path.name} is not a readable ONNX model ({one_line(e)})") from None
    if not model.graph.input or not model.graph.output:
        raise ModelError(f"{path.name} is an ONNX file without inputs or outputs")

    def shapes(values: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        out = []
        for v in values:
            dims = v.type.tensor_type.shape.dim
            out.append((v.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)))
        return tuple(out)

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxInfo(inputs=shapes(model.graph.input), outputs=shapes(model.graph.output), opset=int(opset))

