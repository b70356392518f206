"""Never lose or damage a photo (issue 9): each test reproduces one way a batch used to lose or
damage data, and checks the guarantee that replaced it. Everything is generated here."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.cli import main

from hostile import huge_png, planar_lzw_tiff
from testdata import REPO, scene

pytestmark = pytest.mark.timeout(300)

#: The ``restora`` command run from this checkout in a child process.
CLI = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"


def write_png(path: Path, img: np.ndarray | None = None, *, size: int = 48, index: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = scene(index, size) if img is None else img
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path, format="PNG")
    return path


def write_jpeg(path: Path, *, size: int = 48, index: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(scene(index, size) * 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


def digests(folder: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def no_traceback(err: str) -> None:
    assert "Traceback" not in err, err


def cli(*args: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO), **kwargs)


# -- 1. an output that resolves to an input ---------------------------------------------------
@pytest.mark.parametrize("via_link", [False, True])
def test_output_onto_the_inputs_is_refused_before_any_work(tmp_path, capsys, monkeypatch, via_link):
    photos = tmp_path / "photos"
    write_jpeg(photos / "a.jpg")
    write_png(photos / "sub" / "b.png", index=1)
    before = digests(photos)
    outdir = photos
    if via_link:
        (tmp_path / "link").symlink_to(photos, target_is_directory=True)
        outdir = tmp_path / "link"
    import engine.experts.default as default

    monkeypatch.setattr(default, "build_registry", lambda **_: pytest.fail("work started"))
    code = main(["restore", str(photos), "-o", str(outdir), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    assert "would replace the input" in err and len(err.strip().splitlines()) == 1
    assert digests(photos) == before


def test_a_png_named_jpg_is_recognised_as_colliding_with_itself(tmp_path):
    """``same`` keeps the content's format: with PNG bytes in ``x.jpg`` beside ``x.png``, the
    output of ``x.jpg`` into the same folder is ``x.png``, which is the other input."""
    from engine.errors import UsageError
    from engine.pipeline import RestoreOptions
    from engine.pipeline.batch import Batch

    photos = tmp_path / "photos"
    write_png(photos / "x.png")
    write_png(photos / "x.jpg", index=2)  # PNG bytes behind a .jpg name
    batch = Batch.collect([photos], photos / "out", RestoreOptions(), lambda p: True)
    with pytest.raises(UsageError, match="would replace the input"):
        Batch(batch.items, photos, RestoreOptions(overwrite=True)).check()
    batch.check()  # into a separate folder: fine


# -- 2. an output folder inside an input folder -----------------------------------------------
def test_output_folder_inside_the_input_is_not_walked(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    outdir = photos / "restored"
    args = ["restore", str(photos), "-o", str(outdir), "--only", "noise", "--json"]
    assert main(args) == 0
    assert main(args + ["--skip-existing"]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [Path(line["input"]).name for line in lines] == ["a.png", "a.png"]
    assert lines[1]["skipped"] is True
    assert sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*")) == ["a.png"]


def test_images_of_other_types_in_a_folder_are_named_not_silently_passed_over(tmp_path, capsys):
    """A folder holding a GIF, HEIC and Photoshop images, a sidecar and a text file beside a photo:
    the photo is restored and one note names the images left out; the run still succeeds. Files
    that are not images (sidecars, text) and hidden files pass in silence."""
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    for name in ("anim.gif", "b.xmp", "c.HEIC", "d.psd", "e.avif", "notes.txt", ".DS_Store"):
        (photos / name).write_bytes(b"x")
    assert main(["restore", str(photos), "-o", str(tmp_path / "out"), "--only", "noise"]) == 0
    err = capsys.readouterr().err
    assert f"{photos}: 4 images of a type Restora does not read left out (anim.gif, c.HEIC, d.psd, ...)" in err
    assert "xmp" not in err and "notes.txt" not in err and ".DS_Store" not in err
    assert (tmp_path / "out" / "a.png").is_file()


def test_a_name_too_long_for_the_sidecar_fails_that_photo_before_the_work(tmp_path, capsys, monkeypatch):
    """A 255-byte photo name fits, but its uncertainty sidecar's name would not: asked for, the
    photo fails before it is restored (no photo without its map, no work for nothing); the other
    photos are restored with theirs."""
    import engine.pipeline.job as job

    photos = tmp_path / "photos"
    write_png(photos / ("b" * 251 + ".png"))
    write_png(photos / "short.png", index=1)
    restored = []
    original = job.Restorer.restore_photo

    def counting(self, photo, *args, **kwargs):
        restored.append(photo.path)
        return original(self, photo, *args, **kwargs)

    monkeypatch.setattr(job.Restorer, "restore_photo", counting)
    out = tmp_path / "out"
    assert main(["restore", str(photos), "-o", str(out), "--only", "noise", "--uncertainty"]) == 1
    err = capsys.readouterr().err
    assert "uncertainty.png: the file name is longer than this file system allows (267 bytes)" in err
    assert sorted(p.name for p in out.iterdir()) == ["short.png", "short.uncertainty.png"]
    assert [p.name for p in restored] == ["short.png"]


# -- 5. silent losses -------------------------------------------------------------------------
def test_16bit_rgba_png_named_jpg_keeps_16_bits_and_alpha(tmp_path, capsys):
    import cv2

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 65536, size=(24, 32, 4), dtype=np.uint16)
    rgba[:, :, 3] = np.linspace(0, 65535, 32, dtype=np.uint16)[None, :]
    src = tmp_path / "in" / "odd.jpg"
    src.parent.mkdir()
    ok, encoded = cv2.imencode(".png", rgba[:, :, [2, 1, 0, 3]])
    src.write_bytes(encoded.tobytes())
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--set", "noise=0", "--json"])
    line = json_lines(capsys.readouterr().out)[0]
    assert code == 0, line
    out = Path(line["output"])
    assert out.name == "odd.png" and line["not_kept"] == []
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (24, 32, 4)
    np.testing.assert_array_equal(back[:, :, 3], rgba[:, :, 3])


def test_what_a_format_cannot_keep_is_said(tmp_path, capsys):
    import cv2

    rgba = np.full((16, 16, 4), 40000, np.uint16)
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), rgba)
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--set", "noise=0", "--format", "jpeg",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0
    not_kept = " ".join(json_lines(captured.out)[0]["not_kept"])
    assert "transparency" in not_kept and "16-bit" in not_kept
    assert "not kept: " in captured.err


@pytest.mark.parametrize("kind", ["apng", "webp", "tiff"])
def test_extra_frames_are_reported_not_silently_dropped(tmp_path, capsys, kind):
    frames = [Image.fromarray(np.round(scene(i, 32) * 255).astype(np.uint8)) for i in range(3)]
    src = tmp_path / {"apng": "anim.png", "webp": "anim.webp", "tiff": "pages.tif"}[kind]
    if kind == "tiff":
        with tifffile.TiffWriter(src) as tif:
            for frame in frames:
                tif.write(np.asarray(frame), photometric="rgb")
    else:
        frames[0].save(src, save_all=True, append_images=frames[1:], lossless=True)
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--set", "noise=0", "--json"])
    line = json_lines(capsys.readouterr().out)[0]
    assert code == 0
    assert any("only the first of 3" in phrase for phrase in line["not_kept"]), line["not_kept"]


def test_float_hdr_tiff_stays_float_and_unclipped(tmp_path, capsys):
    rng = np.random.default_rng(5)
    hdr = (rng.random((20, 24, 3)) * 6.0).astype(np.float32)  # most samples above 1.0
    src = tmp_path / "hdr.tif"
    tifffile.imwrite(src, hdr, photometric="rgb")
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--set", "noise=0", "--json"])
    line = json_lines(capsys.readouterr().out)[0]
    assert code == 0 and line["not_kept"] == []
    back = tifffile.imread(line["output"])
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, hdr, rtol=1e-5, atol=1e-6)
    # asked for 16-bit integers: the clipping is said, not silent
    main(["restore", str(src), "-o", str(tmp_path / "out16"), "--set", "noise=0", "--bit-depth", "16", "--json"])
    assert any("HDR" in phrase for phrase in json_lines(capsys.readouterr().out)[0]["not_kept"])


# -- 6. a decoder never hands back garbage ----------------------------------------------------
def test_16bit_planar_rgba_lzw_tiff_is_read_right_or_refused(tmp_path, capsys):
    from engine.errors import PhotoLoadError
    from engine.imageio import load_photo

    y, x = np.mgrid[0:37, 0:29]
    samples = np.stack([x * 2000, y * 1500, np.full_like(x, 30000), np.full_like(x, 65535)], axis=2).astype(np.uint16)
    src = planar_lzw_tiff(tmp_path / "tiff_strip_planar_16bit_RGBa.tiff", samples)
    for _ in range(3):
        try:
            photo = load_photo(src)
        except PhotoLoadError as e:
            assert "\n" not in str(e) and src.name in str(e)
            continue
        np.testing.assert_allclose(photo.pixels, samples[:, :, :3] / 65535.0, atol=1e-4)
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--only", "noise", "--json"])
    line = json_lines(capsys.readouterr().out)[0]
    if line["error"]:
        assert code == 1 and not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.tif*"))
    else:
        np.testing.assert_allclose(tifffile.imread(line["output"])[:, :, :3] / 65535.0,
                                   samples[:, :, :3] / 65535.0, atol=0.05)


# -- 7. links, FIFOs, unreadable folders ------------------------------------------------------
def test_link_loops_are_reported_and_the_batch_goes_on(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    (photos / "loop").symlink_to(photos, target_is_directory=True)   # a folder link back up
    (photos / "self.jpg").symlink_to(photos / "self.jpg")             # a file link to itself
    (photos / "gone.png").symlink_to(tmp_path / "nowhere.png")        # a link to nothing
    for command in (["restore", str(photos), "-o", str(tmp_path / "out"), "--only", "noise"],
                    ["detect", str(photos)]):
        code = main(command + ["--json"])
        captured = capsys.readouterr()
        no_traceback(captured.err)
        assert code == 1
        for name in ("loop", "self.jpg", "gone.png"):
            assert sum(f"/{name}: " in line for line in captured.err.splitlines()) == 1, name
        lines = json_lines(captured.out)
        assert {Path(line["input"]).name for line in lines if line["error"] is None} == {"a.png"}
    assert (tmp_path / "out" / "a.png").is_file()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.timeout(90)  # before the fix, open() on the FIFO blocked forever
def test_a_fifo_named_like_a_photo_is_skipped_not_opened(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    os.mkfifo(photos / "a.jpg")
    os.mkfifo(photos / "given.png")
    for args in (["restore", str(photos), str(photos / "given.png"), "-o", str(tmp_path / "out"), "--only", "noise"],
                 ["detect", str(photos), str(photos / "given.png")]):
        code = main(args)
        err = capsys.readouterr().err
        no_traceback(err)
        assert code == 1
        assert "a.jpg: is a named pipe (FIFO)" in err and "given.png: is a named pipe" in err
    assert (tmp_path / "out" / "a.png").is_file()


def test_an_unreadable_folder_is_reported(tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    write_png(photos / "private" / "b.png")
    locked = photos / "private"
    if os.geteuid() == 0:  # root reads anything: make the folder unreadable to this process
        real = os.scandir

        def scandir(path="."):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        code = main(["detect", str(photos), "--json"])
    finally:
        locked.chmod(0o755)
    captured = capsys.readouterr()
    assert code == 1
    assert "private: cannot read this folder" in captured.err
    assert [Path(line["input"]).name for line in json_lines(captured.out)] == ["private", "a.png"]


# -- 8. interrupted batches: partial files, SIGTERM, --skip-existing --------------------------
def test_stale_partial_files_are_removed_on_the_next_run(tmp_path, capsys):
    src = write_png(tmp_path / "a.png")
    outdir = tmp_path / "out"
    (outdir / "sub").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [outdir / f".a.png.{dead.pid}-0badf00d.partial", outdir / ".b.png.1234abcd.partial"]
    for p in stale:
        p.write_bytes(b"half a photo")
    old = time.time() - 3600
    os.utime(stale[1], (old, old))
    alive = outdir / f".c.png.{os.getpid()}-cafebabe.partial"  # this process is writing it
    alive.write_bytes(b"in progress")
    keep = outdir / ".notes.partial"  # not Restora's naming
    keep.write_bytes(b"someone else's")
    elsewhere = outdir / "sub" / ".d.png.1234abcd.partial"  # a folder this batch does not write into
    elsewhere.write_bytes(b"not ours to judge now")
    os.utime(elsewhere, (old, old))
    assert main(["restore", str(src), "-o", str(outdir), "--only", "noise"]) == 0
    err = capsys.readouterr().err
    assert not any(p.exists() for p in stale) and alive.exists() and keep.exists() and elsewhere.exists()
    assert err.count("left by an interrupted run") == 2


def _slow_batch(tmp_path: Path, n: int = 5, size: int = 128) -> Path:
    photos = tmp_path / "photos"
    for i in range(n):
        write_png(photos / f"p{i}.png", scene(i, size) * 0.8 + 0.1 * np.random.default_rng(i).random((size, size, 3)))
    return photos


def _wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 180) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} in: {seen}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_interrupted_batch_resumes_with_skip_existing(tmp_path, how):
    import signal

    photos = _slow_batch(tmp_path)
    before = digests(photos)
    outdir = tmp_path / "out"
    args = ["restore", str(photos), "-o", str(outdir), "--only", "noise,blur", "--no-generalist"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))
    try:
        _wait_for_line(proc, "[1/5]")
        proc.send_signal(getattr(signal, how))
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "SIGTERM":
        assert proc.returncode == 128 + signal.SIGTERM
        assert "terminated" in rest and "Traceback" not in rest
        assert not list(outdir.rglob("*.partial"))
    else:
        assert proc.returncode == -signal.SIGKILL
    finished = sorted(p.name for p in outdir.glob("*.png"))
    assert "p0.png" in finished and len(finished) < 5
    resumed = cli(*args, "--skip-existing", "--json")
    no_traceback(resumed.stderr)
    assert resumed.returncode == 0, resumed.stderr
    lines = json_lines(resumed.stdout)
    assert sorted(Path(line["input"]).name for line in lines if line["skipped"]) == finished
    assert all(line["error"] is None for line in lines)
    assert sorted(p.name for p in outdir.glob("*.png")) == [f"p{i}.png" for i in range(5)]
    assert not list(outdir.rglob("*.partial"))
    assert digests(photos) == before
    for p in outdir.glob("*.png"):
        Image.open(p).load()  # complete, decodable files


def test_without_skip_existing_a_rerun_still_refuses_to_replace(tmp_path, capsys):
    src = write_png(tmp_path / "a.png")
    outdir = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(outdir), "--only", "noise"]) == 0
    assert main(["restore", str(src), "-o", str(outdir), "--only", "noise"]) == 1
    assert main(["restore", str(src), "-o", str(outdir), "--only", "noise", "--skip-existing", "--json"]) == 0
    captured = capsys.readouterr()
    line = json_lines(captured.out)[-1]
    assert line["skipped"] is True and line["error"] is None and line["output"] == str(outdir / "a.png")
    assert "skipped" in captured.err


# -- 9. option conflicts are bad usage --------------------------------------------------------
@pytest.mark.parametrize("extra", [["--format", "jpeg", "--bit-depth", "16"], ["--format", "webp", "--bit-depth", "16"],
                                   ["--overwrite", "--skip-existing"]])
def test_conflicting_options_exit_2_before_any_work(tmp_path, capsys, monkeypatch, extra):
    import engine.experts.default as default

    src = write_png(tmp_path / "a.png")
    monkeypatch.setattr(default, "build_registry", lambda **_: pytest.fail("work started"))
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert "error" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- 10. one photo fails alone, whatever the error --------------------------------------------
def test_any_error_fails_that_photo_alone(tmp_path, capsys, monkeypatch):
    from engine.pipeline.job import Restorer

    photos = tmp_path / "photos"
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        write_png(photos / name, index=i)
    real = Restorer.restore_photo

    def flaky(self, photo, *args, **kwargs):
        if photo.path.name == "b.png":
            raise ZeroDivisionError("division by zero in an expert")
        return real(self, photo, *args, **kwargs)

    monkeypatch.setattr(Restorer, "restore_photo", flaky)
    code = main(["restore", str(photos), "-o", str(tmp_path / "out"), "--only", "noise", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    by_name = {Path(line["input"]).name: line for line in json_lines(captured.out)}
    assert by_name["b.png"]["error"].startswith(str(photos / "b.png"))
    assert "ZeroDivisionError" in by_name["b.png"]["error"]
    assert by_name["a.png"]["error"] is None and by_name["c.png"]["error"] is None
    assert "restored 2 of 3" in captured.err


def test_any_error_in_detect_fails_that_photo_alone(tmp_path, capsys, monkeypatch):
    import engine.imageio as imageio

    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    write_png(photos / "b.png", index=1)
    real = imageio.load_photo

    def load(path, *args, **kwargs):
        if Path(path).name == "a.png":
            raise RuntimeError("decoder blew up")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "load_photo", load)
    code = main(["detect", str(photos), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    lines = json_lines(captured.out)
    assert "RuntimeError" in lines[0]["error"] and lines[1]["error"] is None


# -- 11. memory is budgeted before the work ---------------------------------------------------
def test_a_photo_too_big_for_memory_is_refused_from_its_header(tmp_path, capsys, monkeypatch):
    import engine.imageio.loading as loading

    big = huge_png(tmp_path / "big.png", 13000, 13000)  # 169 MP, under the 200 MP cap
    assert big.stat().st_size < 1_000_000
    small = write_png(tmp_path / "small.png")
    monkeypatch.setenv("RESTORA_MEMORY_BUDGET", "4G")  # --only noise: even the leanest noise expert needs more
    real = loading.load_raster
    monkeypatch.setattr(loading, "load_raster", lambda path, *a: (
        pytest.fail("the huge photo was decoded") if Path(path).name == "big.png" else real(path, *a)))
    code = main(["restore", str(big), str(small), "-o", str(tmp_path / "out"), "--only", "noise", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    lines = {Path(line["input"]).name: line for line in json_lines(captured.out)}
    assert "13000x13000 needs about" in lines["big.png"]["error"] and "4.0 GiB" in lines["big.png"]["error"]
    assert lines["small.png"]["error"] is None
    assert not (tmp_path / "out" / "big.png").exists()


def test_the_budget_counts_what_the_plan_will_cache(tmp_path, capsys, monkeypatch):
    from engine.pipeline.memory import estimate_bytes

    src = write_png(tmp_path / "a.png", size=64)
    # Enough to decode and analyse, not enough for five cached stages.
    monkeypatch.setenv("RESTORA_MEMORY_BUDGET", str(estimate_bytes(64, 64, cached_changes=1)))
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--json", "--no-generalist",
                 "--only", "noise,blur,jpeg,haze,lowlight"])
    line = json_lines(capsys.readouterr().out)[0]
    assert code == 1 and "needs about" in line["error"]
    monkeypatch.setenv("RESTORA_MEMORY_BUDGET", "1G")
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--no-generalist",
                 "--only", "noise,blur,jpeg,haze,lowlight"]) == 0


# -- 16. the progress bar on a terminal -------------------------------------------------------
def test_progress_bar_shows_on_a_terminal(monkeypatch):
    from engine.cli.progressbar import ProgressLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = ProgressLine(2)  # the CLI passes no stream: stderr, a terminal here
    bar.update(0, 1.0, "noise")
    assert "50.0%" in terminal.getvalue() and "[1/2]" in terminal.getvalue()
    piped = io.StringIO()
    ProgressLine(2, stream=piped).update(0, 1.0)
    assert piped.getvalue() == ""


# -- 17. JSON names a missing input whole -----------------------------------------------------
def test_json_input_of_a_missing_path_is_whole(tmp_path, capsys):
    missing = tmp_path / "a:b" / "c: d.png"
    for command in (["restore", str(missing), "-o", str(tmp_path / "out")], ["detect", str(missing)]):
        assert main(command + ["--json"]) == 1
        line = json_lines(capsys.readouterr().out)[0]
        assert line["input"] == str(missing) and "no such file" in line["error"]


def test_batch_api_for_the_gui_and_cluster(tmp_path):
    """The engine calls a GUI queue or a cluster worker makes: check before work, skip existing,
    one photo fails alone, and a Batch travels to another process (pickle)."""
    import pickle

    from engine.errors import UsageError
    from engine.imageio import is_supported
    from engine.pipeline import RestoreOptions
    from engine.pipeline.batch import Batch

    photos = tmp_path / "photos"
    write_png(photos / "a.png")
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(UsageError):
        Batch.collect([photos], photos, RestoreOptions(overwrite=True), is_supported).check()
    outdir = tmp_path / "out"
    batch = pickle.loads(pickle.dumps(Batch.collect([photos], outdir, RestoreOptions(skip_existing=True),
                                                   is_supported)))
    batch.check()
    assert batch.prepare() == []
    from gui_helpers import cheap_restorer

    restorer = cheap_restorer()
    first = [batch.run_item(restorer, item) for item in batch.items]
    assert first[0].error is None and first[0].output == outdir / "a.png"
    assert first[1].error and "b.png" in first[1].error
    again = batch.run_item(restorer, batch.items[0])
    assert again.skipped and again.output == outdir / "a.png"


def test_a_depth_the_inputs_own_format_cannot_store_fails_before_restoring(tmp_path, capsys, monkeypatch):
    from engine.pipeline.job import Restorer

    write_jpeg(tmp_path / "in" / "a.jpg")
    write_png(tmp_path / "in" / "b.png")
    real = Restorer.restore_photo

    def restore_photo(self, photo, *args, **kwargs):
        assert photo.path.name != "a.jpg", "restored for nothing"
        return real(self, photo, *args, **kwargs)

    monkeypatch.setattr(Restorer, "restore_photo", restore_photo)
    code = main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--bit-depth", "16",
                 "--only", "noise", "--json"])
    lines = {Path(line["input"]).name: line for line in json_lines(capsys.readouterr().out)}
    assert code == 1 and "JPEG cannot store 16-bit" in lines["a.jpg"]["error"]
    assert lines["b.png"]["error"] is None
