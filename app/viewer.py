"""The before/after viewer: split (draggable divider), side by side, or toggle; both sides share
one zoom and one centre, so they always show the same part of the photo.

Only the visible region is rendered, at screen resolution: the viewer asks its
:class:`ImageSource` for ``(rows, cols, step)`` crops, where ``step`` (:func:`sampling_step`: 1, 2, 3, 4,
6, 8, …) skips pixels the screen cannot show anyway. A 24 MP photo at "fit" therefore costs a screen-sized
compose, not a full-resolution one.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .imaging import heat_to_qimage, rgb_to_qimage

BEFORE = "before"
AFTER = "after"

#: Zoom limits, in screen pixels per image pixel.
MIN_ZOOM = 1 / 64
MAX_ZOOM = 32.0
WHEEL_FACTOR = 1.25
#: Pixels of slack around the split divider that start a divider drag instead of a pan.
DIVIDER_GRAB = 8
#: Gap between the two panes of the side-by-side mode, in screen pixels.
SIDE_GAP = 4
#: While a slider or a pan is moving, render at half resolution; full resolution this many
#: milliseconds after the last change.
SETTLE_MS = 150


class ViewMode(str, enum.Enum):
    SPLIT = "split"
    SIDE_BY_SIDE = "side"
    TOGGLE = "toggle"
    #: The restored photo under a heat map of its expected error, with a legend in 8-bit levels.
    UNCERTAINTY = "uncertainty"


class ImageSource(Protocol):
    """What the viewer shows. ``revision`` changes whenever the restored side changes."""

    width: int
    height: int
    revision: int

    def before(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        """uint8 or float32 HxWx3 crop of the original."""

    def after(self, rows: slice, cols: slice, step: int) -> np.ndarray:
        """float32 HxWx3 crop of the restored photo, in [0, 1]."""

    def change_map(self, step: int) -> Optional[np.ndarray]:
        """float32 map (H/step)x(W/step) in [0, 1] of where the restoration changed most, or None."""

    def uncertainty_map(self, step: int) -> Optional[np.ndarray]:
        """float32 map (H/step)x(W/step) in [0, 1] of the restored photo's expected error (1 = the
        legend's full scale), or None while it is not made (the last map stays on screen; the source's
        owner calls :meth:`BeforeAfterViewer.refresh_layers` when it is). Must not compute for
        long: it is asked during a paint. Optional: a source without it shows no uncertainty."""

    def uncertainty_status(self) -> str:
        """Optional: what the Uncertainty caption adds while the map shown is not final (``""``: final)."""

    def caution_pending(self) -> bool:
        """Optional: True while ``after`` shows the result without its Caution blend (its map is
        being made; the owner bumps ``revision`` when it is)."""


@dataclass(frozen=True)
class Region:
    """A crop of the photo in image pixels: ``[top, bottom) x [left, right)`` sampled every ``step``."""

    top: int
    bottom: int
    left: int
    right: int
    step: int

    @property
    def empty(self) -> bool:
        return self.bottom <= self.top or self.right <= self.left


#: A sampling step may leave the screen up to this share of its pixels short (the smooth draw
#: scales the crop up by at most 1/0.9): a 4240-pixel-wide photo in a 1500-pixel pane is then
#: sampled every 3rd pixel (0.94 samples per screen pixel), not every 2nd (1.41, twice the
#: pixels to compose), which made a 12 MP photo's settled paint slower than a 24 MP one's.
MIN_SAMPLES_PER_SCREEN_PIXEL = 0.9


def sampling_step(image_per_screen: float) -> int:
    """The sampling step for ``image_per_screen`` image pixels per screen pixel: the largest
    power of two or three times one (1, 2, 3, 4, 6, 8, 12, …: few distinct steps, so the
    sources' per-step copies stay few) that keeps at least
    :data:`MIN_SAMPLES_PER_SCREEN_PIXEL` samples per screen pixel; 1 at 100 % and closer."""
    limit = image_per_screen / MIN_SAMPLES_PER_SCREEN_PIXEL
    if limit < 2:
        return 1
    pow2 = 2 ** int(math.floor(math.log2(limit)))
    return 3 * pow2 // 2 if 3 * pow2 // 2 <= limit else pow2


class BeforeAfterViewer(QWidget):
    """Shows a photo before and after restoration. Keys: Space (hold) original, F fit, 1 100 %,
    2 200 %, +/- zoom. Mouse: wheel zooms around the cursor, drag pans (or moves the divider)."""

    viewChanged = Signal()      # zoom or centre changed
    modeChanged = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 150)
        self._source: Optional[ImageSource] = None
        self._mode = ViewMode.SPLIT
        self._zoom: Optional[float] = None  # None = fit to the pane
        self._center = QPointF(0, 0)
        self._split = 0.5
        self._show_original = False
        self._overlay = False
        self._drag: Optional[str] = None
        self._drag_last = QPointF()
        self._cache: dict[str, tuple[tuple, QImage]] = {}
        #: heat-map layer (the source's method name) → (key, image, step)
        self._heat_cache: dict[str, tuple[tuple, QImage, int]] = {}
        self._layers = 0  # bumped when a source's heat maps changed without a new revision
        self.renders = 0  # how many crops were composed (tests and profiling read it)
        self._loupe = False
        self._cursor: Optional[QPointF] = None
        self._busy_text = ""
        self.legend_text = ""  # the change map's legend, set by the window
        self.uncertainty_legend_text = ""  # the uncertainty map's legend, set by the window
        self._coarse = False
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._refine)

    # -- source -----------------------------------------------------------------------------
    def set_source(self, source: Optional[ImageSource], keep_view: bool = False) -> None:
        self._source = source
        self._cache.clear()
        self._heat_cache.clear()
        if source is not None and not keep_view:
            self._zoom = None
            self._center = QPointF(source.width / 2, source.height / 2)
        self.viewChanged.emit()
        self.update()

    def source(self) -> Optional[ImageSource]:
        return self._source

    def refresh(self, interactive: bool = False) -> None:
        """Re-render after the source's restored side changed (its ``revision`` tells the cache).

        ``interactive``: more changes are coming (a slider is moving): render at half
        resolution now and at full resolution once the changes stop for ``SETTLE_MS``.
        """
        if interactive:
            self._coarse = True
            self._settle.start()
        self.update()

    def refresh_layers(self) -> None:
        """Ask the source for its heat maps again at the next paint (a map made in the background
        arrived; the restored pixels are the same)."""
        self._layers += 1
        self.update()

    def is_coarse(self) -> bool:
        """Whether the last render was a fast half-resolution one (more changes were coming)."""
        return self._coarse

    def settle(self) -> None:
        """Finish a pending half-resolution render now (the next paint is at full resolution)."""
        self._settle.stop()
        self._refine()

    def _refine(self) -> None:
        self._coarse = False
        self.update()

    # -- modes ------------------------------------------------------------------------------
    def mode(self) -> ViewMode:
        return self._mode

    def set_mode(self, mode: ViewMode | str) -> None:
        mode = ViewMode(mode)
        if mode != self._mode:
            self._mode = mode
            self._cache.clear()
            self.modeChanged.emit(mode.value)
            self.viewChanged.emit()
            self.update()

    def split_position(self) -> float:
        """The divider position in split mode, as a fraction of the width (0..1)."""
        return self._split

    def set_split_position(self, fraction: float) -> None:
        self._split = min(max(float(fraction), 0.0), 1.0)
        self.update()

    def show_original(self) -> bool:
        return self._show_original

    def set_show_original(self, on: bool) -> None:
        if on != self._show_original:
            self._show_original = on
            self.update()

    def overlay(self) -> bool:
        return self._overlay

    def loupe(self) -> bool:
        return self._loupe

    def set_loupe(self, on: bool) -> None:
        """A 1:1 (actual pixels) magnifier under the cursor, most useful in fit view."""
        self._loupe = bool(on)
        self.update()

    def set_busy_text(self, text: str) -> None:
        """A banner over the photo (e.g. "Opening big.tif…"); empty hides it."""
        self._busy_text = text
        self.update()

    def busy_text(self) -> str:
        return self._busy_text

    def set_overlay(self, on: bool) -> None:
        self._overlay = bool(on)
        self.update()

    # -- zoom and pan -----------------------------------------------------------------------
    def is_fit(self) -> bool:
        return self._zoom is None

    def zoom(self) -> float:
        """Screen pixels per image pixel (logical pixels)."""
        return self._zoom if self._zoom is not None else self._fit_zoom()

    def center(self) -> QPointF:
        """The image point (in image pixels) at the middle of each pane."""
        return QPointF(self._center)

    def fit(self) -> None:
        if self._source is not None:
            self._center = QPointF(self._source.width / 2, self._source.height / 2)
        self._zoom = None
        self.viewChanged.emit()
        self.update()

    def set_zoom(self, zoom: float, anchor: Optional[QPointF] = None) -> None:
        """Zoom to ``zoom`` keeping the image point under widget point ``anchor`` (default: the
        pane centre) where it is."""
        if self._source is None:
            return
        zoom = min(max(float(zoom), MIN_ZOOM), MAX_ZOOM)
        if anchor is not None:
            pane = self._pane_at(anchor)
            before = self._to_image(anchor, pane)
            self._zoom = zoom
            after = self._to_image(anchor, pane)
            self._center += before - after
        else:
            self._zoom = zoom
        self._clamp_center()
        self.viewChanged.emit()
        self.update()

    def zoom_by(self, factor: float, anchor: Optional[QPointF] = None) -> None:
        self.set_zoom(self.zoom() * factor, anchor)

    def center_on(self, x: float, y: float) -> None:
        """Put image point (``x``, ``y``) (image pixels) in the middle of each pane (the
        navigator calls this); in fit view this first switches to 100 %."""
        if self._source is None:
            return
        if self._zoom is None:
            self._zoom = 1.0 if self._fit_zoom() < 1.0 else self._fit_zoom()
        self._center = QPointF(x, y)
        self._clamp_center()
        self.viewChanged.emit()
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the view by (dx, dy) screen pixels (the photo follows the mouse)."""
        if self._source is None:
            return
        z = self.zoom()
        if self._zoom is None:
            self._zoom = z
        self._center -= QPointF(dx / z, dy / z)
        self._clamp_center()
        self.viewChanged.emit()
        self.refresh(interactive=True)

    def _clamp_center(self) -> None:
        if self._source is None:
            return
        self._center = QPointF(min(max(self._center.x(), 0.0), float(self._source.width)),
                               min(max(self._center.y(), 0.0), float(self._source.height)))

    # -- geometry ---------------------------------------------------------------------------
    def panes(self) -> dict[str, QRectF]:
        """Widget rectangles of the panes: one ``"main"`` pane, or ``"before"`` and ``"after"``."""
        r = QRectF(self.rect())
        if self._mode == ViewMode.SIDE_BY_SIDE:
            half = (r.width() - SIDE_GAP) / 2
            return {BEFORE: QRectF(r.left(), r.top(), half, r.height()),
                    AFTER: QRectF(r.left() + half + SIDE_GAP, r.top(), half, r.height())}
        return {"main": r}

    def _pane_at(self, p: QPointF) -> QRectF:
        for rect in self.panes().values():
            if rect.contains(p):
                return rect
        return next(iter(self.panes().values()))

    def _fit_zoom(self) -> float:
        if self._source is None:
            return 1.0
        pane = next(iter(self.panes().values()))
        if pane.width() <= 0 or pane.height() <= 0:
            return 1.0
        return min(pane.width() / self._source.width, pane.height() / self._source.height)

    def _to_image(self, p: QPointF, pane: QRectF) -> QPointF:
        z = self.zoom()
        return self._center + (p - pane.center()) / z

    def _to_widget(self, x: float, y: float, pane: QRectF) -> QPointF:
        z = self.zoom()
        return pane.center() + (QPointF(x, y) - self._center) * z

    def visible_region(self, side: str = AFTER) -> Region:
        """The crop of the photo that ``side``'s pane shows now (image pixels, sampling step)."""
        panes = self.panes()
        pane = panes.get(side, panes.get("main"))
        return self._region_for(pane)

    def _region_for(self, pane: QRectF) -> Region:
        src = self._source
        if src is None:
            return Region(0, 0, 0, 0, 1)
        z = self.zoom()
        half_w, half_h = pane.width() / 2 / z, pane.height() / 2 / z
        step = sampling_step(1.0 / (z * self.devicePixelRatioF())) * (2 if self._coarse else 1)
        left = max(0, int(math.floor(self._center.x() - half_w)))
        right = min(src.width, int(math.ceil(self._center.x() + half_w)))
        top = max(0, int(math.floor(self._center.y() - half_h)))
        bottom = min(src.height, int(math.ceil(self._center.y() + half_h)))
        # Align to the sampling grid so panning does not make the samples shimmer.
        left, top = (left // step) * step, (top // step) * step
        return Region(top, bottom, left, right, step)

    def divider_x(self) -> float:
        r = self.rect()
        return r.left() + self._split * r.width()

    # -- rendering --------------------------------------------------------------------------
    def rendered_image(self, side: str) -> Optional[QImage]:
        """The last image rendered for ``side`` (``"before"`` or ``"after"``), for tests."""
        item = self._cache.get(side)
        return None if item is None else item[1]

    def _image_for(self, side: str, region: Region) -> Optional[QImage]:
        src = self._source
        if src is None or region.empty:
            return None
        key = (region, src.revision if side == AFTER else 0, id(src))
        cached = self._cache.get(side)
        if cached is not None and cached[0] == key:
            return cached[1]
        rows, cols = slice(region.top, region.bottom), slice(region.left, region.right)
        pixels = src.after(rows, cols, region.step) if side == AFTER else src.before(rows, cols, region.step)
        image = rgb_to_qimage(pixels)
        self.renders += 1
        self._cache[side] = (key, image)
        return image

    def _heat_image(self, layer: str) -> Optional[tuple[QImage, int]]:
        """A heat-map layer (``"change_map"`` or ``"uncertainty_map"``: the source method that
        makes it, at about one megapixel) as an image and its step, cached per source revision.
        While the source has no map for its revision yet, the last one stays."""
        src = self._source
        if src is None or not hasattr(src, layer):
            return None
        step = max(1, int(math.ceil(math.sqrt(src.width * src.height / 1.0e6))))
        key = (src.revision, self._layers, id(src), step)
        cached = self._heat_cache.get(layer)
        if cached is not None and (cached[0] == key or self._coarse):
            return cached[1], cached[2]  # while sliding, keep the last map
        heat = getattr(src, layer)(step)
        if heat is None:
            return None if cached is None else (cached[1], cached[2])
        image = heat_to_qimage(heat)
        self._heat_cache[layer] = (key, image, step)
        return image, step

    def render_side(self, painter: QPainter, side: str, pane: QRectF) -> None:
        region = self._region_for(pane)
        image = self._image_for(side, region)
        if image is None:
            return
        tl = self._to_widget(region.left, region.top, pane)
        extent_w = min(image.width() * region.step, self._source.width - region.left)
        extent_h = min(image.height() * region.step, self._source.height - region.top)
        br = self._to_widget(region.left + extent_w, region.top + extent_h, pane)
        src_rect = QRectF(0, 0, extent_w / region.step, extent_h / region.step)
        smooth = self.zoom() * self.devicePixelRatioF() * region.step < 2.0
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(QRectF(tl, br), image, src_rect)
        layer = None
        if side == AFTER and not self._show_original:
            layer = ("uncertainty_map" if self._mode == ViewMode.UNCERTAINTY
                     else "change_map" if self._overlay else None)
        over = self._heat_image(layer) if layer else None
        if over is not None:
            heat, step = over
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(tl, br), heat,
                              QRectF(region.left / step, region.top / step, extent_w / step, extent_h / step))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(self.backgroundRole()).darker(115))
        if self._source is None:
            painter.setPen(self.palette().color(self.foregroundRole()))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Open a photo (Ctrl+O) or drop one here.\nDrop folders onto the queue to restore many.")
            painter.end()
            return
        panes = self.panes()
        if self._mode == ViewMode.SIDE_BY_SIDE:
            for side, pane in panes.items():
                painter.save()
                painter.setClipRect(pane)
                self.render_side(painter, BEFORE if self._show_original else side, pane)
                self._caption(painter, pane, self.pane_caption(side), left=True)
                painter.restore()
        elif self._mode == ViewMode.UNCERTAINTY and not self._show_original:
            pane = panes["main"]
            self.render_side(painter, AFTER, pane)
            self._caption(painter, pane, self.uncertainty_caption(), left=True)
        elif self._mode == ViewMode.TOGGLE or self._show_original:
            pane = panes["main"]
            side = BEFORE if self._show_original else AFTER
            self.render_side(painter, side, pane)
            caption = ("Before (original)" if side == BEFORE
                       else self.after_caption("After (hold Space for the original)"))
            self._caption(painter, pane, caption, left=True)
        else:
            pane = panes["main"]
            x = self.divider_x()
            painter.save()
            painter.setClipRect(QRectF(pane.left(), pane.top(), x - pane.left(), pane.height()))
            self.render_side(painter, BEFORE, pane)
            painter.restore()
            painter.save()
            painter.setClipRect(QRectF(x, pane.top(), pane.right() - x, pane.height()))
            self.render_side(painter, AFTER, pane)
            painter.restore()
            self._caption(painter, pane, "Before", left=True)
            self._caption(painter, pane, self.after_caption("After"), left=False)
            painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
            painter.drawLine(QPointF(x, pane.top()), QPointF(x, pane.bottom()))
            painter.setBrush(QColor(255, 255, 255, 230))
            painter.drawEllipse(QPointF(x, pane.center().y()), 7, 7)
        if self._mode == ViewMode.UNCERTAINTY and not self._show_original and self.uncertainty_legend_text:
            self._legend(painter, self.uncertainty_legend_text)
        elif self._overlay and not self._show_original and self.legend_text:
            self._legend(painter)
        if self._loupe and self._cursor is not None and self._drag is None:
            self._draw_loupe(painter, self._cursor)
        if self._busy_text:
            self._caption(painter, QRectF(self.rect()).adjusted(0, self.height() / 2 - 30, 0, 0), self._busy_text,
                          left=None)
        if self.shows_focus_outline():
            from .theme import color

            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(color("focus"), 2))
            painter.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        painter.end()

    def uncertainty_caption(self) -> str:
        """The Uncertainty mode's caption; while the source's map is not final it says so."""
        status = getattr(self._source, "uncertainty_status", None)
        note = status() if status is not None else ""
        return self.after_caption("Uncertainty: where the result may be wrong" + (f" — {note}" if note else "")
                                  + " (hold Space for the original)")

    def pane_caption(self, side: str) -> str:
        """The label a side-by-side pane shows: both say so while Space shows the original."""
        if self._show_original:
            return "Before (original, Space held)"
        return "Before" if side == BEFORE else self.after_caption("After")

    def after_caption(self, text: str) -> str:
        """``text``, saying so while the restored side is shown without its Caution blend."""
        pending = getattr(self._source, "caution_pending", None)
        return text + (" — Caution: measuring…" if pending is not None and pending() else "")

    def _legend(self, painter: QPainter, text: Optional[str] = None) -> None:
        """Colour bar of the change (or uncertainty) map with its units (bottom left)."""
        text = self.legend_text if text is None else text
        metrics = painter.fontMetrics()
        bar_w, pad = 120, 8
        w = bar_w + metrics.horizontalAdvance(text) + 3 * pad
        box = QRectF(10, self.height() - metrics.height() - 2 * pad - 10, w, metrics.height() + 2 * pad)
        painter.save()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(box, 4, 4)
        bar = QRectF(box.left() + pad, box.center().y() - 6, bar_w, 12)
        heat = heat_to_qimage(np.tile(np.linspace(0, 1, bar_w, dtype=np.float32), (12, 1)))
        painter.fillRect(bar, QColor(60, 60, 60))
        painter.drawImage(bar, heat)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(QRectF(bar.right() + pad, box.top(), w - bar_w - 2 * pad, box.height()),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        painter.restore()

    #: Edge of the loupe, in screen pixels.
    LOUPE_SIZE = 220

    def loupe_region(self, pos: QPointF) -> tuple[str, Region]:
        """Which side and which 1:1 crop (image pixels, step 1) the loupe at ``pos`` shows."""
        pane = self._pane_at(pos)
        if self._mode == ViewMode.SIDE_BY_SIDE:
            side = BEFORE if pane == self.panes()[BEFORE] else AFTER
        elif self._mode == ViewMode.SPLIT:
            side = BEFORE if pos.x() < self.divider_x() else AFTER
        else:
            side = AFTER
        if self._show_original:
            side = BEFORE
        centre = self._to_image(pos, pane)
        n = int(round(self.LOUPE_SIZE * self.devicePixelRatioF()))
        left = int(min(max(centre.x() - n / 2, 0), max(self._source.width - n, 0)))
        top = int(min(max(centre.y() - n / 2, 0), max(self._source.height - n, 0)))
        return side, Region(top, min(top + n, self._source.height), left, min(left + n, self._source.width), 1)

    def _draw_loupe(self, painter: QPainter, pos: QPointF) -> None:
        if self._source is None:
            return
        side, reg = self.loupe_region(pos)
        if reg.empty:
            return
        rows, cols = slice(reg.top, reg.bottom), slice(reg.left, reg.right)
        pixels = self._source.after(rows, cols, 1) if side == AFTER else self._source.before(rows, cols, 1)
        image = rgb_to_qimage(pixels)
        dpr = self.devicePixelRatioF()
        size = QRectF(0, 0, image.width() / dpr, image.height() / dpr)
        size.moveCenter(pos)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(size, image)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0, 200), 3))
        painter.drawRect(size)
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        painter.drawRect(size)
        painter.restore()
        self._caption(painter, size, f"1:1 {'before' if side == BEFORE else 'after'}", left=True)

    def _caption(self, painter: QPainter, pane: QRectF, text: str, left: Optional[bool]) -> None:
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        w, h = metrics.horizontalAdvance(text) + 14, metrics.height() + 6
        if left is None:  # centred
            x = pane.center().x() - w / 2
        else:
            x = pane.left() + 10 if left else pane.right() - w - 10
        box = QRectF(x, pane.top() + 10, w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # -- input ------------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.zoom_by(WHEEL_FACTOR ** notches, event.position())
        event.accept()

    def _near_divider(self, p: QPointF) -> bool:
        return self._mode == ViewMode.SPLIT and abs(p.x() - self.divider_x()) <= DIVIDER_GRAB

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self._source is not None:
            self._drag = "divider" if self._near_divider(event.position()) else "pan"
            self._drag_last = event.position()
            if self._drag == "pan":
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        p = event.position()
        self._cursor = p
        if self._loupe:
            self.update()
        if self._drag == "divider":
            self.set_split_position((p.x() - self.rect().left()) / max(self.width(), 1))
        elif self._drag == "pan":
            d = p - self._drag_last
            self.pan_by(d.x(), d.y())
        elif self._near_divider(p):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        else:
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._source is not None else Qt.CursorShape.ArrowCursor)
        self._drag_last = p

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor if self._source is not None else Qt.CursorShape.ArrowCursor)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self.is_fit():
            self.set_zoom(1.0, event.position())
        else:
            self.fit()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.set_show_original(True)
        elif key == Qt.Key.Key_L:
            self.set_loupe(not self._loupe)
        elif key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.set_zoom(1.0)
        elif key == Qt.Key.Key_2:
            self.set_zoom(2.0)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(WHEEL_FACTOR)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1 / WHEEL_FACTOR)
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.set_show_original(False)
        else:
            super().keyReleaseEvent(event)

    def focusInEvent(self, event) -> None:  # noqa: N802
        # Reached with Tab: outline the viewer like the focus ring outlines other widgets.
        self._tab_focus = event.reason() in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason)
        super().focusInEvent(event)
        self.update()

    def focusOutEvent(self, event) -> None:  # noqa: N802
        self._tab_focus = False
        super().focusOutEvent(event)
        self.update()

    def shows_focus_outline(self) -> bool:
        return self.hasFocus() and getattr(self, "_tab_focus", False)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._cursor = None
        if self._loupe:
            self.update()
        super().leaveEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.viewChanged.emit()
