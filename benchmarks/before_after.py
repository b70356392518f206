"""Before/after pictures of the real photos without ground truth (``../shared/data/real``): the
default plan (what ``restora restore`` does), side by side with the input, as a small JPEG under
``docs/images/`` with the plan's stages printed below.

Run: ``python benchmarks/before_after.py [--crop] [NAME ...]`` (default: the dark photos
``lowlight_*``). ``--crop`` also writes ``before-after-<name>-crop.jpg``: the centre
:data:`CROP` px of both at full resolution, where deblurring shows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
REAL = SHARED / "data" / "real"
OUT = ROOT / "docs" / "images"
#: Width of each half of the side-by-side picture, px.
HALF_WIDTH = 360
#: Side of the full-resolution centre crop (``--crop``), px.
CROP = 360


def side_by_side(before: np.ndarray, after: np.ndarray, caption: str):
    """The two images side by side (each :data:`HALF_WIDTH` px wide) over ``caption``: a PIL image."""
    from PIL import Image, ImageDraw

    def half(a: np.ndarray) -> Image.Image:
        im = Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))
        return im.resize((HALF_WIDTH, max(1, round(im.height * HALF_WIDTH / im.width))), Image.LANCZOS)

    b, a = half(before), half(after)
    canvas = Image.new("RGB", (2 * HALF_WIDTH + 8, b.height + 22), "white")
    canvas.paste(b, (0, 0))
    canvas.paste(a, (HALF_WIDTH + 8, 0))
    ImageDraw.Draw(canvas).text((4, b.height + 5), caption, fill="black")
    return canvas


def main(argv: list[str]) -> int:
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions

    crop = "--crop" in argv
    argv = [a for a in argv if a != "--crop"]
    names = argv or sorted(p.name for p in REAL.glob("lowlight_*"))
    if not REAL.is_dir():
        print(f"{REAL} not found", file=sys.stderr)
        return 2
    restorer = Restorer(build_registry())
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        photo = load_photo(REAL / name)
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        kept = [f"{s['stage']} ({s['expert']})" for s in result.stages if not s.get("dropped")]
        caption = f"{name}: before | after: {', '.join(kept) or 'left as it is'}"
        target = OUT / f"before-after-{Path(name).stem}.jpg"
        side_by_side(photo.pixels[..., :3], restored.pixels[..., :3], caption).save(target, quality=85)
        print(f"{target.relative_to(ROOT)}: {caption}")
        if crop:
            h, w = photo.pixels.shape[:2]
            c = min(CROP, h, w)
            y, x = (h - c) // 2, (w - c) // 2
            parts = [a[y:y + c, x:x + c, :3] for a in (photo.pixels, restored.pixels)]
            target = OUT / f"before-after-{Path(name).stem}-crop.jpg"
            side_by_side(*parts, f"{name}, centre {c} px at full size").save(target, quality=85)
            print(f"{target.relative_to(ROOT)}")
        for s in result.stages:
            if s.get("dropped"):
                print(f"  dropped {s['stage']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
