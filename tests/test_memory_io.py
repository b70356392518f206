"""Decoding and saving without a second full-size image: decoded samples are released as they
become float pixels, a one-shot save releases the float pixels as it quantises them, the in-place
tiler keeps strips instead of a row of tiles, and the deblurrer's PSF search reads only its crop.
Asserted: the same values and the same file bytes as the ordinary paths, and the release logic
(which rows read as zeros, what scratch is allocated); never timings or resident-memory numbers."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from engine.imageio import load_photo, save_photo
from engine.imageio.quantize import (
    QUANTIZE_BAND_ROWS,
    RELEASABLE_MIN_BYTES,
    quantize,
    release_rows,
    releasable_empty,
    to_unit_float,
)


def _samples(h: int, w: int, c: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, c)) * top).astype(dtype)


def _whole_page_rows(array: np.ndarray, stop: int) -> int:
    """Rows ``[0, n)`` of ``array`` lying wholly in the pages that releasing rows ``[0, stop)`` gives back."""
    row = array.nbytes // array.shape[0]
    return stop * row // 4096 * 4096 // row


def test_a_releasable_array_gives_back_only_the_rows_asked_for():
    a = releasable_empty((2000, 700, 3), np.uint8)
    assert a.nbytes >= RELEASABLE_MIN_BYTES and a.flags.c_contiguous and a.flags.writeable
    a[...] = 7
    release_rows(a, 0, 1000)
    assert not a[:_whole_page_rows(a, 1000)].any() and (a[1001:] == 7).all()
    plain = np.full((2000, 700, 3), 7, np.uint8)
    release_rows(plain, 0, 2000)  # an ordinary array is left as it is
    release_rows(a[1001:], 0, 999)  # so is a view that does not start at the first row
    assert (plain == 7).all() and (a[1001:] == 7).all()
    assert not isinstance(releasable_empty((10, 10, 3), np.float32).base, memoryview)  # small: plain


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_to_unit_float_consuming_its_samples_gives_the_same_values(dtype):
    samples = _samples(1500, 1001, 3, dtype)
    expected = samples.astype(np.float32)
    expected /= float(np.iinfo(dtype).max)
    owned = releasable_empty(samples.shape, dtype)
    owned[...] = samples
    got = to_unit_float(owned, consume=True)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert not owned[:_whole_page_rows(owned, QUANTIZE_BAND_ROWS)].any()  # converted rows were released
    assert np.array_equal(to_unit_float(samples), expected) and samples.any()  # not consumed: untouched


@pytest.mark.parametrize("depth", [8, 16])
def test_quantize_consuming_its_values_gives_the_same_samples(depth):
    values = to_unit_float(_samples(1200, 999, 3, np.uint16))
    expected = quantize(values.copy(), depth)
    got = quantize(values, depth, consume=True)
    assert np.array_equal(got, expected)
    assert not values[:_whole_page_rows(values, QUANTIZE_BAND_ROWS)].any()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_decoded_pixels_equal_the_plain_conversion(tmp_path, mode):
    channels = len(mode)
    samples = _samples(1100, 1300, channels, seed=1)
    path = tmp_path / "a.png"
    Image.fromarray(samples[:, :, 0] if channels == 1 else samples, mode).save(path, compress_level=1)
    photo = load_photo(path)
    colour = samples[:, :, :3] if channels >= 3 else np.repeat(samples[:, :, :1], 3, axis=2)
    expected = colour.astype(np.float32)
    expected /= 255.0
    assert np.array_equal(photo.pixels, expected)
    assert photo.pixels.flags.c_contiguous and photo.pixels.flags.writeable
    if channels in (2, 4):
        alpha = samples[:, :, -1].astype(np.float32)
        alpha /= 255.0
        assert np.array_equal(photo.alpha, alpha)


def _with_metadata(tmp_path):
    """A JPEG carrying EXIF and an ICC profile, a 16-bit PNG and a 16-bit TIFF with alpha."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Restora test"
    exif[0x0112] = 1
    rgb = _samples(900, 1400, 3, seed=2)
    jpeg = tmp_path / "in.jpg"
    Image.fromarray(rgb).save(jpeg, quality=92, exif=exif.tobytes(), icc_profile=icc)
    import cv2
    import tifffile

    rgba16 = _samples(900, 1400, 4, np.uint16, seed=3)
    png16 = tmp_path / "in16.png"
    cv2.imwrite(str(png16), rgba16[:, :, [2, 1, 0, 3]])
    tif16 = tmp_path / "in16.tif"
    tifffile.imwrite(tif16, rgba16, photometric="rgb", extrasamples=("unassalpha",), compression="zlib")
    return [jpeg, png16, tif16]


def test_a_consuming_save_writes_the_same_bytes_and_leaves_a_hollow_photo(tmp_path):
    for source in _with_metadata(tmp_path):
        ordinary = tmp_path / f"ordinary{source.suffix}"
        consumed = tmp_path / f"consumed{source.suffix}"
        save_photo(load_photo(source), ordinary)
        photo = load_photo(source)
        size = (photo.width, photo.height)
        save_photo(photo, consumed, consume=True)
        assert ordinary.read_bytes() == consumed.read_bytes(), source.name
        assert (photo.width, photo.height) == size and photo.pixels.nbytes == 0 and photo.alpha is None
    with Image.open(tmp_path / "consumed.jpg") as im:  # EXIF and ICC kept
        assert im.info.get("icc_profile") and im.getexif().get(0x010F) == "Restora test"


def _local(tile: np.ndarray) -> np.ndarray:
    return (tile + np.roll(tile, 3, 0)) * np.float32(0.5) - tile.mean(dtype=np.float32) * np.float32(0.01)


def test_the_in_place_tiler_holds_strips_not_a_row_of_tiles():
    from engine.experts.classical.tiles import map_tiles
    from engine.progress import Progress

    h, w, tile, overlap = 400, 3000, 64, 8
    img = np.random.default_rng(4).random((h, w, 3), dtype=np.float32)
    expected = map_tiles(img, _local, tile, overlap, Progress())
    work = img.copy()
    tracemalloc.start()
    try:
        map_tiles(work, _local, tile, overlap, Progress(), in_place=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(work, expected)
    row_of_tiles = (tile + 2 * overlap) * w * 3 * 4
    assert peak < row_of_tiles / 2, (peak, row_of_tiles)


def test_the_psf_estimate_from_the_central_crop_equals_the_estimate_from_the_whole_luminance():
    import cv2

    from engine.color import luminance
    from engine.experts.classical.psf_estimation import central_region, estimate_psf

    rng = np.random.default_rng(5)
    img = cv2.GaussianBlur(rng.random((700, 1100, 3), dtype=np.float32), (0, 0), 2.5)
    whole = estimate_psf(luminance(img), 0.01)
    crop = estimate_psf(luminance(img[central_region(700, 1100)]), 0.01)
    assert (whole.family, whole.size, whole.angle_deg, whole.score) == (crop.family, crop.size, crop.angle_deg,
                                                                        crop.score)
    assert np.array_equal(whole.kernel, crop.kernel)


def test_the_range_guard_counts_band_by_band_what_the_whole_image_gives(tmp_path):
    from engine.analysis.measurements import newly_clipped_fraction
    from engine.pipeline.orchestrator import newly_clipped_share
    from engine.pipeline.spill import SpilledArray

    rng = np.random.default_rng(6)
    image = rng.random((700, 300, 3), dtype=np.float32)
    delta = rng.normal(0.0, 0.3, image.shape).astype(np.float32)
    whole = newly_clipped_fraction(image, np.clip(image + delta, 0.0, 1.0))
    assert 0.1 < whole < 0.9
    assert newly_clipped_share(image, delta) == whole
    on_disk = SpilledArray.create(tmp_path, delta.shape)
    on_disk.write_rows(0, delta)
    assert newly_clipped_share(image, on_disk) == whole
    on_disk.close()


def test_release_rows_follows_channel_views_and_refuses_reordered_ones():
    a = releasable_empty((2000, 700, 4), np.uint8)
    a[...] = 5
    for view in (np.rot90(a), a[::-1], a.transpose(1, 0, 2), a[10:]):
        release_rows(view, 0, view.shape[0])
    assert (a == 5).all()
    release_rows(a[:, :, :3], 0, 1000)  # the colour of an RGBA array: its rows go, alpha included
    assert not a[:_whole_page_rows(a, 1000)].any() and (a[1001:] == 5).all()


def test_a_sixteen_bit_tiff_decodes_to_the_plain_conversion(tmp_path):
    import tifffile

    for channels in (3, 4):
        samples = _samples(1000, 1200, channels, np.uint16, seed=7)
        path = tmp_path / f"a{channels}.tif"
        tifffile.imwrite(path, samples, photometric="rgb", compression="zlib",
                         extrasamples=("unassalpha",) if channels == 4 else None)
        photo = load_photo(path)
        expected = samples[:, :, :3].astype(np.float32)
        expected /= 65535.0
        assert np.array_equal(photo.pixels, expected) and photo.bit_depth == 16
        if channels == 4:
            alpha = samples[:, :, 3].astype(np.float32)
            alpha /= 65535.0
            assert np.array_equal(photo.alpha, alpha)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_sixteen_bit_png_decodes_into_releasable_rows_with_the_plain_values(tmp_path, channels):
    """OpenCV decodes a 16-bit PNG into an array of its own; the samples are copied out of it (BGR
    to RGB) into a releasable array, so the float conversion gives their rows back as it goes:
    the same samples and pixels as OpenCV's plain decoding."""
    import cv2

    from engine.imageio.loading import photo_from_raster
    from engine.imageio.raster import RELEASE_COPY_ROWS, load_raster

    samples = _samples(8 * RELEASE_COPY_ROWS + 37, 1200, channels, np.uint16, seed=11)  # over RELEASABLE_MIN_BYTES
    path = tmp_path / "a16.png"
    cv2.imwrite(str(path), samples[:, :, 0] if channels == 1 else samples[:, :, [2, 1, 0, 3][:channels]])
    raster = load_raster(path, 10**9)
    assert raster.bit_depth == 16 and np.array_equal(raster.samples.reshape(samples.shape), samples)
    rows = raster.samples.shape[0]
    probe = raster.samples[:, :, :1]
    release_rows(probe, 0, rows)  # releasable: its whole pages read as zeros afterwards
    assert not raster.samples[:_whole_page_rows(raster.samples, rows)].any()
    photo = photo_from_raster(load_raster(path, 10**9), path)
    colour = np.repeat(samples[:, :, :1], 3, axis=2) if channels == 1 else samples[:, :, :3]
    expected = colour.astype(np.float32)
    expected /= 65535.0
    assert np.array_equal(photo.pixels, expected)
    if channels == 4:
        alpha = samples[:, :, 3].astype(np.float32)
        alpha /= 65535.0
        assert np.array_equal(photo.alpha, alpha)
