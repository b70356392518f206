"""Model manager dialog (real WeightsManager against a local hub), settings dialog, and
settings that persist across a restart of the main window."""

from __future__ import annotations

import hashlib
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import cheap_restorer, isolate_settings  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]

REPO, FILE = "restora-test/tiny", "tiny.pth"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from hubserver import HubServer

    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        yield server


def _catalog(data: bytes):
    from hubserver import DEFAULT_COMMIT

    from engine.weights.catalog import parse_catalog

    return parse_catalog({"models": [{
        "id": "tiny", "name": "Tiny denoiser", "tasks": ["noise"], "architecture": "Compact", "scale": 1,
        "license": "MIT", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "format": "pth",
        "sources": [{"type": "hub", "repo_id": REPO, "filename": FILE, "revision": DEFAULT_COMMIT}],
    }]})


def _row(dialog, model_id: str) -> list[str]:
    from app.models_dialog import COLUMNS

    row = dialog._ids.index(model_id)
    return [dialog.table.item(row, c).text() for c in range(len(COLUMNS))]


def test_model_manager_download_verify_remove_import(qtbot, hub, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("spandrel")
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    from app.models_dialog import ModelManagerDialog
    from engine.weights import WeightsManager

    data = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(120_000))
    hub.add(REPO, FILE, data)
    manager = WeightsManager(cache_dir=tmp_path / "cache", catalog=_catalog(data))
    dialog = ModelManagerDialog(lambda: manager)
    qtbot.addWidget(dialog)
    dialog.show()
    name, tasks, size, licence, source, status = _row(dialog, "tiny")
    assert (name, tasks, size, licence, status) == ("Tiny denoiser", "Noise", "0.1 MB", "MIT", "available")
    assert source.startswith("hf://restora-test/tiny/tiny.pth")
    dialog.select("tiny")
    assert dialog.download_button.isEnabled() and not dialog.remove_button.isEnabled()

    fractions = []
    dialog.runner.progress.connect(lambda f, m: fractions.append(f))
    with qtbot.waitSignal(dialog.modelsChanged, timeout=30000):
        dialog.download_button.click()
    assert _row(dialog, "tiny")[-1] == "installed" and fractions and max(fractions) > 0.5
    assert dialog.verify_button.isEnabled() and dialog.remove_button.isEnabled()
    with qtbot.waitSignal(dialog.runner.finished, timeout=30000):
        dialog.verify_button.click()
    assert "tiny: ok" in dialog.message.text()
    with qtbot.waitSignal(dialog.modelsChanged, timeout=30000):
        dialog.remove_selected(confirm=False)
    assert _row(dialog, "tiny")[-1] == "available"

    torch.manual_seed(0)
    src = tmp_path / "My Upscaler.safetensors"
    save_file(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), str(src))
    with qtbot.waitSignal(dialog.modelsChanged, timeout=30000):
        dialog.import_file(str(src))
    from engine.units import format_bytes

    assert _row(dialog, "my-upscaler")[:3] == ["My Upscaler", "Upscale", format_bytes(src.stat().st_size)]
    assert _row(dialog, "my-upscaler")[-1] == "installed"


def test_model_manager_cancel_stops_a_download(qtbot, tmp_path):
    from app.models_dialog import ModelManagerDialog
    from engine.weights import WeightsManager

    class SlowManager(WeightsManager):
        """Downloads forever in small steps, reporting progress (a cancellation point)."""

        steps = 0

        def download(self, model_id, progress=None, cancel=None, **kwargs):
            while True:
                SlowManager.steps += 1
                progress(min(SlowManager.steps / 1000, 0.99), "downloading")
                time.sleep(0.01)

    data = b"x" * 1000
    dialog = ModelManagerDialog(lambda: SlowManager(cache_dir=tmp_path / "cache", catalog=_catalog(data)))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.select("tiny")
    dialog.download_button.click()
    qtbot.waitUntil(lambda: SlowManager.steps > 5 and dialog.cancel_button.isEnabled(), timeout=10000)
    with qtbot.waitSignal(dialog.runner.cancelled, timeout=10000):
        dialog.cancel_button.click()
    assert dialog.message.text() == "Cancelled." and not dialog.progress.isVisible()
    steps = SlowManager.steps
    time.sleep(0.1)
    assert SlowManager.steps == steps  # the worker really stopped


def test_settings_persist_across_a_restart(qtbot, qapp, tmp_path):
    from app.settings import AppSettings
    from app.settings_dialog import SettingsDialog
    from app.window import MainWindow

    isolate_settings(qapp, tmp_path / "settings")
    w = MainWindow(AppSettings(), restorer=cheap_restorer())
    qtbot.addWidget(w)
    w.show()
    dialog = SettingsDialog(w.settings, w)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.tile.setValue(512)
    dialog.format.setCurrentIndex(dialog.format.findData("tiff"))
    dialog.bit_depth.setCurrentIndex(dialog.bit_depth.findData("16"))
    dialog.outdir.setText(str(tmp_path / "exports"))
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.apply()
    w.actions_by_name["mode_side"].trigger()
    w.actions_by_name["overlay"].trigger()
    w.resize(690, 470)  # fits the offscreen screen (restoreGeometry clamps to it)
    w.settings.add_recent_file("/photos/one.jpg")
    w.close()

    again = MainWindow(AppSettings(), restorer=cheap_restorer())  # a fresh QSettings reads the file
    qtbot.addWidget(again)
    s = again.settings
    assert (s.device, s.tile, s.output_format, s.bit_depth, s.theme) == ("cpu", 512, "tiff", 16, "dark")
    assert s.output_dir == str(tmp_path / "exports")
    assert again.viewer.mode().value == "side" and again.actions_by_name["mode_side"].isChecked()
    assert again.viewer.overlay() and again.actions_by_name["overlay"].isChecked()
    assert (again.width(), again.height()) == (690, 470)
    assert s.recent_files() == ["/photos/one.jpg"]
    assert [a.text() for a in again.recent_menu.actions()][0] == "/photos/one.jpg"
    assert list((tmp_path / "settings").rglob("*.ini"))  # stored where the test put it
    # A new dialog shows the stored choices.
    d2 = SettingsDialog(s, again)
    assert d2.tile.value() == 512 and d2.theme.currentData() == "dark" and d2.device.currentData() == "cpu"
