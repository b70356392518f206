"""Decoder warnings stay silent while another thread swaps the warning filters.

The batch decodes the next file on a background thread while the main thread works; a
``warnings.catch_warnings`` on either thread replaces the interpreter's one filter list, so a
decoder warning silenced that way leaked to stderr between a batch's one-line reports
(``test_robustness.py::test_hostile_corpus_through_restore`` failed now and then)."""

import subprocess
import sys

from testdata import REPO

RACE = r"""
import sys, threading, warnings
from pathlib import Path
import numpy as np, tifffile
from hostile import truncated
from engine.errors import PhotoLoadError
from engine.imageio import load_photo

folder = Path(sys.argv[1])
tifffile.imwrite(folder / "whole.tif", (np.arange(40 * 40 * 3) % 251).astype(np.uint8).reshape(40, 40, 3))
cut = truncated(folder / "whole.tif", folder / "cut.tif", 0.05)  # Pillow warns "Truncated File Read"
stop = threading.Event()

def swap_filters():
    while not stop.is_set():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)

other = threading.Thread(target=swap_filters)
other.start()
try:
    for _ in range(200):
        try:
            load_photo(cut)
        except PhotoLoadError:
            pass
finally:
    stop.set()
    other.join()
"""


def test_truncated_tiff_warns_nothing_while_another_thread_swaps_filters(tmp_path):
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-W", "default", "-c", RACE, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert not shown, shown
