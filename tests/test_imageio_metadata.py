"""EXIF, camera metadata and ICC profiles through engine.imageio."""

from __future__ import annotations

import hashlib

import exifread
import numpy as np
import pytest
from PIL import Image

from engine.imageio import load_photo, save_photo
from engine.imageio.exif import exif_for_output
from engine.imageio.metadata import tidy_camera
from engine.photo import Photo

from imageio_helpers import EXIF_DIR, smooth_rgb

CANON = EXIF_DIR / "canon_eos40d_exif_icc.jpg"


def exifread_tags(path):
    with open(path, "rb") as handle:
        return exifread.process_file(handle, details=False)


def test_camera_metadata_is_read():
    tags = exifread_tags(CANON)
    photo = load_photo(CANON)
    meta = photo.metadata
    assert meta.camera == str(tags["Image Model"])  # "Canon EOS 40D": make already in the model
    assert meta.iso == int(str(tags["EXIF ISOSpeedRatings"]))
    assert meta.exposure_s == pytest.approx(float(tags["EXIF ExposureTime"].values[0]))
    assert meta.aperture_f == pytest.approx(float(tags["EXIF FNumber"].values[0]))
    assert meta.focal_length_mm == pytest.approx(float(tags["EXIF FocalLength"].values[0]))
    assert meta.date == str(tags["EXIF DateTimeOriginal"]).replace(":", "-", 2)
    assert meta.orientation == 1
    assert photo.exif is not None and photo.exif[:4] in (b"II*\x00", b"MM\x00*")
    assert meta.camera in meta.summary() and f"ISO {meta.iso}" in meta.summary()


def test_loading_never_modifies_the_input():
    before = hashlib.sha256(CANON.read_bytes()).hexdigest()
    load_photo(CANON)
    assert hashlib.sha256(CANON.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_exif_survives_for_exifread(tmp_path, suffix):
    source = exifread_tags(CANON)
    out = save_photo(load_photo(CANON), tmp_path / f"out{suffix}")
    tags = exifread_tags(out)
    for name in ("Image Make", "Image Model", "EXIF ISOSpeedRatings", "EXIF ExposureTime", "EXIF FNumber",
                 "EXIF DateTimeOriginal"):
        assert str(tags.get(name)) == str(source[name]), name
    assert load_photo(out).metadata.camera == "Canon EOS 40D"


def test_exif_survives_in_webp(tmp_path):
    out = save_photo(load_photo(CANON), tmp_path / "out.webp")
    with Image.open(out) as image:
        exif = image.getexif()
        assert exif[0x0110] == "Canon EOS 40D"
        assert exif.get_ifd(0x8769)[0x8827] == 100  # ISO
    assert load_photo(out).metadata.iso == 100


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_icc_profile_survives(tmp_path, suffix):
    photo = load_photo(CANON)
    assert photo.icc_profile is not None and len(photo.icc_profile) > 128
    back = load_photo(save_photo(photo, tmp_path / f"out{suffix}"))
    assert back.icc_profile == photo.icc_profile


def test_gray_profile_is_not_put_on_a_colour_image(tmp_path):
    from PIL import ImageCms

    gray_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    fake_gray = gray_profile[:16] + b"GRAY" + gray_profile[20:]
    photo = Photo(pixels=smooth_rgb(8, 8), icc_profile=fake_gray)
    back = load_photo(save_photo(photo, tmp_path / "out.png"))
    assert back.icc_profile is None


def test_saved_exif_says_upright_and_has_the_new_size():
    photo = load_photo(EXIF_DIR / "orientation6_exif_icc.jpg")
    exif = exif_for_output(photo.exif, 320, 240)
    assert exif is not None and exif[0x0112] == 1
    canon = exif_for_output(load_photo(CANON).exif, 200, 136)
    sub = canon.get_ifd(0x8769)
    assert (sub[0xA002], sub[0xA003]) == (200, 136)


def test_saved_exif_orientation_is_one_in_the_file(tmp_path):
    out = save_photo(load_photo(EXIF_DIR / "orientation6_exif_icc.jpg"), tmp_path / "out.jpg")
    with Image.open(out) as image:
        assert image.getexif().get(0x0112) == 1


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_is_dropped_not_fatal(tmp_path):
    photo = Photo(pixels=smooth_rgb(8, 8), exif=b"II*\x00" + b"\xff" * 40)
    out = save_photo(photo, tmp_path / "out.jpg")
    assert load_photo(out).pixels.shape == (8, 8, 3)


@pytest.mark.parametrize("make,model,expected", [
    ("Canon", "Canon EOS 40D", "Canon EOS 40D"),
    ("NIKON CORPORATION", "NIKON D70", "Nikon D70"),
    ("NIKON", "COOLPIX P6000", "Nikon COOLPIX P6000"),
    ("OLYMPUS IMAGING CORP.", "E-M5", "Olympus E-M5"),
    ("Acme Widgets Co., Ltd.", "Snap 1", "Acme Widgets Snap 1"),
    (None, "Phone X", "Phone X"),
    ("SONY", None, "Sony"),
    (None, None, None),
])
def test_tidy_camera(make, model, expected):
    assert tidy_camera(make, model) == expected


def test_all_sample_exif_files_give_camera_facts():
    files = sorted(EXIF_DIR.glob("*.jpg"))
    assert files, f"no sample files in {EXIF_DIR}"
    for path in files:
        photo = load_photo(path)
        assert np.isfinite(photo.pixels).all()
        if "orientation" not in path.name:
            assert photo.metadata.camera and photo.metadata.iso, path.name


def test_exif_read_back_from_our_own_tiff_carries_on(tmp_path):
    first = load_photo(save_photo(load_photo(CANON), tmp_path / "first.tif"))
    assert first.metadata.iso == 100 and first.metadata.camera == "Canon EOS 40D"
    second = save_photo(first, tmp_path / "second.jpg")
    assert str(exifread_tags(second)["EXIF ISOSpeedRatings"]) == "100"
