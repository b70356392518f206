"""RestoraNet-lite: Restora's fast all-in-one 1x generalist (a NAFNet-style U-Net sized for the CPU).

Design: 4-level U-Net (full, 1/2, 1/4, 1/8 resolution) of gated "NAF-lite" blocks
(LayerNorm over channels → 1x1 expand → depthwise 3x3 → SimpleGate → 1x1, then a gated
1x1 feed-forward), stride-2 convolutions down, 1x1 + PixelShuffle up, additive skips, and a
residual output ``y = x + r``. It has no global pooling, so it is a purely local operator:
tiles with enough overlap give the same result as the whole image.

Input: float32 tensor N x 3 x H x W, sRGB values in [0, 1]; H and W must be multiples of
:data:`SIZE_MULTIPLE` (pad with reflection and crop back; see :func:`pad_to_multiple`).
Output: same shape, *not* clipped (callers clip to [0, 1]).

Conditioning (``GeneralistConfig.cond_dim`` = 6, v2 on): a second input, float32 N x 6, gives
the strength in [0, 1] of each degradation kind to remove, in :data:`engine.kinds.KINDS` order
(0 = leave that kind alone). A small MLP turns it into per-channel scale and shift (FiLM) after
every U-Net stage. The vector is the same for every tile of a photo, so conditioning keeps the
network local.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: H and W of the input must be multiples of this (three stride-2 downsamplings).
SIZE_MULTIPLE = 8


@dataclass(frozen=True)
class GeneralistConfig:
    """Widths and block counts. ``width`` is the channel count at full resolution (doubled per level)."""

    width: int = 16
    enc_blocks: tuple[int, ...] = (1, 1, 2)
    mid_blocks: int = 3
    dec_blocks: tuple[int, ...] = (1, 1, 1)
    #: Length of the per-kind strength vector the network is conditioned on (0: unconditioned v1).
    cond_dim: int = 0
    cond_hidden: int = 64

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "GeneralistConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an N x C x H x W tensor (per pixel)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFLiteBlock(nn.Module):
    """NAFNet block without the (global) channel attention: keeps the net local and tileable."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.dw = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn1 = nn.Conv2d(c, 2 * c, 1)
        self.ffn2 = nn.Conv2d(c, c, 1)
        self.gate = SimpleGate()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.gate(self.dw(self.conv1(self.norm1(x)))))
        x = x + y * self.beta
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + y * self.gamma


class FiLM(nn.Module):
    """Per-kind strengths (N x cond_dim) → per-stage, per-channel ``(scale, shift)``; starts at
    the identity (zero last layer) so an unconditioned checkpoint can be fine-tuned into it."""

    def __init__(self, cond_dim: int, hidden: int, channels: list[int]) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * sum(channels)))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, cond: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        params = self.mlp(cond)
        out, i = [], 0
        for c in self.channels:
            scale = params[:, i:i + c, None, None]
            shift = params[:, i + c:i + 2 * c, None, None]
            out.append((scale, shift))
            i += 2 * c
        return out


class RestoraGeneralist(nn.Module):
    """The fast generalist; see the module docstring for shapes and ranges."""

    def __init__(self, config: GeneralistConfig = GeneralistConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.intro = nn.Conv2d(3, c, 3, padding=1)
        self.outro = nn.Conv2d(c, 3, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFLiteBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFLiteBlock(c) for _ in range(config.mid_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFLiteBlock(c) for _ in range(n)]))
        # start as the identity (zero residual); the gradient still reaches these weights
        nn.init.zeros_(self.outro.weight)
        nn.init.zeros_(self.outro.bias)
        w = config.width
        stage_channels = [w * 2 ** i for i in range(len(config.enc_blocks))]
        stage_channels += [w * 2 ** len(config.enc_blocks)] + stage_channels[::-1][:len(config.dec_blocks)]
        self.film = FiLM(config.cond_dim, config.cond_hidden, stage_channels) if config.cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``cond``: N x cond_dim strengths in [0, 1]; required when the network is conditioned."""
        if self.film is not None:
            if cond is None:
                raise ValueError("this generalist is conditioned: pass the per-kind strengths")
            mods = iter(self.film(cond))
        else:
            mods = None

        def modulate(h: torch.Tensor) -> torch.Tensor:
            if mods is None:
                return h
            scale, shift = next(mods)
            return h * (1.0 + scale) + shift

        h = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            h = modulate(enc(h))
            skips.append(h)
            h = down(h)
        h = modulate(self.middle(h))
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = modulate(dec(up(h) + skip))
        return x + self.outro(h)


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad an N x C x H x W tensor on the bottom/right to multiples of ``multiple``.

    Returns the padded tensor and the original H and W (crop the output back with them)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def restore(model: nn.Module, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``model`` on any-size N x 3 x H x W input in [0, 1] (``cond``: N x 6 strengths for a
    conditioned model); returns the clipped output, same size."""
    padded, h, w = pad_to_multiple(x)
    out = model(padded) if cond is None else model(padded, cond)
    return out[..., :h, :w].clamp(0.0, 1.0)


def load_generalist(path: str | Path) -> RestoraGeneralist:
    """Build the generalist from a ``.safetensors`` file written by ``training/export.py`` (the
    architecture config travels in the file's metadata entry ``"restora"``, a JSON object).
    Returns the module in eval mode."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("restora", "{}"))
    config = GeneralistConfig.from_dict(json.loads(meta["config"])) if "config" in meta else GeneralistConfig()
    model = RestoraGeneralist(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def init_from(model: RestoraGeneralist, path: str | Path) -> None:
    """Copy the weights of a saved generalist (e.g. unconditioned v1) into ``model`` wherever
    names and shapes agree; the rest (e.g. a new FiLM head) keeps its initialisation."""
    from safetensors.torch import load_file

    own = model.state_dict()
    loaded = {k: v for k, v in load_file(str(path)).items() if k in own and own[k].shape == v.shape}
    own.update(loaded)
    model.load_state_dict(own)
