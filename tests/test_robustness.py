"""Robustness: a generated corpus of hostile inputs run through ``restore`` and ``detect``, and
property-based tests of the loaders.

Every run asserts the same promises: no traceback, one clear line per failed input, the inputs'
sha256 unchanged, no partial file left, and every good file done.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from hostile import (bit_flipped, bmp_bomb_header, jpeg_bomb_header, planar_lzw_tiff, png_bomb_header,
                     tiff_bomb_header, truncated)
from testdata import REPO, scene

pytestmark = pytest.mark.timeout(600)

CLI = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
SIZE = 40


def _rgb8(index: int = 0) -> np.ndarray:
    return np.round(scene(index, SIZE) * 255).astype(np.uint8)


def _rgb16(index: int = 0) -> np.ndarray:
    return np.round(scene(index, SIZE) * 65535).astype(np.uint16)


def good_files(folder: Path) -> list[Path]:
    """One small file per supported format and unusual mode Restora must restore."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rgb8, rgb16 = _rgb8(), _rgb16(1)
    alpha8 = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :].repeat(SIZE, 0)
    made: list[Path] = []

    def pil(name: str, image: Image.Image, **kwargs) -> None:
        image.save(folder / name, **kwargs)
        made.append(folder / name)

    pil("photo.jpg", Image.fromarray(rgb8), quality=85)
    pil("progressive.jpeg", Image.fromarray(rgb8), quality=70, progressive=True)
    pil("cmyk.jpg", Image.fromarray(rgb8).convert("CMYK"))
    pil("gray.jpg", Image.fromarray(rgb8).convert("L"))
    pil("photo.png", Image.fromarray(rgb8))
    pil("rgba.png", Image.fromarray(np.dstack([rgb8, alpha8]), mode="RGBA"))
    pil("la.png", Image.fromarray(np.dstack([rgb8[:, :, 0], alpha8]), mode="LA"))
    pil("palette.png", Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        transparency=0)
    pil("bilevel.png", Image.fromarray(rgb8).convert("1"))
    pil("photo.webp", Image.fromarray(rgb8), quality=80)
    pil("rgba.webp", Image.fromarray(np.dstack([rgb8, alpha8]), mode="RGBA"), lossless=True)
    pil("photo.bmp", Image.fromarray(rgb8))
    pil("palette.tif", Image.fromarray(rgb8).convert("P"))
    for name, array in (("deep.png", rgb16[:, :, ::-1]), ("deep_gray.png", rgb16[:, :, 0]),
                        ("deep_rgba.png", np.dstack([rgb16[:, :, ::-1], rgb16[:, :, :1]]))):
        cv2.imwrite(str(folder / name), array)
        made.append(folder / name)
    for name, array, kwargs in (
        ("photo.tif", rgb8, {"photometric": "rgb"}),
        ("deep.tiff", rgb16, {"photometric": "rgb", "compression": "zlib"}),
        ("float.tif", scene(2, SIZE) * 3.0, {"photometric": "rgb"}),
        ("gray_alpha.tif", np.dstack([rgb8[:, :, 0], alpha8]), {"photometric": "minisblack",
                                                               "extrasamples": ("unassalpha",)}),
        ("miniswhite.tif", rgb8[:, :, 0], {"photometric": "miniswhite"}),
        ("planar.tif", np.moveaxis(rgb16, -1, 0), {"photometric": "rgb", "planarconfig": "separate"}),
    ):
        tifffile.imwrite(folder / name, array, **kwargs)
        made.append(folder / name)
    return made


def hostile_files(folder: Path, good: list[Path]) -> list[Path]:
    """Truncated and bit-flipped copies of every good file, header bombs and non-images."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for i, source in enumerate(good):
        for fraction in (0.02, 0.5, 0.97):
            made.append(truncated(source, folder / f"cut{int(fraction * 100)}_{source.name}", fraction))
        for seed in (1, 2):
            made.append(bit_flipped(source, folder / f"flip{seed}_{source.name}", seed=1000 * i + seed))
    made += [png_bomb_header(folder / "bomb.png"), bmp_bomb_header(folder / "bomb.bmp"),
             tiff_bomb_header(folder / "bomb.tif"), jpeg_bomb_header(folder / "bomb.jpg")]
    y, x = np.mgrid[0:24, 0:20]
    planar = np.stack([x * 3000, y * 2500, np.full_like(x, 20000), np.full_like(x, 65535)], axis=2).astype(np.uint16)
    made.append(planar_lzw_tiff(folder / "tiff_strip_planar_16bit_RGBa.tiff", planar))
    for name, data in (("empty.jpg", b""), ("text.png", b"just some words, not a picture\n"),
                       ("noise.jpg", np.random.default_rng(9).bytes(3000)),
                       ("png_signature_only.png", b"\x89PNG\r\n\x1a\n"),
                       ("tiff_header_only.tif", b"II*\x00\x08\x00\x00\x00"),
                       ("html.webp", b"<html><body>404</body></html>")):
        (folder / name).write_bytes(data)
        made.append(folder / name)
    return made


def odd_names(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name in ("with space.png", "ünïcödé 写真.png", "-starts-with-dash.png", "colon: in it.png",
                 "quote'\"%s{}.png", "UPPER.PNG", "double.ext.jpg.png"):
        Image.fromarray(_rgb8(3)).save(folder / name, format="PNG")
        made.append(folder / name)
    return made


def special_entries(folder: Path) -> list[str]:
    """Links that loop or lead nowhere, a FIFO; returns their names (each must be reported)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "self.png").symlink_to(folder / "self.png")
    (folder / "nowhere.jpg").symlink_to(folder / "missing" / "gone.jpg")
    names = ["loop", "self.png", "nowhere.jpg"]
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.jpg")
        names.append("pipe.jpg")
    return names


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    good = good_files(root / "good")
    hostile = hostile_files(root / "hostile", good)
    names = odd_names(root / "odd names")
    specials = special_entries(root / "special")
    return root, good + names, hostile, specials


def digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and not p.is_fifo():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=540,
                          env=env, cwd=str(REPO))


def check_run(proc: subprocess.CompletedProcess, root: Path, good: list[Path], hostile: list[Path],
              specials: list[str]) -> dict[str, dict]:
    """The promises every run keeps; returns the JSON lines by input path."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stderr[-3000:]  # something failed, and nothing crashed
    lines = {}
    for raw in proc.stdout.splitlines():
        line = json.loads(raw)
        lines[line["input"]] = line
    err_lines = proc.stderr.splitlines()
    stray = [e for e in err_lines if e.strip() and not re.match(r"^(\[\d+/\d+\] |restora: |FAILED )", e)]
    assert not stray, stray[:10]  # no decoder chatter, warnings or tracebacks: one line per input
    assert len([e for e in err_lines if e.strip()]) <= len(lines) + len(specials) + 1
    for path in good:
        assert lines[str(path)]["error"] is None, lines[str(path)]
    for path in hostile:
        line = lines[str(path)]  # every hostile file is accounted for, done or failed
        if line["error"] is not None:
            assert "\n" not in line["error"] and str(path) in line["error"]
            assert len(line["error"]) < 400
            assert sum(line["error"] in e for e in err_lines) == 1, line["error"]
    for name in specials:
        assert sum(f"/{name}: " in e for e in err_lines) == 1, name
    for name in ("bomb.png", "bomb.bmp", "bomb.tif", "bomb.jpg", "empty.jpg", "text.png"):
        assert lines[str(root / "hostile" / name)]["error"], name
    return lines


@pytest.mark.slow
def test_hostile_corpus_through_restore(corpus, tmp_path):
    from engine.imageio import load_photo

    root, good, hostile, specials = corpus
    before = digests(root)
    outdir = tmp_path / "out"
    proc = run_cli("restore", str(root), "-o", str(outdir), "--only", "noise", "--no-generalist", "--json")
    lines = check_run(proc, root, good, hostile, specials)
    assert digests(root) == before
    assert not [p for p in outdir.rglob("*") if p.name.endswith(".partial")]
    for line in lines.values():
        if line["error"] is None:
            photo = load_photo(line["output"])  # every output is a complete, readable photo
            assert np.isfinite(photo.pixels).all()
    float_line = lines[str(root / "good" / "float.tif")]
    assert tifffile.imread(float_line["output"]).dtype == np.float32


@pytest.mark.slow
def test_hostile_corpus_through_detect(corpus):
    root, good, hostile, specials = corpus
    before = digests(root)
    proc = run_cli("detect", str(root), "--json")
    lines = check_run(proc, root, good, hostile, specials)
    for line in lines.values():
        if line["error"] is None:
            assert all(0.0 <= v <= 1.0 for v in line["report"].values())
    assert digests(root) == before


# -- property-based tests of the loaders ------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from engine.errors import PhotoLoadError  # noqa: E402
from engine.imageio import load_photo, save_photo  # noqa: E402

SIGNATURES = {".jpg": b"\xff\xd8\xff\xe0", ".png": b"\x89PNG\r\n\x1a\n", ".tif": b"II*\x00", ".webp": b"RIFF",
              ".bmp": b"BM"}
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("property")


@pytest.fixture(scope="module")
def seeds(scratch):
    return {p.suffix.lower(): p.read_bytes() for p in good_files(scratch / "seeds")
            if p.name in ("photo.jpg", "photo.png", "deep.tiff", "photo.webp", "photo.bmp")}


def assert_loads_or_refuses(path: Path) -> None:
    """The loader's contract: a sane photo, or a one-line PhotoLoadError naming the file."""
    try:
        photo = load_photo(path)
    except PhotoLoadError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    assert photo.pixels.dtype == np.float32 and photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3
    assert np.isfinite(photo.pixels).all()
    assert photo.pixels.min() >= 0.0 and photo.pixels.max() <= 1.0
    assert photo.alpha is None or photo.alpha.shape == photo.pixels.shape[:2]


@PROPERTY_SETTINGS
@given(suffix=st.sampled_from(sorted(SIGNATURES)), body=st.binary(max_size=600))
def test_any_bytes_behind_a_signature_load_or_fail_cleanly(scratch, suffix, body):
    path = scratch / f"random{suffix}"
    path.write_bytes(SIGNATURES[suffix] + body)
    assert_loads_or_refuses(path)


@PROPERTY_SETTINGS
@given(suffix=st.sampled_from([".jpg", ".png", ".tiff", ".webp", ".bmp"]),
       edits=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=8),
       keep=st.floats(0.0, 1.0))
def test_damaged_real_files_load_or_fail_cleanly(scratch, seeds, suffix, edits, keep):
    data = bytearray(seeds[suffix])
    for position, value in edits:
        data[position % len(data)] = value
    data = data[: max(1, int(len(data) * keep))] if keep < 0.999 else data
    path = scratch / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    assert_loads_or_refuses(path)


@PROPERTY_SETTINGS
@given(height=st.integers(1, 12), width=st.integers(1, 12), channels=st.sampled_from([1, 2, 3, 4]),
       depth=st.sampled_from([8, 16]), suffix=st.sampled_from([".png", ".tif"]), seed=st.integers(0, 2**16))
def test_lossless_formats_round_trip_exactly(scratch, height, width, channels, depth, suffix, seed):
    rng = np.random.default_rng(seed)
    top = 255 if depth == 8 else 65535
    samples = rng.integers(0, top + 1, size=(height, width, channels)).astype(np.uint8 if depth == 8 else np.uint16)
    if channels in (1, 2):  # gray: repeat into RGB as the loader does
        rgb = np.repeat(samples[:, :, :1], 3, axis=2)
    else:
        rgb = samples[:, :, :3]
    from engine.photo import Photo

    alpha = samples[:, :, -1].astype(np.float32) / top if channels in (2, 4) else None
    photo = Photo(pixels=rgb.astype(np.float32) / top, alpha=alpha, bit_depth=depth, source_format=suffix[1:],
                  was_grayscale=channels in (1, 2))
    path = save_photo(photo, scratch / f"round{suffix}", overwrite=True)
    back = load_photo(path)
    assert back.bit_depth == depth
    np.testing.assert_array_equal(np.rint(back.pixels * top), rgb.astype(np.float64))
    if alpha is not None:
        np.testing.assert_array_equal(np.rint(back.alpha * top), samples[:, :, -1].astype(np.float64))
