"""Published restoration networks → Restora's files: our own module, loaded strictly from the
authors' tensors, saved as safetensors and exported to ONNX.

Each :class:`PublishedNet` names how to build the module from a state dict (strict: every
tensor used, every shape equal), the ONNX inputs (name → example shape) and which
dimensions are dynamic. :func:`convert` writes ``<stem>.safetensors`` and ``<stem>.onnx`` and
returns the facts a model card needs (sizes, digests, parameters, torch ↔ ONNX difference).

The published ``.pth`` files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

#: ONNX opset of every export (same as Restora's own bundled networks).
OPSET = 17


@dataclass(frozen=True)
class PublishedNet:
    """How to turn one published network into Restora's files.

    ``build``: state dict → ``nn.Module`` in eval mode (raises on any unused or missing tensor).
    ``inputs``: ONNX input name → example shape (N, C, H, W); the first is the image.
    ``output_scale``: output size / input size. ``size_multiple``: input sides must be multiples.
    ``whole_image``: the network pools over the whole image (no tiling).
    ``export``: module → the module exported to ONNX when that differs (e.g. IAT's global and
    local branches as separately callable outputs), with its own ``export_inputs`` (name →
    example shape) and ``export_outputs``; ``onnx_forward(session, numpy inputs)`` then computes
    with the ONNX session what the module computes (for the torch ↔ ONNX comparison).
    """

    architecture: str
    build: Callable[[Mapping[str, "object"]], "object"]
    inputs: Mapping[str, tuple[int, int, int, int]]
    output_scale: int = 1
    size_multiple: int = 1
    whole_image: bool = False
    test_shape: tuple[int, int] = (70, 94)
    metadata: Mapping[str, str] = field(default_factory=dict)
    export: Optional[Callable[["object"], "object"]] = None
    export_inputs: Optional[Mapping[str, tuple[int, ...]]] = None
    export_outputs: tuple[str, ...] = ("output",)
    onnx_forward: Optional[Callable[["object", dict], np.ndarray]] = None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_published(path: Path) -> dict:
    """The tensors of a published ``.pth`` (restricted unpickler) or ``.safetensors`` file; a
    ``{"params": ...}`` / ``{"state_dict": ...}`` wrapper is unwrapped."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("params", "params_ema", "state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return dict(state)


def _ffdnet(state):
    from ..nets.ffdnet import load_published

    return load_published(state)


def _dncnn(state):
    from ..nets.dncnn import load_published

    return load_published(state)


def _iat(state):
    from ..nets.iat import load_published

    return load_published(state)


def _iat_export(module):
    from ..nets.iat import IATExport

    return IATExport(module)


def _iat_onnx_forward(session, inputs: dict) -> np.ndarray:
    from ..experts.published import iat_onnx_forward

    return iat_onnx_forward(session, inputs["input"], inputs["global_input"])


def _safmn(state):
    from ..nets.safmn import load_published

    return load_published(state)


def _safmn_export(module):
    from ..nets.safmn import SAFMNExport

    return SAFMNExport(module)


def _safmn_onnx_forward(session, inputs: dict) -> np.ndarray:
    from ..experts.published import safmn_onnx_forward

    return safmn_onnx_forward(session, inputs["input"])


#: The networks this module knows, by catalog architecture name.
NETS: dict[str, PublishedNet] = {
    "FFDNet": PublishedNet("FFDNet", _ffdnet, {"input": (1, 3, 64, 64), "sigma": (1, 1, 64, 64)},
                           size_multiple=2, test_shape=(70, 94)),
    "DnCNN": PublishedNet("DnCNN", _dncnn, {"input": (1, 3, 64, 64)}, test_shape=(57, 83)),
    "DnCNN-grey": PublishedNet("DnCNN-grey", _dncnn, {"input": (1, 1, 64, 64)}, test_shape=(57, 83)),
    "IAT": PublishedNet("IAT", _iat, {"input": (1, 3, 64, 64), "global_input": (1, 3, 64, 64)},
                        whole_image=True, test_shape=(61, 90), export=_iat_export,
                        export_inputs={"input": (1, 3, 64, 64), "global_input": (1, 3, 64, 64),
                                       "gamma": (1, 1), "color": (1, 3, 3)},
                        export_outputs=("output", "gamma_out", "color_out"), onnx_forward=_iat_onnx_forward),
    "SAFMN": PublishedNet("SAFMN", _safmn, {"input": (1, 3, 32, 32)}, output_scale=4, size_multiple=16,
                          test_shape=(48, 80), export=_safmn_export,
                          export_inputs={"input": (1, 3, 32, 32), "global_input": (1, 3, 32, 32),
                                         "response": (1, 36, 1, 1)},
                          export_outputs=("output", "response_out"), onnx_forward=_safmn_onnx_forward),
}


def example_inputs(net: PublishedNet, shape: Optional[tuple[int, int]] = None, batch: int = 1,
                   seed: int = 0) -> dict:
    """Random example tensors for every input at ``shape`` (H, W) (default: the export shape);
    a noise-level map gets values in [0, 0.2]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, dims in net.inputs.items():
        hh, ww = shape or dims[2:]
        t = torch.rand(batch, dims[1], hh, ww, generator=g)
        out[name] = t * 0.2 if name == "sigma" else t
    return out


def _export_examples(net: PublishedNet) -> dict:
    import torch

    if net.export_inputs is None:
        return example_inputs(net)
    g = torch.Generator().manual_seed(0)
    out = {name: torch.rand(*dims, generator=g) for name, dims in net.export_inputs.items()}
    if "response" in out:  # SAFMN: a plausible global response (channel energies near their mean)
        out["response"] = 0.5 + out["response"]
    if "gamma" in out:  # IAT: a plausible gamma and colour matrix
        out["gamma"] = out["gamma"] * 0.5 + 0.75
        out["color"] = torch.eye(3).expand_as(out["color"]) + 0.1 * out["color"]
    return out


def export_onnx(module, net: PublishedNet, path: Path) -> None:
    """Legacy (TorchScript) exporter, opset :data:`OPSET`, dynamic batch, height and width of every input."""
    import torch

    module.eval()
    exported = net.export(module).eval() if net.export else module
    examples = _export_examples(net)
    names = list(examples)
    dynamic = {n: ({0: "batch", 2: f"{n}_height", 3: f"{n}_width"} if examples[n].dim() == 4 else {0: "batch"})
               for n in names}
    dynamic["output"] = {0: "batch", 2: "out_height", 3: "out_width"}
    dynamic.update({o: {0: "batch"} for o in net.export_outputs[1:]})
    with torch.no_grad():
        torch.onnx.export(exported, tuple(examples.values()), str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=list(net.export_outputs), dynamic_axes=dynamic)


def onnx_max_diff(module, net: PublishedNet, path: Path, shape: Optional[tuple[int, int]] = None) -> float:
    """Largest absolute difference between torch and ONNX Runtime on random inputs (batch 2) of
    ``shape`` (default ``net.test_shape``, deliberately not the export shape)."""
    import onnxruntime as ort
    import torch

    inputs = example_inputs(net, shape or net.test_shape, batch=2, seed=1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(*inputs.values()).numpy()
    feed = {k: v.numpy() for k, v in inputs.items()}
    got = net.onnx_forward(sess, feed) if net.onnx_forward else sess.run(None, feed)[0]
    return float(np.abs(ref - got).max())


def save_safetensors(module, path: Path, metadata: Mapping[str, str]) -> None:
    """The module's tensors plus one metadata entry ``"restora"`` (sorted JSON, so the file's bytes
    and digest are the same on every conversion)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(path),
              metadata={"restora": json.dumps(dict(metadata), sort_keys=True)})


def load_converted(architecture: str, path: Path):
    """The module for ``architecture`` built from a converted ``.safetensors`` file (strict)."""
    return NETS[architecture].build(read_published(path))


def convert(architecture: str, source: Path, out_dir: Path, stem: str, *, onnx: bool = True) -> dict:
    """Convert the published file ``source`` into ``out_dir/<stem>.safetensors`` (and ``.onnx``).

    Returns ``{"source_sha256", "params", "files": [{"file", "size", "sha256"}], "onnx_max_diff"}``.
    """
    net = NETS[architecture]
    state = read_published(source)
    module = net.build(state)
    used = set(module.state_dict())
    unused = [k for k in state if k not in used]
    if unused:  # load_state_dict(strict=True) already refuses these; say it in our words too
        raise ValueError(f"{Path(source).name}: tensors not used by {architecture}: {unused[:5]}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    facts: dict = {"architecture": architecture, "source": Path(source).name, "source_sha256": sha256_of(source),
                   "params": int(sum(p.numel() for p in module.parameters())), "files": []}
    paths = []
    if onnx:
        onnx_path = out_dir / f"{stem}.onnx"
        export_onnx(module, net, onnx_path)
        facts["onnx_max_diff"] = onnx_max_diff(module, net, onnx_path)
        paths.append(onnx_path)
    st = out_dir / f"{stem}.safetensors"
    save_safetensors(module, st, {"architecture": architecture, "source_sha256": facts["source_sha256"],
                                  **net.metadata})
    paths.append(st)
    facts["files"] = [{"file": p.name, "size": p.stat().st_size, "sha256": sha256_of(p)} for p in paths]
    return facts


def layer_macs(module, output) -> int:
    """Multiply-accumulates of one forward pass of a ``Conv2d`` (``output elements ·
    in_channels/groups · kh · kw``) or ``Linear`` layer (``output elements · in_features``) that
    produced ``output``; 0 for any other module. Bias additions are not counted."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def flops_per_megapixel(module, net: PublishedNet, shape: tuple[int, int] = (256, 256)) -> float:
    """FLOPs per input megapixel: 2 · multiply-accumulates of every convolution and linear layer
    (counted with forward hooks on one pass at ``shape``); element-wise work is not counted."""
    import torch
    from torch import nn

    macs = 0

    def hook(mod, _inp, out) -> None:
        nonlocal macs
        macs += layer_macs(mod, out)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*example_inputs(net, shape).values())
    finally:
        for h in handles:
            h.remove()
    return 2.0 * macs / (shape[0] * shape[1] / 1e6)
