"""IAT, the Illumination-Adaptive Transformer (Cui et al., "You Only Need 90K Parameters to Adapt
Light: a Light Weight Transformer for Image Enhancement and Exposure Correction", BMVC 2022),
written here from the paper and the published tensor shapes.

Two branches on the sRGB photo in [0, 1]:

* **Local** (fully convolutional, per-pixel): a 3x3 convolution to 16 channels (LeakyReLU 0.2),
  then two stacks of three light "CBlocks" — a multiplicative and an additive one, each with a
  skip — ending in a 3x3 convolution to 3 channels (ReLU for the multiplier, tanh for the
  offset). ``local = image · mul + add``. A CBlock is ``x += dwconv3x3(x)``;
  ``x += γ1 · conv1x1(dwconv5x5(conv1x1(norm(x))))``; ``x += γ2 · mlp(norm(x))`` where the
  norm is a learned per-pixel colour mixing of the channels (``x @ Mᵀ · α + β``) and the MLP
  two 1x1 convolutions with GELU (×4 hidden).
* **Global** (whole photo): two stride-2 3x3 convolutions with batch norm (GELU between),
  then one attention block whose 10 learned queries attend to every position: query 0 gives
  a gamma, queries 1–9 a 3x3 colour matrix, each added to a learned base.

``output = clamp(local @ colourᵀ, 1e-8, 1) ** gamma`` per photo.

The local branch sees :data:`LOCAL_RADIUS` pixels each side, so it tiles exactly; the global
branch reads the whole photo (the expert feeds it a downscaled copy, ``global_input``).
Inputs: ``image`` float32 N x 3 x H x W in [0, 1] (any size ≥ 1), ``global_input`` N x 3 x h x w
(the photo, any size ≥ 4). Output N x 3 x H x W in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


#: Attention heads of the global branch (not visible in the tensor shapes; the paper's value).
GLOBAL_HEADS = 4


class ChannelAffine(nn.Module):
    """Per-pixel learned colour mixing then scale and shift over channels: ``x @ colorᵀ · α + β``
    (x: N x L x C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))
        self.color = nn.Parameter(torch.eye(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.color.t()) * self.alpha + self.beta


class ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class CBlock(nn.Module):
    """The local branch's block (see the module docs)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = ChannelAffine(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = ChannelAffine(dim)
        self.mlp = ConvMlp(dim, 4 * dim)
        self.gamma_1 = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.gamma_2 = nn.Parameter(torch.ones(1, dim, 1, 1))

    @staticmethod
    def _norm(norm: ChannelAffine, x: torch.Tensor) -> torch.Tensor:
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.gamma_1 * self.conv2(self.attn(self.conv1(self._norm(self.norm1, x))))
        return x + self.gamma_2 * self.mlp(self._norm(self.norm2, x))


class LocalBranch(nn.Module):
    def __init__(self, dim: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, dim, 3, padding=1)
        self.mul_blocks = nn.Sequential(*[CBlock(dim) for _ in range(blocks)])
        self.add_blocks = nn.Sequential(*[CBlock(dim) for _ in range(blocks)])
        self.mul_end = nn.Sequential(nn.Conv2d(dim, 3, 3, padding=1), nn.ReLU())
        self.add_end = nn.Sequential(nn.Conv2d(dim, 3, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.conv1(x), 0.2)
        return self.mul_end(self.mul_blocks(h) + h), self.add_end(self.add_blocks(h) + h)


class QueryAttention(nn.Module):
    """10 learned queries attend to N tokens (multi-head, scaled dot product)."""

    def __init__(self, dim: int, heads: int, queries: int = 10) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Parameter(torch.ones(1, queries, dim))
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        d = c // self.heads
        k = self.k(x).reshape(n, length, self.heads, d).transpose(1, 2)
        v = self.v(x).reshape(n, length, self.heads, d).transpose(1, 2)
        q = self.q.expand(n, -1, -1).reshape(n, -1, self.heads, d).transpose(1, 2)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * d ** -0.5, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(n, -1, c)
        return self.proj(out)


class QueryBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = QueryAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        tokens = self.attn(self.norm1(x.flatten(2).transpose(1, 2)))
        return tokens + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(tokens))))


class ConvEmbedding(nn.Module):
    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(3, dim // 2, 3, stride=2, padding=1), nn.BatchNorm2d(dim // 2), nn.GELU(),
                                  nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class GlobalBranch(nn.Module):
    def __init__(self, dim: int = 64, heads: int = GLOBAL_HEADS) -> None:
        super().__init__()
        self.gamma_base = nn.Parameter(torch.ones(1))
        self.color_base = nn.Parameter(torch.eye(3))
        self.conv_large = ConvEmbedding(dim)
        self.generator = QueryBlock(dim, heads)
        self.gamma_linear = nn.Linear(dim, 1)
        self.color_linear = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma N x 1, colour matrix N x 3 x 3)`` of the photo ``x``."""
        tokens = self.generator(self.conv_large(x))
        gamma = self.gamma_linear(tokens[:, 0]) + self.gamma_base
        color = self.color_linear(tokens[:, 1:]).reshape(-1, 3, 3) + self.color_base
        return gamma, color


class IAT(nn.Module):
    """``IAT()``: ``forward(image, global_input)``, see the module docs."""

    def __init__(self) -> None:
        super().__init__()
        self.local_net = LocalBranch()
        self.global_net = GlobalBranch()

    def forward(self, image: torch.Tensor, global_input: torch.Tensor) -> torch.Tensor:
        mul, add = self.local_net(image)
        local = image * mul + add
        gamma, color = self.global_net(global_input)
        return apply_global(local, gamma, color)


class IATExport(nn.Module):
    """What the ONNX file computes, so that the global branch runs once per photo and the local
    branch once per tile: ``forward(input, global_input, gamma, color)`` returns
    ``(output, gamma_out, color_out)`` where ``output`` is the local branch on ``input`` with
    the given ``gamma`` (N x 1) and ``color`` (N x 3 x 3) applied, and ``gamma_out``/``color_out``
    the global branch on ``global_input``. Feed a tiny dummy to the part not wanted."""

    def __init__(self, net: IAT) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, global_input: torch.Tensor, gamma: torch.Tensor,
                color: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mul, add = self.net.local_net(image)
        out = apply_global(image * mul + add, gamma, color)
        gamma_out, color_out = self.net.global_net(global_input)
        return out, gamma_out, color_out


def apply_global(local: torch.Tensor, gamma: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """``clamp(local @ colourᵀ, 1e-8, 1) ** gamma`` per photo (local N x 3 x H x W)."""
    mixed = torch.einsum("nchw,ndc->ndhw", local, color).clamp(1e-8, 1.0)
    return mixed ** gamma.reshape(-1, 1, 1, 1)


def load_published(state: dict[str, torch.Tensor]) -> IAT:
    """An :class:`IAT` holding a published state dict (LOL-v1 or exposure), loaded strictly."""
    net = IAT()
    net.load_state_dict(state, strict=True)
    return net.eval()
