"""The `restora restore` / `restora detect` contract from DESIGN.md, run on real files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.degrade import degrade

from testdata import REPO, photo

RESULT_KEYS = {"input", "output", "report", "stages", "seconds", "error"}


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def batch(tmp_path):
    """A folder with two degraded photos (one in a subfolder) and one corrupt file (real photos
    from ../shared when present, generated scenes otherwise)."""
    src = tmp_path / "in"
    write_png(src / "noisy.png", degrade(photo(0, 96), "noise", 0.6, seed=1))
    write_png(src / "sub" / "dark.png", degrade(photo(1, 96), "lowlight", 0.7, seed=2))
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return src


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_restore_batch_continues_past_corrupt_file(batch, tmp_path, capsys):
    before = {p: sha(p) for p in batch.rglob("*") if p.is_file()}
    outdir = tmp_path / "out"
    code = main(["restore", str(batch), "-o", str(outdir), "--json"])
    captured = capsys.readouterr()
    assert code == 1  # one input failed
    lines = json_lines(captured.out)
    assert len(lines) == 3 and all(RESULT_KEYS <= set(line) for line in lines)
    by_name = {Path(line["input"]).name: line for line in lines}
    assert by_name["broken.jpg"]["error"] and by_name["broken.jpg"]["output"] is None
    assert "\n" not in by_name["broken.jpg"]["error"]
    for name, rel in (("noisy.png", "noisy.png"), ("dark.png", "sub/dark.png")):
        line = by_name[name]
        assert line["error"] is None
        assert Path(line["output"]) == outdir / rel and (outdir / rel).is_file()
        assert set(line["report"]) == {"noise", "blur", "jpeg", "haze", "lowlight", "rain"}
        assert all(0.0 <= v <= 1.0 for v in line["report"].values())
        assert line["stages"] and all({"stage", "expert", "model", "strength"} <= set(s) for s in line["stages"])
    assert by_name["noisy.png"]["report"]["noise"] > 0.15
    assert by_name["dark.png"]["report"]["lowlight"] > 0.15
    assert "noise" in [s["stage"] for s in by_name["noisy.png"]["stages"]]
    assert "restored 2 of 3" in captured.err and "1 failed" in captured.err
    assert {p: sha(p) for p in batch.rglob("*") if p.is_file()} == before  # inputs untouched
    assert not list(outdir.rglob("*.tmp*"))  # no temp files left


def test_restore_never_overwrites_without_flag(batch, tmp_path, capsys):
    photo = batch / "noisy.png"
    outdir = tmp_path / "out"
    assert main(["restore", str(photo), "-o", str(outdir), "--only", "noise"]) == 0
    first = sha(outdir / "noisy.png")
    (outdir / "noisy.png").write_bytes(b"keep me")
    assert main(["restore", str(photo), "-o", str(outdir), "--only", "noise", "--json"]) == 1
    line = json_lines(capsys.readouterr().out)[0]
    assert "already exists" in line["error"]
    assert (outdir / "noisy.png").read_bytes() == b"keep me"
    assert main(["restore", str(photo), "-o", str(outdir), "--only", "noise", "--overwrite"]) == 0
    assert sha(outdir / "noisy.png") == first


def test_strength_zero_returns_the_input_and_format_options(batch, tmp_path):
    photo = batch / "noisy.png"
    out = tmp_path / "o"
    assert main(["restore", str(photo), "-o", str(out), "--set", "noise=0"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "noisy.png")), np.asarray(Image.open(photo)))
    assert main(["restore", str(photo), "-o", str(out), "--only", "noise", "--format", "tiff",
                 "--bit-depth", "16"]) == 0
    from engine.imageio import load_photo

    restored = load_photo(out / "noisy.tif")
    assert restored.bit_depth == 16 and restored.pixels.shape == (96, 96, 3)


def test_jpeg_quality_reaches_the_saved_file(batch, tmp_path):
    photo = batch / "noisy.png"
    sizes = {}
    for quality in (40, 98):
        out = tmp_path / f"q{quality}"
        assert main(["restore", str(photo), "-o", str(out), "--set", "noise=0", "--format", "jpeg",
                     "--jpeg-quality", str(quality)]) == 0
        saved = out / "noisy.jpg"
        with Image.open(saved) as im:
            # The luma table's first entry is the DC step: 1..2 at q98, 20 at q40 (IJG scaling).
            sizes[quality] = (saved.stat().st_size, im.quantization[0][0])
    assert sizes[40][1] > 4 * sizes[98][1]
    assert sizes[40][0] < sizes[98][0]


@pytest.mark.parametrize("argv", [
    ["restore", "x.png"],                                   # no -o
    ["restore", "x.png", "-o", "o", "--set", "noise"],       # not KIND=STRENGTH
    ["restore", "x.png", "-o", "o", "--set", "smudge=1"],    # unknown kind
    ["restore", "x.png", "-o", "o", "--set", "noise=2"],     # out of range
    ["restore", "x.png", "-o", "o", "--only", "noise,fog"],  # unknown kind
    ["restore", "x.png", "-o", "o", "--scale", "3"],
    ["restore", "x.png", "-o", "o", "--format", "gif"],
    ["restore", "x.png", "-o", "o", "--jpeg-quality", "0"],
    ["restore", "x.png", "-o", "o", "--jpeg-quality", "101"],
    ["restore", "x.png", "-o", "o", "--expert", "classical.deblur.wiener"],  # not KIND=ID
    ["restore", "x.png", "-o", "o", "--expert", "fog=classical.deblur.wiener"],  # unknown kind
    ["frobnicate"],
])
def test_bad_usage_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_missing_input_is_reported_and_others_still_run(batch, tmp_path, capsys):
    code = main(["restore", str(tmp_path / "nope.png"), str(batch / "noisy.png"), "-o", str(tmp_path / "o"),
                 "--only", "noise", "--json"])
    lines = json_lines(capsys.readouterr().out)
    assert code == 1
    assert [line["error"] is None for line in lines] == [False, True]


def test_detect_json(batch, capsys):
    code = main(["detect", str(batch / "noisy.png"), str(batch / "sub" / "broken.jpg"), "--json"])
    lines = json_lines(capsys.readouterr().out)
    assert code == 1
    assert lines[0]["input"].endswith("noisy.png") and lines[0]["report"]["noise"] > 0.15
    assert set(lines[0]["report"]) == {"noise", "blur", "jpeg", "haze", "lowlight", "rain"}
    assert lines[1]["report"] is None and lines[1]["error"]


def test_console_script_runs_detect_on_the_bundled_samples():
    exe = Path(sys.executable).parent / "restora"
    proc = subprocess.run([str(exe), "detect", str(REPO / "resources" / "samples"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reports = {Path(d["input"]).name: d["report"] for d in json_lines(proc.stdout)}
    assert reports["cat_noisy.png"]["noise"] > 0.15
    assert reports["rocket_blocky.jpg"]["jpeg"] > 0.15
    assert reports["coffee_dark.png"]["lowlight"] > 0.15
    assert reports["astronaut_hazy.png"]["haze"] > 0.15


def test_raw_input_becomes_a_16bit_tiff(tmp_path):
    from test_imageio_raw import write_dng

    from engine.imageio import load_photo

    (tmp_path / "in").mkdir()
    raw = write_dng(tmp_path / "in" / "shot.dng")
    assert main(["restore", str(raw.parent), "-o", str(tmp_path / "out"), "--only", "noise"]) == 0
    restored = load_photo(tmp_path / "out" / "shot.tif")
    assert restored.bit_depth == 16 and restored.source_format == "tiff"
    assert restored.pixels.shape == load_photo(raw).pixels.shape


def test_expert_choice_is_used_and_an_unknown_one_refused(batch, tmp_path, capsys):
    photo = batch / "noisy.png"
    out = tmp_path / "o"
    assert main(["restore", str(photo), "-o", str(out), "--only", "blur", "--expert", "blur=classical.deblur.wiener",
                 "--json"]) == 0
    stages = json_lines(capsys.readouterr().out)[0]["stages"]
    assert [(s["stage"], s["expert"]) for s in stages] == [("blur", "classical.deblur.wiener")]
    assert main(["restore", str(photo), "-o", str(out), "--expert", "blur=classical.denoise.dct"]) == 2
    err = capsys.readouterr().err
    assert "no such expert for blur" in err and "classical.deblur.wiener" in err


def test_a_stage_held_back_says_why_and_how_to_ask_for_it():
    """The per-file line names dropped stages only; a stage the automatic plan held back that the
    photographer can ask for gets a line of its own: why, and how to ask."""
    from engine.cli.restore import stage_held_back

    held = {"stage": "blur", "dropped": True,
            "reason": "did not help: blur severity 0.92 → 0.92; left unchanged: 2 of 6 detailed areas are sharp: "
                      "a sharp subject; ask for blur removal (move the Blur slider, or --set blur=1) to deblur it "
                      "anyway"}
    assert stage_held_back(held) == ("left unchanged: 2 of 6 detailed areas are sharp: a sharp subject; ask for blur "
                                     "removal (move the Blur slider, or --set blur=1) to deblur it anyway")
    assert stage_held_back({**held, "dropped": False}) == ""
    assert stage_held_back({"stage": "noise", "dropped": True, "reason": "did not help: noise 0.3 → 0.3"}) == ""


FOUNTAIN = REPO.parent / "shared" / "data" / "real" / "blurry_fountain.png"


@pytest.mark.skipif(not FOUNTAIN.is_file(), reason="../shared/data/real is not present")
def test_a_real_shaken_photo_held_back_says_how_to_ask_and_asked_is_deblurred(tmp_path, capsys):
    assert main(["restore", str(FOUNTAIN), "-o", str(tmp_path / "auto")]) == 0
    err = capsys.readouterr().err
    assert "stages: none (dropped: blur)" in err
    assert "      blur: left unchanged: 2 of 6 detailed areas are sharp" in err and "--set blur=1" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "auto" / FOUNTAIN.name)), np.asarray(Image.open(FOUNTAIN)))
    assert main(["restore", str(FOUNTAIN), "-o", str(tmp_path / "asked"), "--set", "blur=1"]) == 0
    err = capsys.readouterr().err
    assert "stages: blur " in err and "left unchanged" not in err


def test_a_gray_jpeg_comes_out_gray(tmp_path, capsys):
    """A black-and-white JPEG (the bundled rocket's luma, saved gray at quality 20) is deblocked and
    written as a gray JPEG: the restoration adds no colour, so nothing is widened to RGB."""
    rocket = Image.open(REPO / "resources" / "samples" / "rocket_blocky.jpg").convert("L")
    rocket.save(tmp_path / "bw.jpg", quality=20)
    assert main(["restore", str(tmp_path / "bw.jpg"), "-o", str(tmp_path / "out"), "--json"]) == 0
    result = json_lines(capsys.readouterr().out)[0]
    assert [s["stage"] for s in result["stages"] if not s["dropped"]] == ["jpeg"]
    assert result["not_kept"] == []
    out = Image.open(tmp_path / "out" / "bw.jpg")
    assert out.mode == "L" and out.size == rocket.size


def test_a_file_name_with_control_characters_cannot_break_a_line(tmp_path, capsys):
    """A newline or an escape in a file name is shown as '?' on the human lines (one line per
    photo, no terminal codes); the JSON keeps the names exact."""
    name = "new\nline\x1b[31m.png"
    write_png(tmp_path / "in" / name, degrade(photo(0, 64), "noise", 0.5, seed=3))
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json"]) == 0
    captured = capsys.readouterr()
    line = next(x for x in captured.err.splitlines() if x.startswith("[1/1]"))
    assert "new?line?[31m.png → " in line and "stages:" in line
    assert "\x1b" not in captured.err
    assert json_lines(captured.out)[0]["output"] == str(tmp_path / "out" / name)
    assert (tmp_path / "out" / name).is_file()
