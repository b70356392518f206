"""Stage the application for the README screenshots (run under Xvfb by take.sh).

    python docs/screenshots/scenes.py main PHOTO            # a photo in split view
    python docs/screenshots/scenes.py batch PHOTO FOLDER OUT  # the batch queue mid-run
    python docs/screenshots/scenes.py models                # the model manager
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

    scene, args = argv[0], argv[1:]
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication([sys.argv[0]])
    configure_application(app)
    settings = AppSettings()
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.resize(1500, 920)
    window.show()
    if scene == "main":
        window.open_file(args[0])
    elif scene == "batch":
        window.open_file(args[0])
        window.batch.add_paths([args[1]])
        window.batch.outdir.setText(args[2])
        window.batch_dock.raise_()
        window.jobs.finished.connect(lambda _doc: window.batch.runner.is_running() or window.batch.start())
    elif scene == "models":
        QTimer.singleShot(500, window.models_dialog)
    else:
        raise SystemExit(f"unknown scene {scene!r}")
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
