"""Small widget builders the dialogs and panels share: the output format and bit depth
choices, a path field with its browse button, a selectable detail line, and taking files
dropped on a widget."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton

from engine.imageio.formats import FORMATS as FORMAT_SPECS

from .settings import BIT_DEPTHS, FORMATS

SAME_AS_INPUT = "Same as input"


def format_combo(current: str) -> QComboBox:
    """The output formats (:data:`app.settings.FORMATS`: "same", then the engine's offered
    formats, by their labels), ``current`` selected; ``currentData()`` is the format name."""
    combo = QComboBox()
    for f in FORMATS:
        combo.addItem(SAME_AS_INPUT if f == "same" else FORMAT_SPECS[f].label, f)
    combo.setCurrentIndex(max(combo.findData(current), 0))
    return combo


def bit_depth_combo(current: Optional[int]) -> QComboBox:
    """"Same as input", 8-bit, 16-bit; ``current`` (``None``: same) selected; ``currentData()``
    is ``"same"``, ``"8"`` or ``"16"``."""
    combo = QComboBox()
    for b in BIT_DEPTHS:
        combo.addItem(SAME_AS_INPUT if b == "same" else f"{b}-bit", b)
    combo.setCurrentIndex(max(combo.findData("same" if current is None else str(current)), 0))
    return combo


def path_row(edit: QLineEdit, browse: Callable[[], None], tooltip: str = "") -> QHBoxLayout:
    """``edit`` with a narrow "…" button after it that calls ``browse``."""
    button = QPushButton("…")
    button.setFixedWidth(32)
    if tooltip:
        button.setToolTip(tooltip)
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def detail_label(object_name: str) -> QLabel:
    """A wrapping, mouse-selectable line of details under a table."""
    label = QLabel()
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PathDropTarget:
    """Mixin (listed before the Qt base class) for a widget that takes files and folders
    dropped on it: drags carrying URLs are accepted, and the local paths of a drop go to
    :meth:`paths_dropped`."""

    def paths_dropped(self, paths: list[Path]) -> None:
        raise NotImplementedError

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.paths_dropped(paths)
            event.acceptProposedAction()
