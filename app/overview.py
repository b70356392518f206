"""The overview dock: a navigator (where the viewer is in the photo) above a before/after
histogram with clipped-shadow and clipped-highlight indicators.

Histograms are computed by :mod:`engine.histogram` on a worker thread (generation-numbered,
so a stale result is dropped); this module only draws the counts it gets back.
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from .imaging import rgb_to_qimage
from .theme import color

#: Milliseconds after the last change before the histogram is recomputed.
HISTOGRAM_DELAY_MS = 200
#: A clipped fraction at or above this lights the indicator (0.1 % of the pixels).
CLIP_WARN = 0.001
#: Longest side of the navigator's thumbnail, in pixels.
NAVIGATOR_SIDE = 240


class _HistogramSignals(QObject):
    done = Signal(int, object)


class _HistogramJob(QRunnable):
    def __init__(self, generation: int, doc, signals: _HistogramSignals) -> None:
        super().__init__()
        self.generation, self.doc, self.signals = generation, doc, signals

    def run(self) -> None:
        try:
            result = self.doc.histograms()
        except Exception:  # a document closed or replaced under us: nothing to show
            result = None
        self.signals.done.emit(self.generation, result)


class HistogramView(QWidget):
    """Draws the restored photo's R, G, B and luminance counts filled, the original's luminance as
    an outline, and red/blue corner triangles when highlights/shadows are clipped."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("histogramView")
        self.setMinimumHeight(60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.before = None
        self.after = None

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 96)

    def set_histograms(self, before, after) -> None:
        self.before, self.after = before, after
        self.update()

    @staticmethod
    def _path(counts: np.ndarray, rect: QRectF, peak: float, closed: bool) -> QPainterPath:
        path = QPainterPath()
        n = len(counts)
        heights = np.sqrt(counts / peak)  # square-root scale keeps small populations visible
        xs = rect.left() + np.arange(n) * rect.width() / (n - 1)
        ys = rect.bottom() - np.minimum(heights, 1.0) * rect.height()
        path.moveTo(xs[0], rect.bottom() if closed else ys[0])
        for x, y in zip(xs, ys, strict=True):
            path.lineTo(float(x), float(y))
        if closed:
            path.lineTo(xs[-1], rect.bottom())
            path.closeSubpath()
        return path

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.fillRect(rect, QColor(20, 21, 23))
        p.setPen(QPen(QColor(90, 92, 96), 1))
        p.drawRect(rect)
        plot = rect.adjusted(4, 12, -4, -3)
        if self.after is None:
            p.setPen(QColor(200, 202, 206))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Histogram")
            p.end()
            return
        hists = [h for h in (self.before, self.after) if h is not None]
        # the highest bin apart from the two clipped ends sets the scale, so a big spike at 0 or
        # 255 does not flatten the rest
        peak = max(float(max(h.red[1:-1].max(), h.green[1:-1].max(), h.blue[1:-1].max(), h.luma[1:-1].max()))
                   for h in hists) or 1.0
        p.setPen(Qt.PenStyle.NoPen)
        for counts, c in ((self.after.red, QColor(235, 70, 70, 110)), (self.after.green, QColor(70, 210, 90, 110)),
                          (self.after.blue, QColor(80, 130, 255, 120))):
            p.setBrush(c)
            p.drawPath(self._path(counts, plot, peak, closed=True))
        p.setBrush(QColor(235, 235, 235, 70))
        p.drawPath(self._path(self.after.luma, plot, peak, closed=True))
        if self.before is not None:
            p.setBrush(Qt.BrushStyle.NoBrush)
            pen = QPen(QColor(255, 214, 102), 1.4)
            pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawPath(self._path(self.before.luma, plot, peak, closed=False))
        for clipped, right in ((self.after.shadows_clipped, False), (self.after.highlights_clipped, True)):
            on = clipped >= CLIP_WARN
            c = QColor(255, 90, 80) if right else QColor(90, 160, 255)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(c if on else QColor(80, 82, 86))
            x = rect.right() - 3 if right else rect.left() + 3
            d = -9 if right else 9
            p.drawPolygon([QPointF(x, rect.top() + 2), QPointF(x + d, rect.top() + 2), QPointF(x, rect.top() + 11)])
        p.end()


class HistogramPanel(QWidget):
    """The histogram plus one line per end saying how much is clipped before → after."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.view = HistogramView(self)
        self.clip_label = QLabel("")
        self.clip_label.setObjectName("histogramClip")
        self.clip_label.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.view)
        lay.addWidget(self.clip_label)
        self._doc = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _HistogramSignals()
        self._signals.done.connect(self._done)
        self._generation = itertools.count(1)
        self._current = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(HISTOGRAM_DELAY_MS)
        self._timer.timeout.connect(self._start)
        self.computed = 0  # histograms received (tests read it)

    def set_document(self, doc) -> None:
        self._doc = doc
        if doc is None:
            self._current = next(self._generation)
            self.view.set_histograms(None, None)
            self.clip_label.setText("")
        else:
            self.schedule()

    def schedule(self) -> None:
        """Recompute after the changes stop for ``HISTOGRAM_DELAY_MS``."""
        if self._doc is not None:
            self._timer.start()

    def _start(self) -> None:
        self._current = next(self._generation)
        self._pool.start(_HistogramJob(self._current, self._doc, self._signals))

    def _done(self, generation: int, result) -> None:
        if generation != self._current or result is None:
            return
        before, after = result
        self.computed += 1
        self.view.set_histograms(before, after)
        self.clip_label.setText(
            f"Shadows clipped: {before.shadows_clipped:.1%} → {after.shadows_clipped:.1%}   "
            f"Highlights clipped: {before.highlights_clipped:.1%} → {after.highlights_clipped:.1%}")
        self.clip_label.setToolTip("Filled: the restored photo (red, green, blue, luminance); dashed line: the "
                                   "original's luminance. Corner triangles light up when shadows (left) or "
                                   "highlights (right) are clipped.")

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)


class Navigator(QWidget):
    """A thumbnail of the whole photo with the viewer's visible part outlined; click or drag to
    move the view there."""

    def __init__(self, viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("navigator")
        self.viewer = viewer
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._image: Optional[QImage] = None
        self._key = None
        viewer.viewChanged.connect(self.update)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 170)

    def _thumbnail(self) -> Optional[QImage]:
        src = self.viewer.source()
        if src is None:
            return None
        step = max(1, int(np.ceil(max(src.width, src.height) / NAVIGATOR_SIDE)))
        key = (id(src), step)
        if key != self._key:
            self._image = rgb_to_qimage(src.before(slice(0, src.height), slice(0, src.width), step))
            self._key = key
        return self._image

    def image_rect(self) -> Optional[QRectF]:
        """Where the thumbnail is drawn, in widget coordinates."""
        src = self.viewer.source()
        if src is None:
            return None
        r = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        s = min(r.width() / src.width, r.height() / src.height)
        w, h = src.width * s, src.height * s
        return QRectF(r.center().x() - w / 2, r.center().y() - h / 2, w, h)

    def view_rect(self) -> Optional[QRectF]:
        """The viewer's visible part, outlined on the thumbnail (widget coordinates)."""
        area, src = self.image_rect(), self.viewer.source()
        if area is None:
            return None
        reg = self.viewer.visible_region()
        s = area.width() / src.width
        return QRectF(area.left() + reg.left * s, area.top() + reg.top * s, (reg.right - reg.left) * s,
                      (reg.bottom - reg.top) * s)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(20, 21, 23))
        image, area = self._thumbnail(), self.image_rect()
        if image is None or area is None:
            p.setPen(QColor(200, 202, 206))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Navigator")
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(area, image)
        view = self.view_rect()
        if view is not None and not self.viewer.is_fit():
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(QColor(0, 0, 0, 200), 3))
            p.drawRect(view)
            p.setPen(QPen(color("focus", dark=True), 1.5))
            p.drawRect(view)
        p.end()

    def _move_to(self, pos: QPointF) -> None:
        area, src = self.image_rect(), self.viewer.source()
        if area is None or area.width() <= 0:
            return
        s = src.width / area.width()
        self.viewer.center_on((pos.x() - area.left()) * s, (pos.y() - area.top()) * s)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._move_to(event.position())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._move_to(event.position())


class OverviewPanel(QWidget):
    """Navigator above the histogram (the "Overview" dock)."""

    def __init__(self, viewer, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("overviewPanel")
        self.navigator = Navigator(viewer, self)
        self.histogram = HistogramPanel(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.navigator, 1)
        lay.addWidget(self.histogram)
