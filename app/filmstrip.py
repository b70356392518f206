"""The filmstrip: thumbnails of the photos in the batch queue (opened or dropped together).

It is a second view of the queue's :class:`app.batch.BatchModel` and shares the queue table's
selection, so photos selected here are the ones "Apply current settings to selected" changes.
Double-click (or Enter) opens a photo in the viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QWidget

from .batch import STATUS_ROLE, THUMBNAIL_ROLE, THUMBNAIL_SIDE, BatchPanel, Status
from .theme import color
from .widgets import PathDropTarget

#: Cell size of one photo in the strip, in pixels.
CELL = QSize(THUMBNAIL_SIDE + 16, THUMBNAIL_SIDE // 3 * 2 + 44)
_STATUS_COLOR = {Status.DONE: "ok", Status.FAILED: "error", Status.RUNNING: "running", Status.CANCELLED: "warning",
                 Status.SKIPPED: "muted"}


class _ThumbnailDelegate(QStyledItemDelegate):
    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return CELL

    def paint(self, painter: QPainter, option, index) -> None:
        painter.save()
        r = QRectF(option.rect).adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        painter.fillRect(r, pal.highlight() if selected else pal.base())
        image = index.data(THUMBNAIL_ROLE)
        text_h = option.fontMetrics.height() * 2 + 6
        area = r.adjusted(4, 4, -4, -text_h)
        if image is not None and not image.isNull():
            s = min(area.width() / image.width(), area.height() / image.height())
            w, h = image.width() * s, image.height() * s
            target = QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(target, image)
        else:
            painter.setPen(pal.highlightedText().color() if selected else pal.text().color())
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "…" if image is None else "no preview")
        value = index.data(STATUS_ROLE)
        status = Status(value) if value else None
        text = pal.highlightedText().color() if selected else pal.text().color()
        painter.setPen(text)
        name_rect = QRectF(r.left() + 4, r.bottom() - text_h, r.width() - 8, option.fontMetrics.height() + 2)
        name = option.fontMetrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)),
                                             Qt.TextElideMode.ElideMiddle, int(name_rect.width()))
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)
        status_rect = name_rect.translated(0, option.fontMetrics.height() + 2)
        if status in _STATUS_COLOR and not selected:
            painter.setPen(color(_STATUS_COLOR[status]))
        painter.drawText(status_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                         status.value if status is not None else "")
        if status in _STATUS_COLOR:
            painter.setPen(QPen(color(_STATUS_COLOR[status]), 3))
            painter.drawLine(r.bottomLeft(), r.bottomRight())
        painter.restore()


class Filmstrip(PathDropTarget, QListView):
    """Horizontal strip of queue thumbnails (see the module docs)."""

    openRequested = Signal(object)

    def __init__(self, panel: BatchPanel, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmstrip")
        self.panel = panel
        self.setModel(panel.model)
        self.setSelectionModel(panel.table.selectionModel())
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setItemDelegate(_ThumbnailDelegate(self))
        self.setMinimumHeight(CELL.height() + 24)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.doubleClicked.connect(self._open)
        self.activated.connect(self._open)

    def _open(self, index) -> None:
        if index.isValid():
            self.openRequested.emit(self.panel.model.entries[index.row()].item.path)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(800, CELL.height() + 28)

    def paths_dropped(self, paths: list[Path]) -> None:
        self.panel.add_paths(paths)
