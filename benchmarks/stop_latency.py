"""How fast ``restora restore`` stops on Ctrl-C (SIGINT) or ``kill`` (SIGTERM), and what it leaves.

Each scenario starts the real CLI as a subprocess (in its own session, its stderr on a pseudo
terminal so that the progress line is drawn, as a photographer sees it), waits until the progress
line shows a given moment (analysis, a network stage's tiles, plug-and-play deblurring,
encoding, the third file of a batch, a Ray cluster's files), sends the signal and measures:

* ``exit s``: seconds from the signal to the CLI process's exit;
* ``all gone s``: seconds until no process of its session is left (Ray workers included);
* the exit status, the last line on stderr;
* left behind: hidden ``.partial`` files (outputs being written, stage changes kept on disk) in
  the output folder and the temporary folder, and any output that does not decode whole;
* whether the inputs are byte-identical afterwards.

The photos are synthetic (``memory_scaling.write_photo``), written once into the work folder.
Every code tree given with ``--tree NAME=DIR`` runs every scenario (one run at a time,
alternating trees per scenario so that the load is shared alike); the results file is rewritten
after every row.

Usage: ``python benchmarks/stop_latency.py [--tree before=DIR --tree after=DIR] [--mp 12]
[--only tiles,encode] [--work DIR] [--out benchmarks/results/stop-latency.md]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._host import cpu_model  # noqa: E402
from benchmarks.memory_scaling import write_photo  # noqa: E402

CLI = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Scenario:
    """Signal ``signame`` ``delay`` seconds after the progress line first matches ``moment``."""

    name: str
    what: str
    photos: str  # key of the photo set (see ``make_photos``)
    args: list[str]
    moment: str
    signame: str
    delay: float = 0.0
    timeout: float = 900.0


#: The moment an output's temporary file appears in the output folder (its encoding has begun).
PARTIAL = "<output being written>"

SCENARIOS = [
    Scenario("analysis", "analysing a large photo", "large", [], "analysing", "SIGINT", 0.3),
    Scenario("analysis-big", "analysing a photo of twice the size", "sharp", ["--set", "blur=1", "--expert",
             "blur=classical.deblur.wiener", "--no-generalist"], "analysing", "SIGTERM", 1.0),
    Scenario("tiles", "a network stage's tiles (FFDNet)", "large", ["--set", "noise=1", "--no-generalist"],
             r"tile 3/", "SIGTERM", 0.5),
    Scenario("tiles-big", "a network stage's large tiles (FFDNet, --tile 2048)", "large",
             ["--set", "noise=1", "--no-generalist", "--tile", "2048"], r"tile 1/", "SIGTERM", 3.0),
    Scenario("tiles-int", "a network stage's tiles (FFDNet), Ctrl-C", "large",
             ["--set", "noise=1", "--no-generalist"], r"tile 2/", "SIGINT", 1.0),
    Scenario("pnp", "plug-and-play deblurring", "blurred",
             ["--set", "blur=1", "--expert", "blur=deblur.pnp.neural.ffdnet-color", "--no-generalist"],
             r"\] blur: ", "SIGTERM", 3.0),
    Scenario("pnp-late", "plug-and-play deblurring, later (its iterations)", "blurred",
             ["--set", "blur=1", "--expert", "blur=deblur.pnp.neural.ffdnet-color", "--no-generalist"],
             r"\] blur: ", "SIGINT", 12.0),
    Scenario("encode", "encoding a large 16-bit PNG (its temporary file appeared)", "sharp",
             ["--set", "blur=1", "--expert", "blur=classical.deblur.wiener", "--no-generalist", "--bit-depth", "16"],
             PARTIAL, "SIGTERM", 0.0),
    Scenario("batch", "a folder, during its third file", "folder", ["--set", "noise=1", "--no-generalist"],
             r"\[3/6\]", "SIGINT", 0.5),
    Scenario("cluster", "a folder on --cluster local, after the first file", "folder",
             ["--set", "noise=1", "--no-generalist", "--cluster", "local", "--workers", "2"],
             r"→", "SIGTERM", 0.5, timeout=600.0),
]


def make_photos(work: Path, mp: float) -> dict[str, list[Path]]:
    """The photo sets, written once: ``large`` (noisy, ``mp`` MP), ``blurred`` (1 MP, box blur),
    ``sharp`` (2 × ``mp`` MP, for a long encode), ``folder`` (6 noisy 1 MP photos)."""
    work.mkdir(parents=True, exist_ok=True)
    sets: dict[str, list[Path]] = {}
    for key, name, size, scene in (("large", "large.png", mp, "noisy"), ("blurred", "blurred.png", 1.0, "blurred"),
                                   ("sharp", "sharp.png", 2 * mp, "sharp")):
        path = work / "photos" / key / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_photo(path, size, scene=scene)
        sets[key] = [path]
    folder = work / "photos" / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        path = folder / f"p{i}.png"
        if not path.exists():
            write_photo(path, 1.0, seed=i, scene="noisy")
    sets["folder"] = [folder]
    return sets


def digests(paths: list[Path]) -> dict[str, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (the CLI and every process it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _interactive() -> None:
    """In the child: Ctrl-C's default action, as in a terminal (a shell's background job starts
    with SIGINT ignored, and a program keeps ignoring it then)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _clean(text: str) -> str:
    return re.sub(r"^[█·]+\s+[\d.]+%\s+", "", text.strip())


@dataclass
class Outcome:
    sent_after: Optional[float] = None
    exit_s: Optional[float] = None
    all_gone_s: Optional[float] = None
    rc: Optional[int] = None
    last_line: str = ""
    left: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    outputs: int = 0
    inputs_same: bool = True
    note: str = ""


def run_one(tree: Path, sc: Scenario, inputs: list[Path], work: Path) -> Outcome:
    out = work / "out" / f"{sc.name}-{tree.name}-{time.time_ns()}"
    tmp = work / "t" / str(len(list((work / "t").glob("*"))) if (work / "t").exists() else 0)
    tmp.mkdir(parents=True)  # the CLI's temporary folder (short: Ray puts its sockets there), inspected afterwards
    before = digests(inputs)
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               RESTORA_MEMORY_BUDGET="16G", TMPDIR=str(tmp), COLUMNS="120")
    master, slave = pty.openpty()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", CLI, "restore", *map(str, inputs), "-o", str(out),
                             "--device", "cpu", *sc.args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=env, cwd=tree, start_new_session=True, preexec_fn=_interactive)
    os.close(slave)
    res = Outcome()
    sent = None
    lines: list[str] = []
    pending = ""
    try:
        while True:
            if sent is None and time.monotonic() - t0 > sc.timeout:
                res.note = f"moment not seen in {sc.timeout:.0f} s"
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if sent is None and sc.moment == PARTIAL and out.exists() and any(
                    p.name.endswith(".partial") and not p.name.startswith(".restora-change") for p in out.iterdir()):
                time.sleep(sc.delay)
                proc.send_signal(getattr(signal, sc.signame))
                sent = time.monotonic()
                res.sent_after = sent - t0
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk and proc.poll() is not None:
                    break
                pending += chunk
                *done, pending = re.split(r"[\r\n]", pending)
                for piece in done:
                    msg = _clean(piece)
                    if msg:
                        lines.append(msg)
                        if sent is None and re.search(sc.moment, msg):
                            time.sleep(sc.delay)
                            proc.send_signal(getattr(signal, sc.signame))
                            sent = time.monotonic()
                            res.sent_after = sent - t0
            elif proc.poll() is not None:
                break
            if sent is not None and time.monotonic() - sent > sc.timeout:
                res.note = f"still running {sc.timeout:.0f} s after the signal: killed"
                os.killpg(proc.pid, signal.SIGKILL)
                break
        res.rc = proc.wait()
        if sent is not None:
            res.exit_s = time.monotonic() - sent
            while session_pids(proc.pid) and time.monotonic() - sent < sc.timeout:
                time.sleep(0.05)
            res.all_gone_s = time.monotonic() - sent
        leftover = session_pids(proc.pid)
        if leftover:
            res.note += f" {len(leftover)} processes left: killed"
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    res.last_line = lines[-1] if lines else ""
    (work / "logs").mkdir(exist_ok=True)
    (work / "logs" / f"{out.name}.txt").write_text("\n".join(lines) + "\n")  # the whole stderr, to read
    res.inputs_same = digests(inputs) == before
    from PIL import Image

    for folder in (out, tmp):
        if folder.exists():
            res.left += [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".partial")]
    if out.exists():
        for p in out.rglob("*.png"):
            res.outputs += 1
            try:
                with Image.open(p) as im:
                    im.load()
            except Exception as e:  # noqa: BLE001 - recorded as a broken output
                res.broken.append(f"{p.name}: {e}")
    return res


def _s(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.2f}"


def table(machine: str, rows: list[tuple[Scenario, str, Outcome]]) -> str:
    head = ["# Stopping `restora restore` with Ctrl-C / SIGTERM", "", machine, "",
            "Produced by `benchmarks/stop_latency.py`. Exit s: from the signal to the CLI's exit; all gone: until no "
            "process of its session is left (Ray's included). Left: `.partial` files in the output and temporary "
            "folders afterwards; broken: outputs that do not decode whole.", "",
            "| scenario | signal | sent at s | tree | exit s | all gone s | status | left | broken | outputs "
            "| inputs same | last line |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    body = []
    for sc, tree, r in rows:
        last = r.last_line.replace("|", "/")[:90] + (f" ({r.note.strip()})" if r.note.strip() else "")
        body.append(f"| {sc.name}: {sc.what} | {sc.signame} | {_s(r.sent_after)} | {tree} | {_s(r.exit_s)} | "
                    f"{_s(r.all_gone_s)} | {r.rc} | {len(r.left)} | {len(r.broken)} | {r.outputs} | "
                    f"{'yes' if r.inputs_same else '**NO**'} | {last} |")
    return "\n".join(head + body) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="a code tree to run (default: this one, named 'this')")
    ap.add_argument("--mp", type=float, default=12.0, help="megapixels of the large photo (default 12)")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "restora-stop-latency")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stop-latency.md")
    args = ap.parse_args()
    trees = [(n, Path(d).resolve()) for n, _, d in (t.partition("=") for t in args.tree)] or [("this", REPO)]
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    photos = make_photos(args.work, args.mp)
    load = os.getloadavg()
    machine = (f"Machine: {cpu_model()}, {os.cpu_count()} cores, load average at the start {load[0]:.1f} "
               f"(shared with other jobs: a loaded machine); large photo {args.mp:g} MP, `nice -n 10`, "
               f"OMP_NUM_THREADS=1; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    rows: list[tuple[Scenario, str, Outcome]] = []
    for k, sc in enumerate(chosen):
        order = trees if k % 2 == 0 else trees[::-1]
        for name, tree in order:
            r = run_one(tree, sc, photos[sc.photos], args.work)
            rows.append((sc, name, r))
            print(f"{sc.name:10s} {name:8s} exit {r.exit_s} gone {r.all_gone_s} rc {r.rc} left {r.left} "
                  f"broken {r.broken} same {r.inputs_same} | {r.last_line[:100]} {r.note}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(table(machine + f" Load at the end of this row {os.getloadavg()[0]:.1f}.", rows))


if __name__ == "__main__":
    main()
