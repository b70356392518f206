"""Bad input gives one clear line; outputs are atomic and never overwritten by accident."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import engine.imageio.saving as saving
from engine.errors import OutputExistsError, PhotoLoadError, PhotoSaveError, RestoraError, UnsupportedFormatError
from engine.imageio import atomic_output, atomic_write_bytes, load_photo, save_photo
from engine.photo import Photo

from imageio_helpers import EXIF_DIR, levels, smooth_rgb


def assert_one_line(err: Exception, name: str) -> None:
    text = str(err)
    assert "\n" not in text and len(text) < 300, text
    assert name in text, text
    assert isinstance(err, RestoraError)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, followed by one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def load_error(path, **kwargs) -> PhotoLoadError:
    with pytest.raises(PhotoLoadError) as info:
        load_photo(path, **kwargs)
    return info.value


def test_truncated_jpeg(tmp_path):
    data = (EXIF_DIR / "canon_powershot_g9_exif_icc.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    err = load_error(tmp_path / "cut.jpg")
    assert_one_line(err, "cut.jpg")
    assert "truncated" in str(err)


def test_truncated_png(tmp_path):
    Image.fromarray(levels((64, 64, 3), 8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    err = load_error(tmp_path / "cut.png")
    assert_one_line(err, "cut.png")
    assert "truncated" in str(err)


def test_truncated_16bit_png(tmp_path):
    save_photo(Photo(pixels=smooth_rgb(64, 64), bit_depth=16), tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(data[: len(data) // 2])
    assert_one_line(load_error(tmp_path / "cut16.png"), "cut16.png")


def test_truncated_tiff(tmp_path):
    save_photo(Photo(pixels=smooth_rgb(64, 64), bit_depth=16), tmp_path / "full.tif")
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    assert_one_line(load_error(tmp_path / "cut.tif"), "cut.tif")


def test_random_bytes_with_jpeg_extension(tmp_path):
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    err = load_error(tmp_path / "noise.jpg")
    assert_one_line(err, "noise.jpg")
    assert not isinstance(err, UnsupportedFormatError)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert_one_line(load_error(tmp_path / "empty.png"), "empty.png")


def test_unknown_format(tmp_path):
    (tmp_path / "notes.txt").write_text("not a photo")
    err = load_error(tmp_path / "notes.txt")
    assert isinstance(err, UnsupportedFormatError)
    assert_one_line(err, "notes.txt")


def test_other_image_format_behind_a_supported_extension(tmp_path):
    Image.fromarray(levels((8, 8, 3), 8)).save(tmp_path / "really_a_gif.png", format="GIF")
    assert_one_line(load_error(tmp_path / "really_a_gif.png"), "really_a_gif.png")


def test_missing_file_and_folder(tmp_path):
    err = load_error(tmp_path / "nowhere.jpg")
    assert_one_line(err, "nowhere.jpg")
    assert "no such file" in str(err)
    (tmp_path / "album.jpg").mkdir()
    assert_one_line(load_error(tmp_path / "album.jpg"), "album.jpg")


def test_decompression_bomb_refused_by_pillow_limit(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    err = load_error(tmp_path / "bomb.png")
    assert_one_line(err, "bomb.png")
    assert "too large" in str(err)


def test_decompression_bomb_refused_by_our_limit_before_decoding(tmp_path):
    (tmp_path / "big.png").write_bytes(png_header_only(5000, 4000))
    err = load_error(tmp_path / "big.png", max_pixels=1_000_000)
    assert_one_line(err, "big.png")
    assert "too large" in str(err) and "5000x4000" in str(err)


def test_bad_input_file_is_not_modified(tmp_path):
    data = np.random.default_rng(1).bytes(2048)
    (tmp_path / "junk.png").write_bytes(data)
    load_error(tmp_path / "junk.png")
    assert (tmp_path / "junk.png").read_bytes() == data


def test_existing_output_is_not_overwritten(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    photo = Photo(pixels=smooth_rgb(8, 8))
    with pytest.raises(OutputExistsError) as info:
        save_photo(photo, target)
    assert_one_line(info.value, "out.png")
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    save_photo(photo, target, overwrite=True)
    assert load_photo(target).pixels.shape == (8, 8, 3)


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg"])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch, fmt):
    target = tmp_path / f"out.{fmt}"
    target.write_bytes(b"old contents")
    real_writer = saving._WRITERS[fmt]

    def half_then_fail(path, output, **options):
        real_writer(path, output, **options)
        with open(path, "r+b") as handle:  # simulate the disk filling up half-way through
            handle.truncate(max(1, path.stat().st_size // 2))
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(saving._WRITERS, fmt, half_then_fail)
    with pytest.raises(PhotoSaveError) as info:
        save_photo(Photo(pixels=smooth_rgb(16, 16)), target, overwrite=True)
    assert_one_line(info.value, f"out.{fmt}")
    assert "No space left" in str(info.value)
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out.{fmt}"]


def test_interrupted_save_to_new_path_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(path, output, **options):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setitem(saving._WRITERS, "png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_photo(Photo(pixels=smooth_rgb(8, 8)), tmp_path / "sub" / "new.png")
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_output_helpers(tmp_path):
    target = tmp_path / "nested" / "data.json"
    atomic_write_bytes(target, b"{}")
    assert target.read_bytes() == b"{}"
    atomic_write_bytes(target, b"[1]")  # replaces by default
    assert target.read_bytes() == b"[1]"
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"x", overwrite=False)
    with pytest.raises(ValueError):
        with atomic_output(target, overwrite=True) as temp:
            temp.write_bytes(b"half")
            raise ValueError("boom")
    assert target.read_bytes() == b"[1]"
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.json"]


def test_no_overwrite_race_is_caught_at_publish(tmp_path):
    target = tmp_path / "race.bin"
    with pytest.raises(OutputExistsError):
        with atomic_output(target, overwrite=False) as temp:
            temp.write_bytes(b"mine")
            target.write_bytes(b"theirs")  # another process got there first
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.bin"]


def test_saving_to_a_folder_path_fails_cleanly(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(PhotoSaveError) as info:
        save_photo(Photo(pixels=smooth_rgb(8, 8)), tmp_path / "dir.png", overwrite=True)
    assert_one_line(info.value, "dir.png")


def test_bad_pixels_shape_is_a_save_error(tmp_path):
    with pytest.raises(PhotoSaveError):
        save_photo(Photo(pixels=np.zeros((4, 4), np.float32)), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_a_name_at_the_file_systems_limit_is_still_written_atomically(tmp_path):
    """A photo named with 255 bytes (the usual limit) is written, through a shorter temporary name
    that still names it (the writer's leftovers can be found); a name over the limit is refused
    with the reason, not as 'cannot write in this folder'."""
    from engine.imageio.atomic import leftover_temp_files

    photo = Photo(pixels=smooth_rgb(8, 8))
    longest = tmp_path / ("é" * 125 + "x.png")  # 2 x 125 + 5 = 255 bytes
    with atomic_output(longest) as temp:
        assert len(temp.name.encode()) <= 255 and temp.name.startswith(".éé")
        assert leftover_temp_files(longest) == [temp]
        temp.write_bytes(b"partial")
    assert longest.read_bytes() == b"partial" and leftover_temp_files(longest) == []
    assert save_photo(photo, longest, overwrite=True) == longest
    with pytest.raises(PhotoSaveError, match="longer than this file system allows"):
        save_photo(photo, tmp_path / ("b" * 252 + ".webp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [longest.name]
