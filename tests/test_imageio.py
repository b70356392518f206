"""Round trips through engine.imageio: formats, bit depths, alpha, gray, palette, CMYK, orientation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from engine.errors import PhotoSaveError
from engine.imageio import SUPPORTED_EXTENSIONS, default_output_format, is_supported, load_photo, save_photo
from engine.imageio.formats import FORMATS, OFFERED_FORMATS, same_output_format
from engine.imageio.orientation import apply_orientation
from engine.imageio.quantize import quantize
from engine.photo import Photo

from imageio_helpers import EXIF_DIR, levels, photo_from_levels, smooth_rgb, unit

LOSSLESS_8 = [("png", {}), ("tiff", {}), ("bmp", {}), ("webp", {"lossless": True})]


@pytest.mark.parametrize("fmt,options", LOSSLESS_8)
def test_8bit_lossless_round_trip_is_exact(tmp_path, fmt, options):
    rgb = levels((23, 37, 3), 8, seed=1)
    out = save_photo(photo_from_levels(rgb), tmp_path / f"out.{fmt}", **options)
    back = load_photo(out)
    assert back.bit_depth == 8 and back.source_format == fmt
    assert back.pixels.dtype == np.float32 and back.pixels.shape == (23, 37, 3)
    assert np.array_equal(quantize(back.pixels, 8), rgb)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_round_trip_is_exact(tmp_path, fmt):
    rgb = levels((19, 29, 3), 16, seed=2)
    out = save_photo(photo_from_levels(rgb), tmp_path / f"out.{fmt}")
    back = load_photo(out)
    assert back.bit_depth == 16
    assert np.array_equal(quantize(back.pixels, 16), rgb)
    assert np.abs(back.pixels - unit(rgb)).max() <= 0.5 / 65535


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_stay_close(tmp_path, fmt):
    pixels = smooth_rgb()
    out = save_photo(Photo(pixels=pixels), tmp_path / f"out.{fmt}", jpeg_quality=95)
    back = load_photo(out)
    mse = float(np.mean((back.pixels - pixels) ** 2))
    assert 10 * np.log10(1.0 / mse) > 38.0


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "bmp"])
def test_16bit_request_for_8bit_format_is_refused(tmp_path, fmt):
    photo = photo_from_levels(levels((8, 8, 3), 16))
    with pytest.raises(PhotoSaveError, match="16-bit"):
        save_photo(photo, tmp_path / "out.img", fmt=fmt, bit_depth=16)
    assert list(tmp_path.iterdir()) == []
    # Without an explicit depth a 16-bit photo is written at 8 bits.
    assert load_photo(save_photo(photo, tmp_path / f"ok.{fmt}")).bit_depth == 8


def test_bit_depth_can_be_changed_explicitly(tmp_path):
    rgb8 = levels((10, 12, 3), 8, seed=3)
    up = load_photo(save_photo(photo_from_levels(rgb8), tmp_path / "up.png", bit_depth=16))
    assert up.bit_depth == 16
    assert np.array_equal(quantize(up.pixels, 8), rgb8)
    down = load_photo(save_photo(photo_from_levels(levels((10, 12, 3), 16)), tmp_path / "down.tif", bit_depth=8))
    assert down.bit_depth == 8


@pytest.mark.parametrize("fmt,depth,options", [
    ("png", 8, {}), ("png", 16, {}), ("tiff", 8, {}), ("tiff", 16, {}), ("webp", 8, {"lossless": True}),
])
def test_alpha_is_kept_bit_exact(tmp_path, fmt, depth, options):
    rgb = levels((21, 17, 3), depth, seed=4)
    alpha = levels((21, 17), depth, seed=5)
    out = save_photo(photo_from_levels(rgb, alpha), tmp_path / f"out.{fmt}", **options)
    back = load_photo(out)
    assert back.alpha is not None and back.alpha.dtype == np.float32 and back.alpha.shape == (21, 17)
    assert np.array_equal(quantize(back.alpha, depth), alpha)
    assert np.array_equal(quantize(back.pixels, depth), rgb)


def test_alpha_is_resized_after_an_upscale(tmp_path):
    alpha = np.zeros((10, 10), np.float32)
    alpha[:, 5:] = 1.0
    photo = Photo(pixels=np.full((20, 20, 3), 0.5, np.float32), alpha=alpha)
    back = load_photo(save_photo(photo, tmp_path / "big.png"))
    assert back.alpha.shape == (20, 20)
    assert back.alpha[:, :8].max() < 0.05 and back.alpha[:, 12:].min() > 0.95


def test_jpeg_drops_alpha_but_keeps_colour(tmp_path):
    rgb = smooth_rgb(16, 16)
    photo = Photo(pixels=rgb, alpha=np.zeros((16, 16), np.float32))
    back = load_photo(save_photo(photo, tmp_path / "out.jpg"))
    assert back.alpha is None
    assert np.abs(back.pixels - rgb).mean() < 0.02


@pytest.mark.parametrize("fmt,depth", [("png", 8), ("png", 16), ("tiff", 16), ("jpeg", 8)])
def test_gray_in_gray_out(tmp_path, fmt, depth):
    gray = levels((15, 22), depth, seed=6)
    Image.fromarray(gray).save(tmp_path / f"in.{fmt}")
    photo = load_photo(tmp_path / f"in.{fmt}")
    assert photo.was_grayscale and photo.bit_depth == depth
    assert np.array_equal(photo.pixels[:, :, 0], photo.pixels[:, :, 2])
    out = save_photo(photo, tmp_path / f"out.{fmt}")
    stored = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert stored.ndim == 2, "a still-neutral gray photo is written as gray"
    back = load_photo(out)
    assert back.was_grayscale
    if fmt != "jpeg":
        assert np.array_equal(quantize(back.pixels[:, :, 0], depth), gray)


def test_gray_photo_that_gained_colour_is_saved_in_colour(tmp_path):
    Image.fromarray(levels((12, 12), 8), mode="L").save(tmp_path / "in.png")
    photo = load_photo(tmp_path / "in.png")
    tinted = photo.pixels.copy()
    tinted[:, :, 0] = np.clip(tinted[:, :, 0] + 0.2, 0, 1)
    out = save_photo(photo.with_pixels(tinted), tmp_path / "out.png")
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (12, 12, 3)
    assert not load_photo(out).was_grayscale


def test_gray_with_alpha_loads(tmp_path):
    gray, alpha = levels((9, 11), 8, seed=7), levels((9, 11), 8, seed=8)
    Image.fromarray(np.stack([gray, alpha], axis=2), mode="LA").save(tmp_path / "la.png")
    photo = load_photo(tmp_path / "la.png")
    assert photo.was_grayscale
    assert np.array_equal(quantize(photo.alpha, 8), alpha)
    assert np.array_equal(quantize(photo.pixels[:, :, 1], 8), gray)


@pytest.mark.parametrize("depth", [8, 16])
def test_gray_with_alpha_is_saved_as_gray_with_alpha(tmp_path, depth):
    """A gray+alpha PNG comes back as gray+alpha (PNG colour type 4) at its depth, every sample
    exact, with its gray ICC profile; not widened to RGBA. Wide enough for several encoder bands."""
    gray, alpha = levels((300, 37), depth, seed=21), levels((300, 37), depth, seed=22)
    icc = bytes(16) + b"GRAY" + bytes(108)
    photo = photo_from_levels(np.repeat(gray[:, :, None], 3, axis=2), alpha, was_grayscale=True, icc_profile=icc)
    out = save_photo(photo, tmp_path / "la.png")
    assert out.read_bytes()[24:26] == bytes([depth, 4])  # IHDR: bit depth, colour type gray+alpha
    back = load_photo(out)
    assert back.was_grayscale and back.bit_depth == depth and back.icc_profile == icc
    assert np.array_equal(quantize(back.pixels[:, :, 0], depth), gray)
    assert np.array_equal(quantize(back.alpha, depth), alpha)
    if depth == 8:
        assert Image.open(out).mode == "LA"


def test_palette_png_loads_with_its_colours_and_transparency(tmp_path):
    indices = np.arange(64, dtype=np.uint8).reshape(8, 8) % 4
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette + [0] * (768 - len(palette)))
    image.save(tmp_path / "pal.png", transparency=3)
    photo = load_photo(tmp_path / "pal.png")
    colours = np.array(palette, np.uint8).reshape(4, 3)
    assert np.array_equal(quantize(photo.pixels, 8), colours[indices])
    assert np.array_equal(quantize(photo.alpha, 8), np.where(indices == 3, 0, 255))


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_loads_as_rgb(tmp_path, suffix):
    rgb = (smooth_rgb(16, 24) * 255).round().astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / f"cmyk{suffix}")
    photo = load_photo(tmp_path / f"cmyk{suffix}")
    assert photo.pixels.shape == (16, 24, 3) and photo.icc_profile is None
    expected = np.asarray(Image.open(tmp_path / f"cmyk{suffix}").convert("RGB"), np.float32) / 255
    assert np.abs(photo.pixels - expected).max() < 0.03


def test_compressed_16bit_tiff_loads_exactly(tmp_path):
    rgb = levels((13, 18, 3), 16, seed=9)
    ok, encoded = cv2.imencode(".tif", rgb[:, :, ::-1])  # OpenCV writes LZW, which tifffile alone cannot read
    assert ok
    (tmp_path / "lzw.tif").write_bytes(encoded.tobytes())
    photo = load_photo(tmp_path / "lzw.tif")
    assert photo.bit_depth == 16
    assert np.array_equal(quantize(photo.pixels, 16), rgb)


def test_float_tiff_loads_as_16bit(tmp_path):
    values = np.random.default_rng(10).random((7, 9, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", values, photometric="rgb")
    photo = load_photo(tmp_path / "float.tif")
    assert photo.bit_depth == 16
    assert np.allclose(photo.pixels, values, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    array = levels((5, 7, 3), 8, seed=orientation)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(apply_orientation(array, orientation), expected)


def test_orientation_applied_once_and_not_again_after_saving(tmp_path):
    source = EXIF_DIR / "orientation6_exif_icc.jpg"
    with Image.open(source) as image:
        width, height = image.size
    photo = load_photo(source)
    assert (photo.height, photo.width) == (width, height)  # rotated 90°: dimensions swapped
    assert photo.metadata.orientation == 6
    for suffix in (".jpg", ".png", ".tif", ".webp"):
        back = load_photo(save_photo(photo, tmp_path / f"upright{suffix}"))
        assert back.metadata.orientation == 1
        assert back.pixels.shape == photo.pixels.shape
        assert np.abs(back.pixels - photo.pixels).mean() < 0.02


def test_orientation_rotates_alpha_with_pixels(tmp_path):
    rgb, alpha = levels((6, 10, 3), 8, seed=11), levels((6, 10), 8, seed=12)
    image = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    exif = image.getexif()
    exif[0x0112] = 8
    image.save(tmp_path / "rot.png", exif=exif)
    photo = load_photo(tmp_path / "rot.png")
    assert np.array_equal(quantize(photo.pixels, 8), np.rot90(rgb, 1))
    assert np.array_equal(quantize(photo.alpha, 8), np.rot90(alpha, 1))


def test_default_output_format_keeps_format_and_depth(tmp_path):
    rgb16 = levels((4, 4, 3), 16)
    assert default_output_format(photo_from_levels(rgb16, source_format="png")) == (".png", 16)
    assert default_output_format(photo_from_levels(rgb16, source_format="raw")) == (".tif", 16)
    assert default_output_format(Photo(pixels=unit(levels((4, 4, 3), 8)), source_format="jpeg")) == (".jpg", 8)
    assert default_output_format(Photo(pixels=unit(levels((4, 4, 3), 8)), source_format="webp")) == (".webp", 8)
    Image.fromarray(levels((4, 4, 3), 8)).save(tmp_path / "x.JPEG")
    assert default_output_format(load_photo(tmp_path / "x.JPEG")) == (".jpeg", 8)


def test_output_format_from_extension_and_errors(tmp_path):
    photo = Photo(pixels=smooth_rgb(8, 8))
    with pytest.raises(PhotoSaveError, match="extension"):
        save_photo(photo, tmp_path / "out.xyz")
    with pytest.raises(PhotoSaveError, match="unknown output format"):
        save_photo(photo, tmp_path / "out.png", fmt="gif")
    written = save_photo(photo, tmp_path / "named.dat", fmt="JPG")
    assert load_photo_format(written) == "JPEG"


def load_photo_format(path):
    with Image.open(path) as image:
        return image.format


def test_supported_extensions():
    for name in ("a.JPG", "b.jpeg", "c.png", "d.TIFF", "e.tif", "f.webp", "g.bmp", "h.DNG", "i.cr2", "j.nef", "k.arw"):
        assert is_supported(name), name
    for name in ("a.txt", "b.gif", "c", "d.pdf"):
        assert not is_supported(name), name
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_registry_declares_what_the_writer_and_loader_do(tmp_path, fmt):
    """Each :data:`FORMATS` entry is true of the files written: every declared bit depth comes
    back at that depth, alpha survives exactly where declared, the first extension is the one a
    "same" output gets, and every extension reads back as the format."""
    spec = FORMATS[fmt]
    for depth in spec.bit_depths:
        photo = photo_from_levels(levels((8, 10, 3), depth, seed=depth), levels((8, 10), depth, seed=3),
                                  source_format=fmt)
        for extension in spec.extensions:
            back = load_photo(save_photo(photo, tmp_path / f"{depth}{extension}", bit_depth=depth))
            assert back.source_format == fmt and back.bit_depth == depth
            assert (back.alpha is not None) == spec.alpha, (fmt, extension)
        assert default_output_format(photo)[0] == spec.extension
    for depth in {8, 16} - set(spec.bit_depths):
        with pytest.raises(PhotoSaveError, match="cannot store"):
            save_photo(photo_from_levels(levels((4, 4, 3), 16)), tmp_path / f"refused{spec.extension}",
                       bit_depth=depth)
    assert set(OFFERED_FORMATS) <= set(FORMATS) and same_output_format("raw") == "tiff"


def test_saving_does_not_modify_the_photo(tmp_path):
    photo = photo_from_levels(levels((8, 9, 3), 16), levels((4, 5), 16))
    before_pixels, before_alpha = photo.pixels.copy(), photo.alpha.copy()
    save_photo(photo, tmp_path / "a.png")
    assert np.array_equal(photo.pixels, before_pixels) and np.array_equal(photo.alpha, before_alpha)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantize_rounds_to_the_nearest_level(bit_depth):
    top = 255 if bit_depth == 8 else 65535
    steps = np.arange(top + 1, dtype=np.float64)
    assert np.array_equal(quantize(((steps + 0.4) / top).astype(np.float32), bit_depth), steps)
    assert np.array_equal(quantize(((steps[:-1] + 0.6) / top).astype(np.float32), bit_depth), steps[1:])
    assert quantize(np.array([-0.5, np.nan, 2.0], np.float32), bit_depth).tolist() == [0, 0, top]


def test_tiff_orientation_and_alpha(tmp_path):
    rgba = levels((6, 10, 4), 16, seed=13)
    tifffile.imwrite(tmp_path / "rot.tif", rgba, photometric="rgb", extrasamples=("unassalpha",),
                     extratags=[(274, "H", 1, 6, True)])
    photo = load_photo(tmp_path / "rot.tif")
    assert photo.metadata.orientation == 6 and photo.bit_depth == 16
    assert np.array_equal(quantize(photo.pixels, 16), np.rot90(rgba[:, :, :3], -1))
    assert np.array_equal(quantize(photo.alpha, 16), np.rot90(rgba[:, :, 3], -1))


def test_16bit_gray_alpha_png_loads(tmp_path):
    import zlib

    from engine.imageio.png_chunks import PNG_SIGNATURE, png_chunk

    gray, alpha = levels((5, 7), 16, seed=14), levels((5, 7), 16, seed=15)
    interleaved = np.dstack([gray, alpha]).astype(">u2")
    rows = b"".join(b"\x00" + interleaved[row].tobytes() for row in range(5))
    header = np.array([7, 5], ">u4").tobytes() + bytes([16, 4, 0, 0, 0])  # 16-bit gray + alpha
    png = PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    (tmp_path / "la16.png").write_bytes(png)
    photo = load_photo(tmp_path / "la16.png")
    assert photo.was_grayscale and photo.bit_depth == 16
    assert np.array_equal(quantize(photo.pixels[:, :, 0], 16), gray)
    assert np.array_equal(quantize(photo.alpha, 16), alpha)


def test_a_tiff_with_a_preview_first_loads_its_main_image(tmp_path):
    """Some writers put a reduced-resolution preview (NewSubfileType 1) before the photo: the photo
    is what is loaded (it used to be the 30 x 40 preview, restored and saved as the result), with the
    profile and orientation the first page carries, and its size is what the header probe says."""
    from engine.imageio.loading import probe_size

    rgb = levels((300, 400, 3), 16, seed=31)
    icc = bytes(16) + b"RGB " + bytes(108)
    with tifffile.TiffWriter(tmp_path / "preview_first.tif") as tif:
        tif.write((rgb[::10, ::10] >> 8).astype(np.uint8), photometric="rgb", subfiletype=1, iccprofile=icc,
                  extratags=[(274, "H", 1, 6, True)])
        tif.write(rgb, photometric="rgb")
    photo = load_photo(tmp_path / "preview_first.tif")
    assert photo.bit_depth == 16 and photo.frames == 1 and photo.icc_profile == icc
    assert photo.metadata.orientation == 6
    assert np.array_equal(quantize(photo.pixels, 16), np.rot90(rgb, -1))
    assert probe_size(tmp_path / "preview_first.tif") == (400, 300)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_png_colour_key_becomes_alpha(tmp_path, mode):
    """A PNG made transparent by a colour key (tRNS, no alpha channel) keeps its transparency:
    restoration changes the keyed colour, so the key becomes an alpha channel (it was dropped)."""
    samples = levels((6, 9, 3) if mode == "RGB" else (6, 9), 8, seed=41)
    key = tuple(int(v) for v in np.atleast_1d(samples[2, 3]))
    Image.fromarray(samples, mode=mode).save(tmp_path / "keyed.png", transparency=key if mode == "RGB" else key[0])
    photo = load_photo(tmp_path / "keyed.png")
    keyed = (samples == samples[2, 3]).all(axis=-1) if mode == "RGB" else samples == samples[2, 3]
    assert photo.alpha is not None and np.array_equal(photo.alpha == 0, keyed)
    assert photo.was_grayscale == (mode == "L")
    out = Image.open(save_photo(photo, tmp_path / "out.png"))
    assert out.mode == ("RGBA" if mode == "RGB" else "LA")
