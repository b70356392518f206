"""Look and feel: Fusion style, a dark or light palette, the application style sheet and icon.

Both themes aim at WCAG AA: text at least 4.5:1 against its background, control outlines
(check boxes, radio buttons, the focus ring) at least 3:1. ``tests/test_gui_theme.py``
measures the rendered colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QFocusFrame, QWidget

from engine import assets

#: Per-theme colours the style sheet and custom-painted widgets use (``@name@`` in the .qss).
#: ``indicator``: check box / radio outlines; ``focus``: the keyboard focus ring;
#: ``warning``/``ok``/``error``/``running``/``muted``: status text on the window or base colour.
COLORS: dict[bool, dict[str, str]] = {
    True: {"indicator": "#9aa0a8", "focus": "#6fb0ff", "checked": "#4c91e6", "checkmark": "#ffffff",
           "warning": "#e0a84a", "ok": "#5cc77a", "error": "#ff7b72", "running": "#79b8ff",
           "muted": "#a9adb3", "severity": "#8b939e", "severity_on": "#d9822b"},
    False: {"indicator": "#6b6f76", "focus": "#1a5fb4", "checked": "#1a5fb4", "checkmark": "#ffffff",
            "warning": "#8a5300", "ok": "#1e7b34", "error": "#b42318", "running": "#1a5fb4",
            "muted": "#595d63", "severity": "#7d8590", "severity_on": "#c4661b"},
}


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


def is_dark() -> bool:
    """Whether the running application uses the dark theme."""
    app = QApplication.instance()
    return bool(app.property("restoraDark")) if app is not None else False


def color(name: str, dark: Optional[bool] = None) -> QColor:
    """One of :data:`COLORS` for the current (or the given) theme."""
    return QColor(COLORS[is_dark() if dark is None else dark][name])


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
    p.setColor(QPalette.ColorRole.Highlight, QColor(38, 95, 170))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Link, accent)
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(150, 153, 158))
    p.setColor(QPalette.ColorRole.Light, QColor(78, 80, 85))
    p.setColor(QPalette.ColorRole.Midlight, QColor(62, 64, 68))
    p.setColor(QPalette.ColorRole.Mid, QColor(70, 72, 77))
    p.setColor(QPalette.ColorRole.Dark, QColor(22, 23, 25))
    p.setColor(QPalette.ColorRole.Shadow, QColor(10, 10, 12))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 122, 126))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, QColor(85, 88, 94))
    return p


def _light_palette(standard: QPalette) -> QPalette:
    p = QPalette(standard)
    p.setColor(QPalette.ColorRole.Highlight, QColor(26, 95, 180))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(100, 104, 110))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, QColor(190, 192, 196))
    return p


def wants_dark(theme: str) -> bool:
    """``"dark"``/``"light"``, or for ``"system"`` what the platform's colour scheme says."""
    if theme in ("dark", "light"):
        return theme == "dark"
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def style_sheet(dark: bool) -> str:
    """``resources/style/restora.qss`` with the theme's colours and the resource folder filled in."""
    qss = resources_dir() / "style" / "restora.qss"
    sheet = qss.read_text(encoding="utf-8") if qss.is_file() else ""
    for name, value in COLORS[dark].items():
        sheet = sheet.replace(f"@{name}@", value)
    theme_dir = (resources_dir() / "style" / ("dark" if dark else "light")).as_posix()
    return sheet.replace("@style@", theme_dir)


class FocusRing(QObject):
    """Draws a visible outline (``QFocusFrame``, coloured by the style sheet) around whichever
    widget has the keyboard focus, so moving with Tab always shows where you are."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.frame: Optional[QFocusFrame] = None
        app.focusChanged.connect(self._moved)

    def _moved(self, _old: Optional[QWidget], new: Optional[QWidget]) -> None:
        if self.frame is not None and not _alive(self.frame):
            self.frame = None  # deleted with the window it was in
        if new is None or new.window() is None or new.isWindow() or new.objectName() == "viewer":
            if self.frame is not None:
                self.frame.hide()
            return
        if self.frame is None:
            self.frame = QFocusFrame()
            self.frame.setObjectName("focusRing")
        self.frame.setWidget(new)
        self.frame.show()


def _alive(obj: QObject) -> bool:
    try:
        obj.objectName()
        return True
    except RuntimeError:
        return False


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion style with a dark or light palette, plus ``resources/style/restora.qss``."""
    app.setStyle("Fusion")
    dark = wants_dark(theme)
    app.setPalette(_dark_palette() if dark else _light_palette(app.style().standardPalette()))
    app.setProperty("restoraDark", dark)
    app.setStyleSheet(style_sheet(dark))
    if not isinstance(getattr(app, "_restora_focus_ring", None), FocusRing):
        app._restora_focus_ring = FocusRing(app)
