"""Count a network's multiply-accumulates with forward hooks (no third-party counter).

Counted: every ``Conv2d`` (``out_elements · in_channels/groups · kh · kw``, plus bias adds ignored)
and ``Linear`` layer. Element-wise work (LayerNorm, gates, residual adds) is counted separately
as one operation per element for each op-bearing module output, so the total is an honest upper
bound of what runs. FLOPs = 2 · MACs + element-wise ops.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.convert.published import layer_macs
from engine.nets.generalist import LayerNorm2d, NAFLiteBlock, SimpleGate


def count(model: nn.Module, shape: tuple[int, int, int, int]) -> dict[str, float]:
    """MACs, element-wise ops and FLOPs of one forward pass on a zero input of ``shape`` (N, C, H, W),
    and the same per megapixel of input (``*_per_mp``)."""
    macs = 0
    elementwise = 0

    def conv_hook(mod: nn.Module, inp, out) -> None:
        nonlocal macs
        macs += layer_macs(mod, out)

    def elementwise_hook(mod: nn.Module, inp, out) -> None:
        nonlocal elementwise
        # LayerNorm2d ≈ 8 ops/element, SimpleGate 1, a NAF block's two scaled residual adds 4
        factor = 8 if isinstance(mod, LayerNorm2d) else 1 if isinstance(mod, SimpleGate) else 4
        elementwise += factor * out.numel()

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, (LayerNorm2d, SimpleGate, NAFLiteBlock)):
            handles.append(m.register_forward_hook(elementwise_hook))
    try:
        with torch.no_grad():
            model.eval()
            cond_dim = getattr(getattr(model, "config", None), "cond_dim", 0)
            if cond_dim:
                model(torch.zeros(shape), torch.zeros(shape[0], cond_dim))
            else:
                model(torch.zeros(shape))
    finally:
        for h in handles:
            h.remove()
    mp = shape[0] * shape[2] * shape[3] / 1e6
    flops = 2 * macs + elementwise
    return {"macs": macs, "elementwise": elementwise, "flops": flops,
            "macs_per_mp": macs / mp, "flops_per_mp": flops / mp}
