"""Stage the application for the README screenshots (run under Xvfb by take.sh).

    python docs/screenshots/scenes.py main THEME PHOTO              # split view, zoomed, navigator + histogram
    python docs/screenshots/scenes.py filmstrip THEME PHOTO...      # several photos: filmstrip + queue
    python docs/screenshots/scenes.py batch THEME OUT PHOTO...      # a finished batch with a failed row
    python docs/screenshots/scenes.py models THEME                  # the model manager
    python docs/screenshots/scenes.py uncertainty THEME PHOTO [CAUTION]  # Uncertainty mode, legend, summary

THEME is dark or light. The batch scene adds a truncated JPEG (written to OUT) so that one row
fails with its reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.main import configure_application
    from app.settings import AppSettings
    from app.theme import apply_theme
    from app.window import MainWindow

    scene, theme, args = argv[0], argv[1], argv[2:]
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication([sys.argv[0]])
    configure_application(app)
    settings = AppSettings()
    settings.theme = theme
    apply_theme(app, theme)
    window = MainWindow(settings)
    window.resize(1560, 960)
    window.show()
    if scene == "main":
        def zoom(_result=None):
            if window.doc is not None and window.viewer.is_fit():
                window.viewer.set_zoom(2.0)
                window.viewer.center_on(window.doc.width * 0.4, window.doc.height * 0.45)
        window.jobs.finished.connect(zoom)
        window.open_file(args[0])
    elif scene == "filmstrip":
        window.handle_paths([Path(p) for p in args])
        window.filmstrip_dock.show()
        QTimer.singleShot(300, lambda: window.batch.table.selectRow(1))
    elif scene == "batch":
        out = Path(args[0])
        out.mkdir(parents=True, exist_ok=True)
        broken = out / "inputs" / "scan_0042.jpg"
        broken.parent.mkdir(parents=True, exist_ok=True)
        good = Path(args[1]).read_bytes()
        broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)  # a JPEG header and nothing else
        window.batch.add_paths([broken, *args[1:]])  # the failure shows at once
        window.open_file(args[1])
        window.batch.outdir.setText(str(out / "restored"))
        window.filmstrip_dock.show()
        del good
        window.jobs.finished.connect(lambda _r: window.batch_dock.raise_())

        def select_failed():
            rows = [i for i, e in enumerate(window.batch.model.entries) if e.status.value == "failed"]
            if rows:
                window.batch.table.selectRow(rows[0])
                window.batch.activate(rows[0])
        window.batch.runner.on_done = lambda: (window.batch._on_run_done(), select_failed())
        QTimer.singleShot(200, window.batch.start)
    elif scene == "uncertainty":
        window.set_view_mode("uncertainty")
        if len(args) > 1:
            window.jobs.finished.connect(lambda _r: window.controls.caution.setValue(int(args[1])))
        window.open_file(args[0])
    elif scene == "models":
        QTimer.singleShot(500, window.models_dialog)
    else:
        raise SystemExit(f"unknown scene {scene!r}")
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
