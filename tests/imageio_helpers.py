"""Small builders shared by the tests/test_imageio*.py files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from engine.photo import Photo

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def camera_jpeg(path: Path, *, make: str, model: str, iso: int, orientation: int = 1,
                size: tuple[int, int] = (200, 136)) -> Path:
    """A JPEG like a camera's: EXIF (make, model, ISO, exposure, aperture, focal length, date,
    orientation) in IFD0 and the EXIF sub-directory, and an sRGB ICC profile."""
    from PIL import Image, ImageCms
    from PIL.TiffImagePlugin import IFDRational

    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 9.0)], axis=2)
    image = Image.fromarray(np.round(rgb * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[271], exif[272], exif[274], exif[306] = make, model, orientation, "2008:05:30 15:56:01"
    sub = exif.get_ifd(0x8769)
    sub[0x8827] = iso
    sub[0x829A] = IFDRational(1, 160)
    sub[0x829D] = IFDRational(71, 10)
    sub[0x920A] = IFDRational(135, 1)
    sub[0xA002], sub[0xA003] = width, height
    sub[0x9003] = "2008:05:30 15:56:01"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc)
    return path


def _exif_dir() -> Path:
    """``../shared/data/exif`` when present, else the same file names generated once per run,
    so the metadata tests never depend on the shared data."""
    shared = DATA / "exif"
    if shared.is_dir():
        return shared
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="restora-exif-"))
    camera_jpeg(folder / "canon_eos40d_exif_icc.jpg", make="Canon", model="Canon EOS 40D", iso=100)
    camera_jpeg(folder / "canon_powershot_g9_exif_icc.jpg", make="Canon", model="Canon PowerShot G9", iso=80,
                size=(320, 240))
    camera_jpeg(folder / "orientation6_exif_icc.jpg", make="Canon", model="Canon EOS 40D", iso=100,
                orientation=6, size=(120, 80))
    return folder


EXIF_DIR = _exif_dir()


def levels(shape: tuple[int, ...], bit_depth: int, seed: int = 0) -> np.ndarray:
    """Random integer samples of ``bit_depth`` (uint8 / uint16) with every extreme present."""
    rng = np.random.default_rng(seed)
    top = 255 if bit_depth == 8 else 65535
    values = rng.integers(0, top + 1, size=shape, dtype=np.int64)
    values.flat[0] = 0
    values.flat[-1] = top
    return values.astype(np.uint8 if bit_depth == 8 else np.uint16)


def unit(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max)


def photo_from_levels(rgb: np.ndarray, alpha: Optional[np.ndarray] = None, **kwargs) -> Photo:
    """A Photo whose pixels (and alpha) are exactly the given integer levels."""
    depth = 8 if rgb.dtype == np.uint8 else 16
    return Photo(pixels=unit(rgb), alpha=None if alpha is None else unit(alpha), bit_depth=depth, **kwargs)


def smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth float32 colour image in [0, 1] (compresses well, so lossy codecs stay close)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 9.0)], axis=2).astype(np.float32)
