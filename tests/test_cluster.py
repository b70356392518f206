"""`restora restore --cluster`: the same files, bytes, JSON lines and exit codes as a local run,
on a real Ray cluster on 127.0.0.1 (a head this module starts with 2 CPUs, and `--cluster local`).

Skipped when Ray (the `cluster` extra) is not installed. The cluster runs use a few tiny
photos; each run still costs Ray's start-up and the workers' model loading (~10-20 s).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.cli import main
from engine.cluster import ClusterJob, plan_jobs
from engine.cluster.batch import InOrder, Throughput
from engine.imageio import is_supported, load_photo
from engine.imageio.atomic import atomic_output, leftover_temp_files
from engine.imageio.formats import OFFERED_FORMATS
from engine.pipeline.batch import Batch
from engine.pipeline.inputs import BatchItem, output_path_for
from engine.pipeline.job import RestoreOptions, RestoreResult, output_extension

from testdata import REPO

RUN_TIMEOUT = 300  # seconds for one cluster CLI run (start-up included) on a busy 2-core machine


# ---------------------------------------------------------------------------- photos
def _noisy(height: int, width: int, seed: int, level: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([np.sin(x / (6 + seed)), np.cos(y / 9), np.sin((x + y) / 13)], axis=2) * 0.3 + level
    return np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1).astype(np.float32)


def make_archive(folder: Path, good: int = 2, corrupt: bool = True) -> Path:
    """A small archive: 8-bit PNGs, a dark 16-bit PNG with alpha (the neural generalist runs on
    it), a JPEG with EXIF (orientation 6) and an ICC profile, a 16-bit TIFF, optionally a
    corrupt JPEG."""
    (folder / "scans").mkdir(parents=True)
    for i in range(good):
        Image.fromarray(np.round(_noisy(72, 96, i) * 255).astype(np.uint8)).save(folder / f"noisy{i}.png")
    dark = np.round(_noisy(64, 80, 7, level=0.12) * 65535).astype(np.uint16)
    alpha = np.tile(np.linspace(0, 65535, 80, dtype=np.float64), (64, 1)).round().astype(np.uint16)
    cv2.imwrite(str(folder / "scans" / "dark16.png"), np.dstack([dark[..., ::-1], alpha]))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    exif[0x010F] = "Restora test camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(np.round(_noisy(48, 64, 3) * 255).astype(np.uint8)).save(
        folder / "camera.jpg", quality=80, exif=exif, icc_profile=icc)
    import tifffile

    tifffile.imwrite(folder / "scans" / "film16.tif", np.round(_noisy(56, 72, 5) * 65535).astype(np.uint16),
                     photometric="rgb")
    if corrupt:
        (folder / "scans" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return folder


def outputs(outdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


def comparable(stdout: str, outdir: str) -> list[dict]:
    """JSON lines without timings, with OUTDIR written as ``OUT``."""
    lines = []
    for line in stdout.splitlines():
        obj = json.loads(line.replace(json.dumps(outdir)[1:-1], "OUT"))
        obj.pop("seconds")
        for stage in obj["stages"]:
            stage.pop("seconds", None)
        lines.append(obj)
    return lines


def run_local(cwd: Path, argv: list[str], capsys) -> tuple[int, str, str]:
    before = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(argv)
    finally:
        os.chdir(before)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


#: Every Ray process of these tests on 127.0.0.1 only, with a token of their own.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def cluster_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", **RAY_ENV)


CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def run_cluster(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + argv, cwd=cwd, env=cluster_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


# ---------------------------------------------------------------------------- without Ray
def test_the_driver_expects_the_output_path_a_local_run_writes(tmp_path):
    folder = make_archive(tmp_path / "in", good=1, corrupt=False)
    for fmt in ("same",) + OFFERED_FORMATS:
        batch = Batch.collect([folder], tmp_path / "out", RestoreOptions(fmt=fmt), is_supported)
        for job in plan_jobs(batch):
            photo = load_photo(job.item.path)
            assert job.target == output_path_for(job.item, batch.outdir, output_extension(photo, job.item.path, fmt))


def test_two_inputs_for_one_output_the_later_fails_with_the_local_message(tmp_path):
    folder = make_archive(tmp_path / "in", good=1, corrupt=False)
    (folder / "camera.png").write_bytes((folder / "noisy0.png").read_bytes())
    batch = Batch.collect([folder], tmp_path / "out", RestoreOptions(fmt="png"), is_supported)
    jobs = plan_jobs(batch)
    assert [j.target.name for j in jobs][:2] == ["camera.png", "camera.png"]
    assert [j.error is None for j in jobs] == [True, False, True, True, True]
    assert jobs[1].error == (f"{jobs[1].item.path}: its output {jobs[1].target} would replace the one from "
                             f"{jobs[0].item.path}")


def test_results_are_released_in_input_order():
    jobs = [ClusterJob(i, BatchItem(Path(f"{i}.png"), Path(f"{i}.png")), Path(f"o/{i}.png")) for i in range(4)]
    order = InOrder()
    released = []
    for i in (2, 0, 3, 1):
        released += [j.index for j, _ in order.add(jobs[i], RestoreResult(input=jobs[i].item.path))]
        if i == 0:
            assert released == [0]
    assert released == [0, 1, 2, 3]


def test_a_retry_may_replace_only_an_output_the_run_itself_wrote():
    job = ClusterJob(0, BatchItem(Path("a.png"), Path("a.png")), Path("o/a.png"))
    job.existed_before = False
    assert not job.may_replace_own_output  # first attempt: an existing file is somebody else's
    job.attempts = 1
    assert job.may_replace_own_output
    job.existed_before = True
    assert not job.may_replace_own_output  # it was there before the run: never replaced


def test_throughput_counts_files_per_minute():
    now = [100.0]
    t = Throughput(10, clock=lambda: now[0])
    for _ in range(3):
        t.file_done()
    now[0] += 30.0
    assert t.per_minute == pytest.approx(6.0) and t.describe() == "3/10 files, 6.0 files/min"


def test_leftover_temp_files_are_found_only_for_their_target(tmp_path):
    target = tmp_path / "a[1].png"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temp:
            temp.write_bytes(b"half")
            raise RuntimeError("stop")
    assert leftover_temp_files(target) == []  # a normal failure cleans up after itself
    orphan = tmp_path / ".a[1].png.1234abcd.partial"
    orphan.write_bytes(b"half")
    (tmp_path / ".b.png.1234abcd.partial").write_bytes(b"other")
    assert leftover_temp_files(target) == [orphan]


def test_cluster_flags_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch):
    folder = make_archive(tmp_path / "in", good=1, corrupt=False)
    assert main(["restore", str(folder), "-o", str(tmp_path / "out"), "--workers", "2"]) == 2
    assert "--workers/--worker-cpus need --cluster" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    for name, value in RAY_ENV.items():  # set, so that the attempt leaves this process's environment as it was
        monkeypatch.setenv(name, value)
    assert main(["restore", str(folder), "-o", str(tmp_path / "out"), "--cluster", "local"]) == 2
    assert "pip install 'restora[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_plan_with_a_network_asks_for_a_gpu():
    from engine.cluster.runner import plan_may_use_network
    from engine.experts.base import Backend
    from engine.experts.default import build_registry
    from engine.kinds import KINDS

    registry = build_registry(device="cpu")
    assert plan_may_use_network(registry, RestoreOptions())  # the bundled generalist is a network
    assert not plan_may_use_network(build_registry(device="cpu", include_neural=False), RestoreOptions())
    for kind in KINDS:
        networks = any(e.info.backend != Backend.CLASSICAL for e in registry.for_task(kind))
        assert plan_may_use_network(registry, RestoreOptions(auto=False, only=(kind,))) == networks, kind


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU Ray head on 127.0.0.1 for this module; shut down (with all its workers) after."""
    pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    head = subprocess.Popen([sys.executable, str(REPO / "tests" / "ray_head.py"), "2"], env=cluster_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        line = head.stdout.readline()
        if not line.startswith("ADDRESS "):
            pytest.fail(f"the Ray head did not start: {line!r}")
        yield head.pid, line.split()[1]
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        # ray.shutdown() stops every process of the cluster; make sure before the next test.
        assert not _descendants(head.pid)


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _end_session(proc: subprocess.Popen) -> list[int]:
    """Kill ``proc`` if it still runs, then return the processes of its session still alive a
    second later (Ray workers that outlived it), killing them so none outlives the test."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    time.sleep(1)
    leftovers = _session_members(proc.pid)
    if leftovers:
        os.killpg(proc.pid, signal.SIGKILL)
    return leftovers


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_a_busy_worker(head_pid: int, proc: subprocess.Popen) -> Optional[int]:
    """SIGKILL the first worker process of the cluster seen restoring a file; its pid."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in _descendants(head_pid):
            if _command_line(pid).startswith("ray::RestoreWorker.restore"):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.01)
    return None


@pytest.mark.slow
def test_a_cluster_run_gives_a_local_runs_bytes_lines_and_exit_code_even_when_a_worker_is_killed(
        tmp_path, capsys, ray_head):
    head_pid, address = ray_head
    folder = make_archive(tmp_path / "in", good=5)
    code, out, _ = run_local(tmp_path, ["restore", "in", "-o", "local", "--json"], capsys)
    assert code == 1  # the corrupt file
    proc = subprocess.Popen(CLI + ["restore", "in", "-o", "remote", "--json", "--cluster", address, "--workers", "2"],
                            cwd=tmp_path, env=cluster_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed = _kill_a_busy_worker(head_pid, proc)
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    assert killed is not None, "no worker was seen restoring a file"
    assert "died" in stderr and proc.returncode == code, stderr
    # Every file once, in input order, with the local run's content; no extra or half-written file.
    lines = comparable(stdout, "remote")
    assert lines == comparable(out, "local")
    assert len(lines) == len([p for p in folder.rglob("*") if p.is_file()])
    assert outputs(tmp_path / "remote") == outputs(tmp_path / "local")
    # The corrupt file failed alone, with its reason.
    failed = [line for line in lines if line["error"]]
    assert len(failed) == 1 and failed[0]["input"] == "in/scans/broken.jpg" and "corrupt" in failed[0]["error"]
    assert any(s["model"] and not s["dropped"] for line in lines for s in line["stages"]), lines  # a network ran
    # Precision and metadata, as locally: 16-bit with alpha, EXIF and ICC.
    dark = cv2.imread(str(tmp_path / "remote" / "scans" / "dark16.png"), cv2.IMREAD_UNCHANGED)
    assert dark.dtype == np.uint16 and dark.shape[2] == 4
    camera = Image.open(tmp_path / "remote" / "camera.jpg")
    assert camera.info.get("icc_profile") and camera.getexif()[0x010F] == "Restora test camera"
    assert "files/min" in stderr and "restored 8 of 9 photos" in stderr and "1 failed" in stderr


@pytest.mark.slow
def test_cluster_local_never_overwrites_and_leaves_no_ray_process_behind(tmp_path, capsys):
    pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    make_archive(tmp_path / "in", good=1)
    argv = ["restore", "in", "-o", "out", "--json", "--only", "noise"]
    assert run_local(tmp_path, argv, capsys)[0] == 1
    before = outputs(tmp_path / "out")
    code, out, _ = run_local(tmp_path, argv, capsys)  # again: every file refused, as "already exists"
    proc = subprocess.Popen(CLI + argv + ["--cluster", "local", "--workers", "1"], cwd=tmp_path, env=cluster_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        leftovers = _end_session(proc)
    assert proc.returncode == code == 1, stderr
    lines = comparable(stdout, "out")
    assert lines == comparable(out, "out")
    assert all("already exists" in line["error"] for line in lines if not line["input"].endswith("broken.jpg"))
    assert outputs(tmp_path / "out") == before
    assert not leftovers  # no Ray process outlives the command


@pytest.mark.slow
def test_a_killed_cluster_run_resumes_with_skip_existing(tmp_path, capsys, ray_head):
    _, address = ray_head
    folder = make_archive(tmp_path / "in", good=4, corrupt=False)
    code, _, _ = run_local(tmp_path, ["restore", "in", "-o", "local", "--json"], capsys)
    assert code == 0
    argv = ["restore", "in", "-o", "remote", "--json", "--cluster", address, "--workers", "2"]
    first = subprocess.Popen(CLI + argv, cwd=tmp_path, env=cluster_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_TIMEOUT
    while first.poll() is None and time.monotonic() < deadline:
        if len([p for p in (tmp_path / "remote").rglob("*") if p.is_file() and not p.name.startswith(".")]) >= 2:
            break
        time.sleep(0.01)
    first.kill()  # the driver dies without a word; Ray stops its workers
    first.wait()
    count = len([p for p in folder.rglob("*") if p.is_file()])
    done_before = {name for name in outputs(tmp_path / "remote") if not Path(name).name.startswith(".")}
    assert 2 <= len(done_before) < count, done_before
    resumed = run_cluster(tmp_path, argv + ["--skip-existing"])
    assert resumed.returncode == 0, resumed.stderr
    lines = comparable(resumed.stdout, "remote")
    assert len(lines) == count and not any(line["error"] for line in lines)
    # Ray stops the dead driver's workers asynchronously: a task already running may still save its
    # photo (atomically, complete) after ``done_before`` was read, and the resumed run skips it too
    assert {line["output"][4:] for line in lines if line.get("skipped")} >= done_before
    assert outputs(tmp_path / "remote") == outputs(tmp_path / "local")  # complete, identical, no temporary file


@pytest.mark.slow
def test_sigterm_stops_a_local_cluster_run_its_workers_and_their_temporary_files(tmp_path):
    """Ray's driver sets its own SIGTERM handler (exit at once) and a crash handler that dumps a
    stack on SIGTERM; the CLI's stays: status 143, one line, no worker or temporary file left."""
    pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    (tmp_path / "in").mkdir()
    for i in range(6):
        Image.fromarray(np.round(_noisy(256, 320, i) * 255).astype(np.uint8)).save(tmp_path / "in" / f"p{i}.png")
    before = outputs(tmp_path / "in")
    argv = ["restore", "in", "-o", "out", "--set", "noise=1", "--no-generalist", "--cluster", "local", "--workers", "1"]
    env = dict(cluster_env(), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(CLI + argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    leftovers: list[int] = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if any(not p.name.startswith(".") for p in (tmp_path / "out").glob("*.png")):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        leftovers = _end_session(proc)
    assert proc.returncode == 143, stderr
    assert "restora: terminated" in stderr and "Traceback" not in stderr, stderr
    assert "SIGTERM received" not in stderr, stderr
    done = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert done and len(done) < 6 and not any(name.endswith(".partial") for name in done), done
    for name in done:
        Image.open(tmp_path / "out" / name).load()  # complete files
    assert outputs(tmp_path / "in") == before
    assert not leftovers  # no Ray process outlives the command
