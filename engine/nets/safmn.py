"""SAFMN ×4, the NTIRE 2023 efficient-SR variant (Sun, Pan, Dong and Tang, "Spatially-Adaptive
Feature Modulation for Efficient Image Super-Resolution", ICCV 2023), written here from the
paper and the published tensor shapes.

``to_feat`` (3x3 conv, 3 → 36), one global response normalisation (ConvNeXt V2's GRN), then 8
blocks, each ``x += SAFM(x)``; ``x += CCM(x)``, and ``to_img`` (3x3 conv to 3·16 channels,
pixel shuffle ×4) added to the bilinearly upscaled input. The variant has no per-block norms
(unlike the paper's main model), which is why spandrel does not recognise it.

* SAFM (spatially-adaptive feature modulation): the 36 channels are split into 4 groups of 9;
  group 0 goes through a depthwise 3x3 convolution at full resolution, group i > 0 is
  max-pooled to 1/2^(i+1) resolution, convolved (depthwise 3x3) and upsampled back (nearest); the
  groups are concatenated, mixed by a 1x1 convolution, passed through GELU and multiply ``x``.
* CCM (convolutional channel mixer): 3x3 convolution 36 → 72, GELU, 1x1 convolution 72 → 36.

Input float32 N x 3 x H x W, sRGB in [0, 1]; output N x 3 x 4H x 4W, not clipped. Two parts
read beyond a pixel's neighbourhood: GRN's channel energies (the whole image: computed once on
the photo and passed to every tile, ``response``) and the max-pooling pyramid down to 1/16
(sides padded to :data:`SIZE_MULTIPLE` so that pooling cells align with the photo's; its
reach is the reason for :data:`TILE_OVERLAP`). The ONNX export requires sides that are multiples
of 16 (the pooling is then plain max pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .geometry import SAFMN_SCALE as SCALE


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's global response normalisation: each channel's L2 energy over the whole image,
    divided by the mean over channels, scales it: ``x + γ · (x · n) + β`` (γ, β: 1 x C x 1 x 1).
    ``n`` can be given (computed once on the whole photo) so that tiles use the photo's value."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    @staticmethod
    def response(x: torch.Tensor) -> torch.Tensor:
        """``n``: N x C x 1 x 1, each channel's spatial L2 norm over the channels' mean norm."""
        energy = torch.sqrt((x * x).sum(dim=(2, 3), keepdim=True))
        return energy / (energy.mean(dim=1, keepdim=True) + 1e-6)

    def forward(self, x: torch.Tensor, n: "torch.Tensor | None" = None) -> torch.Tensor:
        return x + self.gamma * (x * (self.response(x) if n is None else n)) + self.beta


class SAFM(nn.Module):
    def __init__(self, dim: int, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        chunk = dim // levels
        self.mfr = nn.ModuleList([nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk, bias=False)
                                  for _ in range(levels)])
        self.aggr = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        parts = []
        for i, chunk in enumerate(torch.chunk(x, self.levels, dim=1)):
            if i == 0:
                parts.append(self.mfr[0](chunk))
            else:
                k = 2 ** (i + 1)
                if h % k == 0 and w % k == 0:  # whole cells (what the expert feeds): exportable to ONNX
                    parts.append(F.interpolate(self.mfr[i](F.max_pool2d(chunk, k)), scale_factor=k, mode="nearest"))
                else:
                    pooled = F.adaptive_max_pool2d(chunk, (h // k, w // k))
                    parts.append(F.interpolate(self.mfr[i](pooled), size=(h, w), mode="nearest"))
        return F.gelu(self.aggr(torch.cat(parts, dim=1))) * x


class CCM(nn.Module):
    def __init__(self, dim: int, growth: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * growth)
        self.ccm = nn.Sequential(nn.Conv2d(dim, hidden, 3, padding=1, bias=False), nn.GELU(),
                                 nn.Conv2d(hidden, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.safm = SAFM(dim)
        self.ccm = CCM(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.safm(x)
        return x + self.ccm(x)


class SAFMN(nn.Module):
    """``SAFMN(dim=36, blocks=8, scale=4)``: ``forward(image)`` → image upscaled ×scale."""

    def __init__(self, dim: int = 36, blocks: int = 8, scale: int = SCALE) -> None:
        super().__init__()
        self.scale = scale
        self.norm = GlobalResponseNorm(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1)
        self.feats = nn.Sequential(*[Block(dim) for _ in range(blocks)])
        self.to_img = nn.Sequential(nn.Conv2d(dim, 3 * scale ** 2, 3, padding=1), nn.PixelShuffle(scale))

    def response(self, x: torch.Tensor) -> torch.Tensor:
        """The global response ``n`` (N x C x 1 x 1) of the photo ``x``, for :meth:`forward`."""
        return GlobalResponseNorm.response(self.to_feat(x))

    def forward(self, x: torch.Tensor, response: "torch.Tensor | None" = None) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.to_img(self.feats(self.norm(self.to_feat(x), response))) + base


class SAFMNExport(nn.Module):
    """What the ONNX file computes: ``forward(input, global_input, response)`` →
    ``(output, response_out)``: the network on the tile ``input`` with the photo's global response
    ``response`` (N x C x 1 x 1), and the response of ``global_input`` (the whole photo). Feed a
    tiny dummy to the part not wanted."""

    def __init__(self, net: SAFMN) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, global_input: torch.Tensor,
                response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(image, response), self.net.response(global_input)


def load_published(state: dict[str, torch.Tensor]) -> SAFMN:
    """A :class:`SAFMN` holding the published state dict (``params`` unwrapped), loaded strictly."""
    blocks = len({k.split(".")[1] for k in state if k.startswith("feats.")})
    dim = int(state["to_feat.weight"].shape[0])
    scale = int(round((int(state["to_img.0.weight"].shape[0]) // 3) ** 0.5))
    net = SAFMN(dim=dim, blocks=blocks, scale=scale)
    net.load_state_dict(state, strict=True)
    return net.eval()
