"""Look and feel: Fusion style, a dark or light palette, the application style sheet and icon."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from engine import assets


def resources_dir() -> Path:
    """Icons, style sheet, desktop entry (package data of the installed engine, or the checkout's)."""
    return assets.resources_dir()


def app_icon() -> QIcon:
    icons = resources_dir() / "icons"
    icon = QIcon()
    for name in ("restora.svg", "restora-256.png", "restora-64.png"):
        if (icons / name).is_file():
            icon.addFile(str(icons / name))
    return icon


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(43, 45, 48), QColor(222, 224, 228)
    accent = QColor(76, 145, 230)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor(37, 38, 41))
    p.setColor(QPalette.ColorRole.ToolTipBase, window)
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, QColor(54, 56, 60))
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 90, 90))
    p.setColor(QPalette.ColorRole.Highlight, accent)
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Link, accent)
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(130, 133, 138))
    p.setColor(QPalette.ColorRole.Light, QColor(78, 80, 85))
    p.setColor(QPalette.ColorRole.Midlight, QColor(62, 64, 68))
    p.setColor(QPalette.ColorRole.Mid, QColor(70, 72, 77))
    p.setColor(QPalette.ColorRole.Dark, QColor(22, 23, 25))
    p.setColor(QPalette.ColorRole.Shadow, QColor(10, 10, 12))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 122, 126))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, QColor(85, 88, 94))
    return p


def wants_dark(theme: str) -> bool:
    """``"dark"``/``"light"``, or for ``"system"`` what the platform's colour scheme says."""
    if theme in ("dark", "light"):
        return theme == "dark"
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion style with a dark or light palette, plus ``resources/style/restora.qss``."""
    app.setStyle("Fusion")
    dark = wants_dark(theme)
    app.setPalette(_dark_palette() if dark else app.style().standardPalette())
    qss = resources_dir() / "style" / "restora.qss"
    sheet = qss.read_text(encoding="utf-8") if qss.is_file() else ""
    app.setStyleSheet(sheet)
    app.setProperty("restoraDark", dark)
