"""DnCNN (Zhang, Zuo, Chen, Meng and Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep
CNN for Image Denoising", IEEE TIP 2017), written here from the paper and the published shapes.

A plain stack of ``depth`` 3x3 convolutions (64 channels, ReLU between them; the published
files have batch normalisation folded into the convolutions) predicts the *residual* — the
noise or artefacts — and the output is ``input - residual``. Two published models are used:

* CDnCNN-B (colour, blind Gaussian σ ∈ [0, 55]): 3 → 3 channels, 20 convolutions.
* DnCNN-3 (grey): one blind model for Gaussian denoising, ×2–×4 bicubic super-resolution
  (applied after bicubic upscaling) and JPEG deblocking (quality 5–99), 1 → 1 channel, 20
  convolutions. Trained on the luma (Y of MATLAB's ``rgb2ycbcr``) of photos.

Input: float32 N x C x H x W in [0, 1] (any size); output: same shape, not clipped. Receptive
field: one pixel per convolution, :data:`RECEPTIVE_RADIUS` pixels each side.

Tensor names follow the published PyTorch layout (KAIR): ``model.<i>.weight`` / ``.bias`` for the
convolutions at even positions of one ``nn.Sequential``.
"""

from __future__ import annotations

import torch
from torch import nn

from .geometry import DNCNN_RECEPTIVE_RADIUS as RECEPTIVE_RADIUS  # noqa: F401 (public name)


class DnCNN(nn.Module):
    """``DnCNN(channels, features=64, depth=20)``: ``forward(x) = x - residual(x)``."""

    def __init__(self, channels: int = 3, features: int = 64, depth: int = 20) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)


def load_published(state: dict[str, torch.Tensor]) -> DnCNN:
    """A :class:`DnCNN` holding a published state dict, loaded strictly; the channel count,
    width and depth are read from the tensor shapes."""
    first = state["model.0.weight"]
    depth = sum(1 for k in state if k.startswith("model.") and k.endswith(".weight"))
    net = DnCNN(channels=int(first.shape[1]), features=int(first.shape[0]), depth=depth)
    net.load_state_dict(state, strict=True)
    return net.eval()
