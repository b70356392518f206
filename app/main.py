"""Entry point of the desktop application (``restora-gui`` and ``restora gui [FILES...]``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

ORGANIZATION = "Restora"
APPLICATION = "Restora"


def configure_application(app) -> None:
    """Names for QSettings, the desktop file name and the window icon (idempotent)."""
    from .theme import app_icon

    app.setOrganizationName(ORGANIZATION)
    app.setOrganizationDomain("restora.invalid")
    app.setApplicationName(APPLICATION)
    app.setDesktopFileName("restora")
    app.setWindowIcon(app_icon())


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="restora-gui", description="Restora desktop application.")
    parser.add_argument("files", nargs="*", help="a photo to open, or photos and folders to queue")
    args, _qt_args = parser.parse_known_args(list(argv))
    return args


def main(files: Optional[list[str]] = None) -> int:
    """Start the GUI; returns the exit status. ``files``: photos/folders given on the command
    line (``None``: read them from ``sys.argv``)."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from .settings import AppSettings
    from .theme import apply_theme
    from .window import MainWindow

    paths = _parse(sys.argv[1:] if files is None else files).files
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0]])
    configure_application(app)
    settings = AppSettings()
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.handle_paths([Path(p) for p in paths]))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
