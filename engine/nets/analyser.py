"""Restora's learned degradation analyser: a small CNN reading one crop of a photo.

Input: float32 N x 3 x H x W, sRGB in [0, 1], any H, W ≥ 32 (trained on 128 x 128 crops at the
photo's native resolution, never resized: noise, JPEG and blur signatures live at pixel scale).
Output: float32 N x 12 — columns 0..5 are presence logits and columns 6..11 severity logits,
both in the order of :data:`engine.kinds.KINDS`. ``sigmoid(presence)`` is the probability that
the kind is present; ``sigmoid(severity)`` estimates its strength in [0, 1] (0 when absent).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..kinds import KINDS

N_KINDS = len(KINDS)
#: Edge of the square crops the analyser was trained on, in pixels.
CROP = 128


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class RestoraAnalyser(nn.Module):
    """Full-resolution stem (keeps pixel-level statistics), four stride-2 stages, then global
    mean and standard-deviation pooling (texture statistics) and a two-layer head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(3, w),
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w),
            _conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w),
            _conv(3 * w, 4 * w, 2), _conv(4 * w, 4 * w),
            _conv(4 * w, 6 * w, 2),
        )
        # global colour statistics of the input itself help lowlight (mean) and haze (contrast)
        self.head = nn.Sequential(nn.Linear(12 * w + 6, 96), nn.ReLU(inplace=True),
                                  nn.Linear(96, 2 * N_KINDS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        mean = f.mean(dim=(2, 3))
        std = (f - f.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
        xm = x.mean(dim=(2, 3))
        xs = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
        return self.head(torch.cat([mean, std, xm, xs], dim=1))


def load_analyser(path: str | Path) -> RestoraAnalyser:
    """Build the analyser from a ``.safetensors`` file written by ``training/export.py``; eval mode."""
    from safetensors.torch import load_file

    model = RestoraAnalyser()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
