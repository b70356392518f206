"""Stopping the CLI (issue 14): Ctrl-C and SIGTERM cancel the run through its CancelToken, the one
cancellation mechanism the window's Cancel uses; the process exits with 130 / 143, one line on
stderr, no half-written file and no temporary file left, inputs untouched. No timing is asserted:
the waits are generous bounds, far longer than a prompt stop takes."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import Cancelled
from engine.progress import CancelToken, Progress, cancel_scope, current_cancel

from testdata import REPO, scene

pytestmark = pytest.mark.timeout(400)

CLI = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
FFDNET_ONNX = REPO / "models" / "ffdnet-color.onnx"


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action (a test run started in the background ignores it,
    and a program keeps ignoring it then)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _noisy_png(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = scene(seed, size) + np.random.default_rng(seed).normal(0.0, 12 / 255, (size, size, 3))
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.name.endswith(".partial")]


def _start_on_a_terminal(args: list[str], env: dict) -> tuple[subprocess.Popen, int]:
    """The CLI with its stderr on a pseudo terminal (so it draws its progress line)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=str(REPO),
                            preexec_fn=_default_sigint)
    os.close(slave)
    return proc, master


def _read_until(master: int, pattern: str, proc: subprocess.Popen, timeout: float = 240) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536).decode(errors="replace")
            except OSError:
                break
            if re.search(pattern, seen):
                return seen
    raise AssertionError(f"no {pattern!r} before the CLI ended (status {proc.poll()}): {seen[-2000:]}")


def _read_rest(master: int, proc: subprocess.Popen, timeout: float) -> str:
    rest = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536).decode(errors="replace")
            except OSError:
                chunk = ""
            if not chunk:
                break
            rest += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=max(deadline - time.monotonic(), 1))
    return rest


@pytest.mark.slow
@pytest.mark.parametrize("how,status,word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_in_the_middle_of_a_network_stage_stops_the_cli(tmp_path, how, status, word):
    photos = tmp_path / "photos"
    # Large enough that the denoiser's tiles take seconds on an idle machine too: the progress line
    # is redrawn a few times a second, so the first tile count seen may already be well past 2.
    _noisy_png(photos / "a.png", 1024)
    before = _digests(photos)
    outdir, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TMPDIR=str(tmp),
               RESTORA_CHANGE_BUDGET="1")  # stage changes kept on disk: their temporary files too
    proc, master = _start_on_a_terminal(["restore", str(photos), "-o", str(outdir), "--set", "noise=1",
                                         "--no-generalist", "--tile", "64"], env)
    try:
        _read_until(master, r"tile \d+/", proc)
        proc.send_signal(getattr(signal, how))
        rest = _read_rest(master, proc, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == status, rest
    assert "Traceback" not in rest
    lines = [line for line in re.split(r"[\r\n]+", rest) if line.startswith("restora:")]
    assert len(lines) == 1 and word in lines[0] and "--skip-existing" in lines[0], rest
    assert not _leftovers(outdir, tmp)
    assert not (outdir / "a.png").exists()
    assert _digests(photos) == before


@pytest.mark.slow
def test_a_run_stuck_in_a_call_that_never_checks_is_left_and_its_temporary_file_removed(tmp_path):
    """An encoder that does not return (a hung write) holds no one up: after the grace period the
    CLI deletes the half-written temporary file and exits with 143."""
    src = _noisy_png(tmp_path / "photos" / "a.png", 64)
    outdir = tmp_path / "out"
    script = (
        "import sys, time\n"
        "import engine.imageio.saving as saving\n"
        "def hung(path, output, **options):\n"
        "    path.write_bytes(b'half a photo')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(600)\n"
        "saving._WRITERS['png'] = hung\n"
        "from engine.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", script, "restore", str(src), "-o", str(outdir), "--only", "noise"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
                            preexec_fn=_default_sigint)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert _leftovers(outdir), "the hung writer's temporary file should exist while it writes"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert not _leftovers(outdir) and not (outdir / "a.png").exists()


def test_a_cancel_hook_runs_once_while_registered_and_at_once_when_already_cancelled():
    token = CancelToken()
    calls = []
    with token.on_cancel(lambda: calls.append("first")):
        token.cancel()
    assert calls == ["first"]
    token.cancel()  # the block ended: its hook is gone
    assert calls == ["first"]
    with token.on_cancel(lambda: calls.append("late")):
        pass
    assert calls == ["first", "late"]


def test_the_cancel_scope_is_per_thread_and_nests():
    outer, inner = CancelToken(), CancelToken()
    seen = []
    with cancel_scope(outer):
        with cancel_scope(inner):
            assert current_cancel() is inner
            worker = threading.Thread(target=lambda: seen.append(current_cancel()))
            worker.start()
            worker.join()
        assert current_cancel() is outer
    assert current_cancel() is None and seen == [None]


def _ffdnet_runner():
    pytest.importorskip("onnxruntime")
    from engine.experts.published import _OnnxMapRunner

    return _OnnxMapRunner(FFDNET_ONNX, "cpu", 1)


def test_an_onnx_run_stops_mid_call_when_its_token_is_cancelled():
    runner = _ffdnet_runner()
    x = np.random.default_rng(0).random((1, 3, 1024, 1024), dtype=np.float32)
    sigma = np.full((1, 1, 1024, 1024), 0.05, np.float32)
    token = CancelToken()
    timer = threading.Timer(0.05, token.cancel)
    timer.start()
    try:
        with cancel_scope(token), pytest.raises(Cancelled):
            runner(x, sigma)
    finally:
        timer.cancel()
    with cancel_scope(token), pytest.raises(Cancelled):  # already cancelled: stops before any work
        runner(x[:, :, :64, :64], sigma[:, :, :64, :64])
    assert runner(x[:, :, :64, :64], sigma[:, :, :64, :64]).shape == (1, 3, 64, 64)  # no scope: runs


def test_the_tiler_gives_its_progress_token_to_the_network_it_runs():
    from engine.runtime.tiling import FixedTiles, run_tiled

    token = CancelToken()
    seen = []

    def fn(tile):
        seen.append(current_cancel())
        return tile

    run_tiled(np.zeros((64, 64, 3), np.float32), fn, overlap=4, strategy=FixedTiles(32),
              progress=Progress(cancel=token))
    assert seen and all(t is token for t in seen)


def test_temporary_files_being_written_are_known_and_removed_on_request(tmp_path):
    from engine.imageio.atomic import atomic_output, remove_live_temp_files
    from engine.pipeline.spill import SpilledArray

    with atomic_output(tmp_path / "done.png") as temp:
        temp.write_bytes(b"whole")
    spilled = SpilledArray.create(tmp_path, (4, 4, 3))
    with atomic_output(tmp_path / "half.png") as temp:
        temp.write_bytes(b"half")
        removed = remove_live_temp_files()
        assert sorted(removed) == sorted([temp, spilled.path])
        assert not temp.exists() and not spilled.path.exists()
        temp.write_bytes(b"the writer goes on; the process exits right after the removal")
    assert remove_live_temp_files() == []
    assert (tmp_path / "done.png").read_bytes() == b"whole"
    spilled.close()
