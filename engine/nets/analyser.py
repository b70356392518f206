"""Restora's learned degradation analyser: a small CNN reading one crop of a photo.

Input: float32 N x 3 x H x W, sRGB in [0, 1], any H, W ≥ 32 (trained on 128 x 128 crops at the
photo's native resolution, never resized: noise, JPEG and blur signatures live at pixel scale).
Output: float32 N x 12 — columns 0..5 are presence logits and columns 6..11 severity logits,
both in the order of :data:`engine.kinds.KINDS`. ``sigmoid(presence)`` is the probability that
the kind is present; ``sigmoid(severity)`` estimates its strength in [0, 1] (0 when absent).

A model may carry a *branch*: a second copy of the layers after ``branch_at`` (and of the head)
that reads the shared first ``branch_at`` layers and answers for ``branch_kinds`` (both their
presence and severity columns). v3 is v2 with v1's later layers as the blur branch: one run,
the stem computed once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..kinds import KINDS

N_KINDS = len(KINDS)
#: Edge of the square crops the analyser was trained on, in pixels.
CROP = 128


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _layers(w: int) -> list[nn.Sequential]:
    return [_conv(3, w),
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w),
            _conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w),
            _conv(3 * w, 4 * w, 2), _conv(4 * w, 4 * w),
            _conv(4 * w, 6 * w, 2)]


def _head(w: int) -> nn.Sequential:
    # global colour statistics of the input itself help lowlight (mean) and haze (contrast)
    return nn.Sequential(nn.Linear(12 * w + 6, 96), nn.ReLU(inplace=True), nn.Linear(96, 2 * N_KINDS))


def _std(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()


class RestoraAnalyser(nn.Module):
    """Full-resolution stem (keeps pixel-level statistics), four stride-2 stages, then global
    mean and standard-deviation pooling (texture statistics) and a two-layer head.

    ``branch_kinds``: kinds answered by a second tail (layers ``branch_at`` onwards plus a head)
    on the shared first ``branch_at`` layers; empty = no branch (v1, v2)."""

    def __init__(self, width: int = 16, branch_kinds: Sequence[str] = (), branch_at: int = 5) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(*_layers(w))
        self.head = _head(w)
        self.branch_kinds = tuple(branch_kinds)
        self.branch_at = int(branch_at)
        if self.branch_kinds:
            unknown = set(self.branch_kinds) - set(KINDS)
            if unknown or not 0 < self.branch_at < len(self.features):
                raise ValueError(f"bad branch: kinds {sorted(unknown)}, branch_at {branch_at}")
            self.branch_features = nn.Sequential(*_layers(w)[self.branch_at:])
            self.branch_head = _head(w)
            mask = torch.zeros(2 * N_KINDS)
            for k in self.branch_kinds:
                mask[KINDS.index(k)] = mask[N_KINDS + KINDS.index(k)] = 1.0
            self.register_buffer("branch_mask", mask, persistent=False)

    @staticmethod
    def _pooled(head: nn.Module, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        xm = x.mean(dim=(2, 3))
        return head(torch.cat([f.mean(dim=(2, 3)), _std(f), xm, _std(x)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.branch_kinds:
            return self._pooled(self.head, self.features(x), x)
        stem = self.features[:self.branch_at](x)
        main = self._pooled(self.head, self.features[self.branch_at:](stem), x)
        other = self._pooled(self.branch_head, self.branch_features(stem), x)
        return main * (1.0 - self.branch_mask) + other * self.branch_mask

    def metadata(self) -> dict[str, str]:
        """What :func:`load_analyser` needs beside the weights (saved in the safetensors header)."""
        if not self.branch_kinds:
            return {}
        return {"branch_kinds": ",".join(self.branch_kinds), "branch_at": str(self.branch_at)}


def load_analyser(path: str | Path) -> RestoraAnalyser:
    """Build the analyser from a ``.safetensors`` file written by ``training/export.py`` (or
    ``training/fuse_analyser.py``: its header names the branch); eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("restora", "{}"))
    kinds = [k for k in meta.get("branch_kinds", "").split(",") if k]
    model = RestoraAnalyser(branch_kinds=kinds, branch_at=int(meta.get("branch_at", 5)))
    model.load_state_dict(load_file(str(path)))
    return model.eval()
