"""Before/after pictures of the real photos without ground truth (``../shared/data/real``): the
default plan (what ``restora restore`` does), side by side with the input, as a small JPEG under
``docs/images/`` with the plan's stages printed below.

Run: ``python benchmarks/before_after.py [NAME ...]`` (default: the dark photos ``lowlight_*``).
A NAME with a ``/`` is a path under ``../shared/data`` (e.g. a hazy or rainy input of
``pairs/``: no real hazy or rainy photo without ground truth is in ``data/real``); the picture
is then named after the file's stem. ``--crop N``: show the centre N x N pixels, enlarged to the
picture's half width (a whole photo downscaled to that width hides noise), named ``…-crop.jpg``.
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

    crop = None
    if "--crop" in argv:
        i = argv.index("--crop")
        crop = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    names = argv or sorted(p.name for p in REAL.glob("lowlight_*"))
    if not REAL.is_dir():
        print(f"{REAL} not found", file=sys.stderr)
        return 2
    restorer = Restorer(build_registry())
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = SHARED / "data" / name if "/" in name else REAL / name
        photo = load_photo(source)
        name = source.name
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        kept = [f"{s['stage']} ({s['expert']})" for s in result.stages if not s.get("dropped")]
        caption = f"{name}: before | after: {', '.join(kept) or 'left as it is'}"
        before, after = photo.pixels[..., :3], restored.pixels[..., :3]
        suffix = ""
        if crop:
            h, w = before.shape[:2]
            y, x = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            before, after = before[y:y + crop, x:x + crop], after[y:y + crop, x:x + crop]
            caption = (f"{name} (centre {crop} px shown at {HALF_WIDTH / crop:.3g}x): before | after: "
                       f"{', '.join(kept) or 'left as it is'}")
            suffix = "-crop"
        target = OUT / f"before-after-{Path(name).stem}{suffix}.jpg"
        side_by_side(before, after, caption).save(target, quality=85)
        print(f"{target.relative_to(ROOT)}: {caption}")
        for s in result.stages:
            if s.get("dropped"):
                print(f"  dropped {s['stage']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
