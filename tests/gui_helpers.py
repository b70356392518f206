"""Shared pieces of the GUI tests: small degraded photos on disk and a restorer with cheap experts.

The experts here are deliberately simple (a box filter, a gamma lift) so that GUI tests measure
the GUI, not the engine's speed; ``SlowExpert`` runs long enough to be cancelled. The analyser
is the engine's real one when it is installed, else a crude stand-in that still tells noisy
from clean (the GUI only needs a report).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from engine.analysis.report import DegradationReport, KindAssessment
from engine.degrade import degrade
from engine.experts.base import Expert, ExpertContext, ExpertInfo, ExpertRegistry
from engine.kinds import KINDS
from engine.pipeline import Restorer

REPO = Path(__file__).resolve().parents[1]
CLEAN = REPO.parent / "shared" / "data" / "clean"


def clean_crop(index: int = 0, size: int = 96) -> np.ndarray:
    """Centre crop (float32 size×size×3 in [0, 1]) of a clean shared photo, or a synthetic scene
    when the shared data is absent."""
    files = sorted(CLEAN.glob("*.jpg"))
    if files:
        img = np.asarray(Image.open(files[index % len(files)]).convert("RGB"), dtype=np.float32) / 255.0
        h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        return np.ascontiguousarray(img[y:y + size, x:x + size])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.stack([xx, yy, 0.5 * (xx + yy)], axis=2).astype(np.float32)


def write_photo(path: Path, kind: str = "noise", strength: float = 0.7, index: int = 0, size: int = 96) -> Path:
    """A degraded PNG at ``path`` (``kind`` applied with ``engine.degrade``)."""
    img = degrade(clean_crop(index, size), kind, strength, seed=index)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path)
    return path


class BoxDenoiser(Expert):
    """3x3 box filter: a cheap stand-in for a denoiser. ``runs`` counts calls."""

    def __init__(self, eid: str = "test-box", task: str = "noise", name: str = "Box filter") -> None:
        self.info = ExpertInfo(id=eid, name=name, tasks=(task,))
        self.runs = 0

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        p = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
        out = sum(p[dy:dy + image.shape[0], dx:dx + image.shape[1]] for dy in range(3) for dx in range(3)) / 9.0
        self.runs += 1
        ctx.progress(1.0)
        return np.clip(out, 0, 1).astype(np.float32)


class SigmaBox(Expert):
    """A stand-in for a denoiser whose strength is a physical parameter (``sigma_strength``, like
    FFDNet's σ·s): moves towards the 3x3 box filter by ``strength ** 0.5``, so that a
    half-strength run differs from half the full-strength change. ``strengths`` lists the
    strengths it ran at; ``seconds`` (default 0) spreads each run over that long, checking
    progress (a cancellation point) in 50 steps."""

    def __init__(self, eid: str = "test-sigma-box", seconds: float = 0.0) -> None:
        self.info = ExpertInfo(id=eid, name="Sigma box", tasks=("noise",), sigma_strength=True)
        self.seconds = seconds
        self.strengths: list[float] = []

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        steps = 50 if self.seconds else 1
        for i in range(steps):
            ctx.progress(i / steps)
            time.sleep(self.seconds / steps)
        self.strengths.append(float(ctx.strength))
        box = BoxDenoiser().run(image)
        return np.clip(image + (box - image) * np.float32(ctx.strength) ** np.float32(0.5), 0, 1).astype(np.float32)


class GammaLift(Expert):
    """Brightens dark photos (gamma 0.6) — a cheap low-light stand-in, or any other task."""

    def __init__(self, eid: str = "test-gamma", task: str = "lowlight", name: str = "Gamma lift") -> None:
        self.info = ExpertInfo(id=eid, name=name, tasks=(task,))
        self.runs = 0

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.5)
        self.runs += 1
        return np.clip(image, 0, 1).astype(np.float32) ** np.float32(0.6)


class SlowExpert(Expert):
    """Takes ``seconds`` in small steps, reporting progress (a cancellation point) every step."""

    def __init__(self, eid: str = "test-slow", task: str = "noise", seconds: float = 20.0) -> None:
        self.info = ExpertInfo(id=eid, name="Slow test expert", tasks=(task,))
        self.seconds = seconds
        self.started = 0
        self.finished = 0

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        self.started += 1
        steps = 400
        for i in range(steps):
            ctx.progress(i / steps, f"tile {i + 1}/{steps}")
            time.sleep(self.seconds / steps)
        self.finished += 1
        return image.copy()


def fallback_analyser(image: np.ndarray) -> DegradationReport:
    """Noise from the spread of pixel-to-pixel differences, low light from the mean level."""
    d = np.diff(image.mean(axis=2), axis=1)
    noise = float(np.clip((np.median(np.abs(d)) - 0.01) * 12, 0, 1))
    dark = float(np.clip((0.3 - image.mean()) * 4, 0, 1))
    sev = {"noise": noise, "lowlight": dark}
    return DegradationReport({k: KindAssessment(sev.get(k, 0.0), 0.8, {}) for k in KINDS})


def analyser():
    try:
        from engine.analysis import analyse
    except ImportError:
        return fallback_analyser
    return analyse


def cheap_restorer(*extra: Expert) -> Restorer:
    """A restorer with cheap experts for noise (two choices) and low light, plus ``extra``."""
    experts = [BoxDenoiser(), BoxDenoiser("test-box2", name="Box filter (second)"), GammaLift(), *extra]
    return Restorer(ExpertRegistry(experts), device="cpu", analyser=analyser())


def isolate_settings(qapp, folder: Path) -> None:
    """Point QSettings (INI format) at ``folder`` so tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    from app.main import configure_application

    configure_application(qapp)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))


def show_window(qtbot, restorer: Restorer):
    """A shown 1000x700 main window on ``restorer`` that closes without asking (settings isolated
    by the caller with :func:`isolate_settings`)."""
    from app.settings import AppSettings
    from app.window import MainWindow

    w = MainWindow(AppSettings(), restorer=restorer)
    w.confirm_close = lambda what: True
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    return w


def open_and_wait(qtbot, window, path: Path, timeout_ms: int = 30000):
    """Open ``path`` in ``window`` and wait until its document is shown."""
    window.open_file(path)
    qtbot.waitUntil(lambda: window.doc is not None and not window.jobs.is_busy(), timeout=timeout_ms)
    return window.doc


class ToldBoxGeneralist(Expert):
    """A conditioned generalist stand-in: box-filters (twice) when told ``noise``, brightens
    (gamma 0.6) when told ``lowlight``, leaves the photo alone otherwise."""

    def __init__(self) -> None:
        from engine.experts.base import Backend
        from engine.kinds import GENERALIST

        self.info = ExpertInfo(id="test-told-gen", name="Told generalist", tasks=(GENERALIST,),
                               backend=Backend.ONNX, conditioned=True)
        self.told: list[dict] = []

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        self.told.append(dict(ctx.strengths))
        out = image
        if "noise" in ctx.strengths:
            out = BoxDenoiser().run(BoxDenoiser().run(out))
        if "lowlight" in ctx.strengths:
            out = np.clip(out, 0, 1) ** np.float32(0.6)
        ctx.progress(1.0)
        return np.asarray(out, np.float32)


def write_synthetic_photo(path: Path, kind: str = "noise", strength: float = 0.7, size: int = 96,
                          seed: int = 0) -> Path:
    """Like :func:`write_photo` on the synthetic gradient scene (any size, whether or not the
    shared photos are present), for tests that need a given size or a scene the analysis
    reads the same way everywhere."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    scene = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2).astype(np.float32)
    img = degrade(scene, kind, strength, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path)
    return path
