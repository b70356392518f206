"""Engine helpers the GUI shows: histograms, thumbnails, the change map's units, the desktop
entry's file types, and the batch's JPEG quality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from engine.histogram import BINS, compute_histogram, sample_step
from engine.imageio.formats import MIME_TYPES, SUPPORTED_EXTENSIONS

REPO = Path(__file__).resolve().parents[1]


def test_histogram_counts_levels_and_clipping():
    img = np.zeros((10, 10, 3), np.float32)
    img[:2] = 1.0                # 20 % blown highlights
    img[2:5] = 0.5               # mid grey
    img[5:6, :, 0] = 1.0         # red channel clipped on one more row
    h = compute_histogram(img)
    assert h.pixels == 100 and len(h.luma) == BINS
    assert h.red.sum() == h.green.sum() == h.blue.sum() == h.luma.sum() == 100
    assert h.highlights_clipped == 0.3          # any channel at 255
    assert h.shadows_clipped == 0.5             # rows 6..9 all black, row 5 black in G and B
    assert h.green[128] == 30 and h.green[255] == 20
    assert np.array_equal(compute_histogram(np.rint(img * 255).astype(np.uint8)).luma, h.luma)
    assert sample_step(4000, 6000) == 10 and sample_step(100, 100) == 1


def test_thumbnail_keeps_aspect_and_orientation(tmp_path):
    from engine.imageio.thumbnail import load_thumbnail

    src = np.zeros((300, 600, 3), np.uint8)
    src[:, :300] = (200, 30, 30)
    Image.fromarray(src).save(tmp_path / "wide.png")
    t = load_thumbnail(tmp_path / "wide.png", max_side=120)
    assert t.shape == (60, 120, 3) and t.dtype == np.uint8
    assert tuple(t[30, 10]) == (200, 30, 30) and tuple(t[30, 110]) == (0, 0, 0)


def test_change_map_in_absolute_units():
    from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession
    from engine.analysis.report import DegradationReport

    class Lift(Expert):
        info = ExpertInfo(id="lift", name="lift", tasks=("lowlight",))

        def run(self, image, ctx=None):
            out = image.copy()
            out[:, :2] += 0.05
            return out

    session = RestorationSession(np.full((4, 4, 3), 0.2, np.float32), ExpertRegistry([Lift()]),
                                 analyser=lambda im: DegradationReport({}), assess=False)
    session.run(Plan((Stage("lowlight", "lift"),)))
    m = session.change_map({}, full_scale=0.1)
    assert np.allclose(m[:, :2], 0.5) and np.allclose(m[:, 2:], 0.0)
    assert np.allclose(session.change_map({}, full_scale=0.025)[:, :2], 1.0)  # clipped at full scale


def test_desktop_entry_lists_every_readable_type_from_the_engine_table():
    assert set(MIME_TYPES) == set(SUPPORTED_EXTENSIONS)
    rc = subprocess.run([sys.executable, str(REPO / "tools" / "desktop_entry.py"), "--check"], cwd=REPO,
                        env={"PYTHONPATH": str(REPO)}).returncode
    assert rc == 0, "resources/restora.desktop is stale: run python tools/desktop_entry.py"
    text = (REPO / "resources" / "restora.desktop").read_text()
    for mime in ("image/x-canon-cr3", "image/x-fuji-raf", "image/x-olympus-orf", "image/x-panasonic-rw2"):
        assert mime in text
    assert ("heic" in text.lower()) == (".heic" in SUPPORTED_EXTENSIONS)


def test_batch_jpeg_quality_reaches_the_file(tmp_path):
    from engine.experts.base import ExpertRegistry
    from engine.pipeline import RestoreOptions, Restorer
    from engine.analysis.report import DegradationReport

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    restorer = Restorer(ExpertRegistry([]), analyser=lambda im: DegradationReport({}))
    sizes = {}
    for q in (30, 95):
        out = tmp_path / f"q{q}.jpg"
        result = restorer.restore_file(tmp_path / "in.png", lambda photo, o=out: o,
                                       RestoreOptions(fmt="jpeg", jpeg_quality=q))
        assert result.error is None
        sizes[q] = out.stat().st_size
    assert sizes[30] < sizes[95] * 0.6


def test_byte_sizes_read_the_same_everywhere():
    from engine.units import format_bytes

    assert [format_bytes(n) for n in (0, 999, 1000, 64_000, 99_999, 100_000, 63_900_000, 8 * 10**9)] == \
        ["0 B", "999 B", "1 kB", "64 kB", "100 kB", "0.1 MB", "63.9 MB", "8.0 GB"]
    assert [format_bytes(n, binary=True) for n in (1023, 2048, 512 * 2**20, 8 * 2**30)] == \
        ["1023 B", "2 KiB", "512.0 MiB", "8.0 GiB"]


def test_every_error_becomes_one_short_line():
    from pathlib import Path

    from engine.errors import PhotoLoadError, describe_error, one_line

    assert one_line(OSError("disk\n  full")) == "disk full"
    assert one_line(KeyError(0)) == "KeyError: 0" and one_line(IndexError()) == "IndexError"
    assert one_line(ValueError("x" * 500), 40) == "x" * 39 + "…"
    assert one_line(ValueError("bad value"), with_type=True) == "ValueError: bad value"
    assert describe_error(PhotoLoadError("a.png: corrupt"), Path("a.png")) == "a.png: corrupt"
    assert describe_error(MemoryError(), Path("b.png")) == "b.png: not enough memory to restore this photo"
    assert describe_error(ZeroDivisionError("division by zero")) == \
        "unexpected error (ZeroDivisionError: division by zero)"
