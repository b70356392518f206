"""FFDNet colour (Zhang, Zuo and Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN based
Image Denoising", IEEE TIP 2018), written here from the paper and the published tensor shapes.

The network works at half resolution: the photo is pixel-unshuffled by 2 (3 channels → 12
sub-images), a noise-level map M (one channel, the noise standard deviation per pixel) is
concatenated, 12 3x3 convolutions (96 channels, ReLU between them, no normalisation at inference)
predict the 12 clean sub-images directly (FFDNet is not residual), and a pixel shuffle puts
them back at full resolution.

Inputs: ``image`` float32 N x 3 x H x W, sRGB in [0, 1], H and W even; ``sigma`` float32
N x 1 x H x W, the noise standard deviation at each pixel in [0, 1] units (σ 25/255 ≈ 0.098).
The map is averaged over each 2x2 block to reach the network's resolution, so a spatially
varying, signal-dependent σ passes straight through. Output: N x 3 x H x W, not clipped.

The receptive field is 12 convolutions at half resolution: 12 half-resolution pixels, 24 input
pixels, each side (:data:`RECEPTIVE_RADIUS`).

The published weights (KAIR's ``ffdnet_color.pth``) name their tensors ``model.<i>.weight`` /
``model.<i>.bias`` for the convolutions at even positions of one ``nn.Sequential``; this module
keeps that layout so they load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .geometry import FFDNET_RECEPTIVE_RADIUS as RECEPTIVE_RADIUS  # noqa: F401 (public name)


class FFDNet(nn.Module):
    """``FFDNet(channels=3, features=96, depth=12)``: ``forward(image, sigma)``, see the module docs."""

    def __init__(self, channels: int = 3, features: int = 96, depth: int = 12) -> None:
        super().__init__()
        self.channels = channels
        layers: list[nn.Module] = [nn.Conv2d(4 * channels + 1, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, 4 * channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(image, 2)
        m = F.avg_pool2d(sigma, 2)
        return F.pixel_shuffle(self.model(torch.cat([x, m], dim=1)), 2)


def load_published(state: dict[str, torch.Tensor]) -> FFDNet:
    """An :class:`FFDNet` holding the published state dict, loaded strictly (every tensor used,
    every shape equal); raises ``RuntimeError`` otherwise."""
    first = state["model.0.weight"]
    channels = (int(first.shape[1]) - 1) // 4
    depth = sum(1 for k in state if k.startswith("model.") and k.endswith(".weight"))
    net = FFDNet(channels=channels, features=int(first.shape[0]), depth=depth)
    net.load_state_dict(state, strict=True)
    return net.eval()
