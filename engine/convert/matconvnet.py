"""MatConvNet ``simplenn`` models saved by MATLAB as v7.3 ``.mat`` files (HDF5) → tensors.

A v7.3 file is HDF5: ``net/layers`` is a cell array of object references, each to a struct
group with ``type`` (a char array stored as uint16 codes), ``name`` and, for ``conv`` layers,
``weights`` (a cell of two references: filters and biases). MATLAB stores arrays column-major,
so HDF5 presents them with their axes reversed: filters that MATLAB sees as H x W x in x out
arrive as out x in x W x H; swapping the last two axes gives PyTorch's out x in x H x W.
MatConvNet's ``vl_nnconv`` is a correlation, like ``torch.nn.Conv2d``, so no kernel flip.

Only plain data is read (h5py datasets; nothing is executed). :func:`simplenn_state_dict`
names the tensors ``model.<layer index>.weight`` / ``.bias``, the layout of a PyTorch
``nn.Sequential`` with the same layers (conv, relu, conv, …), which is how KAIR publishes the
same networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import ModelError

#: Layer types this reader understands (anything else is refused rather than skipped).
KNOWN_TYPES = ("conv", "relu")


@dataclass
class SimpleNNLayer:
    """One layer: ``type`` (``"conv"``, ``"relu"``), ``name``, and for a convolution its filters
    (float32 out x in x kh x kw), biases (float32 out), ``stride`` and ``pad``."""

    type: str
    name: str
    weights: list[np.ndarray] = field(default_factory=list)
    stride: int = 1
    pad: int = 0


def _text(dataset) -> str:
    return "".join(chr(int(c)) for c in np.asarray(dataset[()]).flatten())


def read_simplenn(path: Union[str, Path]) -> list[SimpleNNLayer]:
    """The layers of a MatConvNet simplenn network in a MATLAB v7.3 file.

    Raises :class:`engine.errors.ModelError` for a file that is not HDF5 (e.g. an older
    ``.mat`` version), has no ``net/layers``, or holds a layer type not in :data:`KNOWN_TYPES`.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(str(path), "r")
    except OSError as err:
        raise ModelError(f"{path.name}: not a MATLAB v7.3 (HDF5) file ({err})") from None
    with f:
        if "net" not in f or "layers" not in f["net"]:
            raise ModelError(f"{path.name}: no MatConvNet 'net.layers' in this .mat file")
        layers = []
        for i, ref in enumerate(np.asarray(f["net/layers"][()]).flatten()):
            group = f[ref]
            kind = _text(group["type"])
            if kind not in KNOWN_TYPES:
                raise ModelError(f"{path.name}: layer {i} has type {kind!r}; this reader knows {KNOWN_TYPES}")
            layer = SimpleNNLayer(kind, _text(group["name"]) if "name" in group else f"layer{i}")
            if kind == "conv":
                refs = np.asarray(group["weights"][()]).flatten()
                filters = np.asarray(f[refs[0]][()], dtype=np.float32)
                if filters.ndim == 3:  # MATLAB drops a trailing singleton dimension (one output)
                    filters = filters[None]
                bias = np.asarray(f[refs[1]][()], dtype=np.float32).reshape(-1)
                layer.weights = [np.ascontiguousarray(filters.transpose(0, 1, 3, 2)), bias]
                layer.stride = int(np.asarray(group["stride"][()]).flatten()[0])
                layer.pad = int(np.asarray(group["pad"][()]).flatten()[0])
            layers.append(layer)
    return layers


def simplenn_state_dict(layers: list[SimpleNNLayer]) -> dict:
    """``{"model.<i>.weight": tensor, "model.<i>.bias": tensor}`` for every convolution ``i``
    (torch tensors). Stride-1, same-padding 3x3 convolutions only (what DnCNN uses)."""
    import torch

    state = {}
    for i, layer in enumerate(layers):
        if layer.type != "conv":
            continue
        filters, bias = layer.weights
        if layer.stride != 1 or layer.pad != filters.shape[-1] // 2:
            raise ModelError(f"layer {i} ({layer.name}): stride {layer.stride}, pad {layer.pad} is not a "
                             "same-size convolution")
        state[f"model.{i}.weight"] = torch.from_numpy(filters.copy())
        state[f"model.{i}.bias"] = torch.from_numpy(bias.copy())
    return state


def convert_mat(path: Union[str, Path], out: Union[str, Path]) -> Path:
    """Read a simplenn ``.mat`` file and write its tensors to the safetensors file ``out``
    (atomically: a temporary file in the same folder, then a rename). Returns ``out``."""
    from safetensors.torch import save_file

    from ..imageio.atomic import atomic_output

    out = Path(out)
    state = simplenn_state_dict(read_simplenn(path))
    with atomic_output(out, overwrite=True) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "source": "MatConvNet simplenn"})
    return out
