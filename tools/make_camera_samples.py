"""Regenerate docs/images/camera-noise-samples.png: the camera pipeline (engine.degrade.camera) on a
crop of the bundled astronaut sample at three noise strengths, shown 2x enlarged (nearest) so the
grain is visible. Deterministic (fixed seeds).

Run: .venv/bin/python tools/make_camera_samples.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.degrade.camera import camera_pipeline, sample_camera_params, shot_for_strength, read_for_shot  # noqa: E402


def main() -> int:
    src = np.asarray(Image.open(ROOT / "resources" / "samples" / "astronaut_hazy.png").convert("RGB"), np.float32) / 255
    crop = src[40:200, 150:310]
    panels = [("input", crop)]
    for i, (s, note) in enumerate(((0.2, "mild"), (0.45, "strong"), (0.7, "very strong, resized + re-saved"))):
        p = sample_camera_params(np.random.default_rng(10 + i), noise_strength=s, jpeg=True, second_order=(i == 2))
        p = replace(p, shot=shot_for_strength(s), read=read_for_shot(shot_for_strength(s)))
        out, p = camera_pipeline(crop, seed=10 + i, params=p)
        panels.append((f"s={s} ({note}), JPEG q{p.jpeg_quality}", out))
    scale = 2
    h, w = crop.shape[0] * scale, crop.shape[1] * scale
    canvas = Image.new("RGB", (w * len(panels) + 8 * (len(panels) - 1), h + 22), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (label, img) in enumerate(panels):
        tile = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.NEAREST)
        canvas.paste(tile, (k * (w + 8), 22))
        draw.text((k * (w + 8) + 2, 4), label, fill="black")
    out = ROOT / "docs" / "images" / "camera-noise-samples.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
