"""Regenerate the bundled sample photos in resources/samples/.

The clean originals are public-domain / CC0 photographs that ship inside scikit-image's wheel
(``skimage/data``); see resources/samples/SOURCES.md. They are degraded with Restora's own
synthetic generators (engine.degrade) at fixed seeds, so the samples are reproducible:

    python tools/make_samples.py PATH/TO/skimage/data

(``pip download --no-deps scikit-image`` and unzip the wheel to get that folder.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.degrade import degrade_chain  # noqa: E402

# output name, source file, longest side in px, degradation chain, output format
SAMPLES = [
    ("cat_noisy.png", "chelsea.png", 451, [("noise", 0.45)]),
    ("coffee_dark.png", "coffee.png", 400, [("lowlight", 0.7), ("noise", 0.15)]),
    ("rocket_blocky.jpg", "rocket.jpg", 427, [("jpeg", 0.85)]),
    ("astronaut_hazy.png", "astronaut.png", 384, [("haze", 0.55)]),
]


def main(data_dir: str) -> None:
    out_dir = REPO / "resources" / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, source, longest, chain) in enumerate(SAMPLES):
        rgb = np.asarray(Image.open(Path(data_dir) / source).convert("RGB"), dtype=np.float32) / 255.0
        h, w = rgb.shape[:2]
        f = longest / max(h, w)
        if f < 1:
            rgb = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        jpeg_steps = [s for s in chain if s[0] == "jpeg"]
        other = [s for s in chain if s[0] != "jpeg"]
        img = degrade_chain(rgb, other, seed=100 + i) if other else rgb
        target = out_dir / name
        if jpeg_steps:
            quality = round(95 - 85 * jpeg_steps[0][1])
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(target, quality=quality)
        else:
            Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(target, optimize=True)
        print(f"{target.relative_to(REPO)}: {img.shape[1]}x{img.shape[0]} {chain}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
