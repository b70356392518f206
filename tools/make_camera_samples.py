"""Regenerate docs/images/camera-noise-samples.png: the camera pipeline (engine.degrade.camera) on a
crop of the bundled astronaut sample at three noise strengths (and one without the in-camera luma
noise reduction, for contrast), shown 2x enlarged (nearest) so the grain is visible; labels give the
JPEG quality and the luma / chroma noise-reduction σ. Deterministic (fixed seeds).

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
    cases = ((0.3, "mild", 0, True), (0.55, "strong", 1, True), (0.55, "strong, no luma NR", 1, False),
             (0.8, "very strong, resized + re-saved", 2, True))
    for s, note, i, nr in cases:
        p = sample_camera_params(np.random.default_rng(10 + i), noise_strength=s, jpeg=True, second_order=(i == 2))
        p = replace(p, shot=shot_for_strength(s), read=read_for_shot(shot_for_strength(s)))
        if not nr:
            p = replace(p, luma_nr=0.0)
        out, p = camera_pipeline(crop, seed=10 + i, params=p)
        panels.append((f"s={s} ({note}), q{p.jpeg_quality}, NR {p.luma_nr:.1f}/{p.chroma_nr:.1f}px", out))
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
