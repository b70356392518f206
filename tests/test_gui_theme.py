"""WCAG AA in both themes, measured on rendered widgets: text at least 4.5:1 against its
background, control outlines (check boxes, radio buttons, the focus ring) at least 3:1."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

pytestmark = [pytest.mark.gui, pytest.mark.timeout(60)]


def _luminance(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ np.array([0.2126, 0.7152, 0.0722])


def contrast(a, b) -> np.ndarray:
    la, lb = _luminance(np.asarray(a)), _luminance(np.asarray(b))
    hi, lo = np.maximum(la, lb), np.minimum(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def _pixels(widget) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())[:, :w * 3]
    return arr.reshape(h, w, 3).copy()


def _best_contrast(widget, background, region=None) -> float:
    px = _pixels(widget)
    if region is not None:
        px = px[region]
    return float(contrast(px.reshape(-1, 3), np.asarray(background)[None]).max())


@pytest.fixture(params=["dark", "light"])
def themed(request, qapp, qtbot):
    from app.theme import apply_theme

    apply_theme(qapp, request.param)
    yield request.param == "dark", qapp.palette()
    qapp.setStyleSheet("")
    qapp.setPalette(qapp.style().standardPalette())


def _rgb(qcolor) -> tuple[int, int, int]:
    return qcolor.red(), qcolor.green(), qcolor.blue()


def test_text_and_controls_meet_wcag_aa(themed, qtbot):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QCheckBox, QLabel, QRadioButton, QVBoxLayout, QWidget

    dark, pal = themed
    window_bg = _rgb(pal.color(QPalette.ColorRole.Window))
    host = QWidget()
    qtbot.addWidget(host)
    lay = QVBoxLayout(host)
    label = QLabel("Detected: noise 62 %")
    status = QLabel("handled by the generalist")
    status.setObjectName("stageStatus")
    box = QCheckBox("Denoise")
    radio = QRadioButton("Each photo's own auto plan")
    for w in (label, status, box, radio):
        lay.addWidget(w)
    host.show()
    qtbot.waitExposed(host)
    assert _best_contrast(label, window_bg) >= 4.5
    assert _best_contrast(status, window_bg) >= 4.5
    # the unticked indicator's outline (the left 20 px of the widget) against the window
    for w in (box, radio):
        assert not w.isChecked()
        assert _best_contrast(w, window_bg, (slice(None), slice(0, 20))) >= 3.0, (dark, w.text())
    # ticked too: the check mark / dot is visible
    box.setChecked(True)
    radio.setChecked(True)
    for w in (box, radio):
        assert _best_contrast(w, window_bg, (slice(None), slice(0, 20))) >= 3.0


def test_status_colours_are_readable_on_the_lists_background(themed):
    from PySide6.QtGui import QPalette

    from app.theme import COLORS

    dark, pal = themed
    for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase, QPalette.ColorRole.Window):
        bg = _rgb(pal.color(role))
        for name in ("warning", "ok", "error", "running", "muted"):
            from PySide6.QtGui import QColor

            c = QColor(COLORS[dark][name])
            assert contrast(_rgb(c), bg) >= 4.5, (dark, name, role)
    text = _rgb(pal.color(QPalette.ColorRole.HighlightedText))
    assert contrast(text, _rgb(pal.color(QPalette.ColorRole.Highlight))) >= 4.5


def test_tab_shows_a_focus_ring(themed, qtbot):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

    dark, pal = themed
    host = QWidget()
    qtbot.addWidget(host)
    lay = QHBoxLayout(host)
    lay.setContentsMargins(20, 20, 20, 20)
    a, b = QPushButton("Start"), QPushButton("Pause")
    lay.addWidget(a)
    lay.addWidget(b)
    host.show()
    host.activateWindow()
    qtbot.waitExposed(host)
    a.setFocus()
    qtbot.keyClick(a, "\t")
    qtbot.waitUntil(lambda: b.hasFocus())
    from app.theme import COLORS

    ring = qtbot_app_ring()
    assert ring is not None and ring.isVisible() and ring.widget() is b
    # the ring is drawn around the button: its colour appears just outside the button
    px = _pixels(host)
    g = b.geometry()
    band = px[g.top() - 3:g.bottom() + 4, g.left() - 3:g.right() + 4]
    from PySide6.QtGui import QColor

    focus = _rgb(QColor(COLORS[dark]["focus"]))
    assert (np.abs(band.astype(int) - focus).sum(axis=2) < 40).sum() > 2 * g.width()
    assert contrast(focus, _rgb(pal.color(QPalette.ColorRole.Window))) >= 3.0


def qtbot_app_ring():
    from PySide6.QtWidgets import QApplication

    ring = getattr(QApplication.instance(), "_restora_focus_ring", None)
    return None if ring is None else ring.frame


def test_the_viewer_shows_focus_when_reached_with_tab(themed, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

    from app.viewer import BeforeAfterViewer

    host = QWidget()
    qtbot.addWidget(host)
    lay = QHBoxLayout(host)
    button, viewer = QPushButton("Open"), BeforeAfterViewer()
    lay.addWidget(button)
    lay.addWidget(viewer)
    host.show()
    host.activateWindow()
    qtbot.waitExposed(host)
    qtbot.waitUntil(host.isActiveWindow)
    viewer.setFocus(Qt.FocusReason.MouseFocusReason)
    assert not viewer.shows_focus_outline()
    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_Tab)
    qtbot.waitUntil(viewer.hasFocus)
    assert viewer.shows_focus_outline()
