"""The analysis and controls panel: what the analysis found, and one on/off switch, strength
slider (0-100 %) and expert choice per stage. A thin widget: it shows :class:`StageRow` values
and emits what the user changed; the main window decides what that costs (compose or run)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QScrollArea, QSlider, QVBoxLayout, QWidget)

from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD

from .document import StageRow


class StageControl(QFrame):
    """Controls for one stage (a degradation kind or the generalist)."""

    def __init__(self, row: StageRow, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("stageControl")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.name = row.name
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 6)
        grid.setVerticalSpacing(3)
        self.toggle = QCheckBox(row.label)
        self.toggle.setObjectName(f"toggle_{row.name}")
        self.toggle.setToolTip(f"Apply the {row.label.lower()} correction")
        self.severity = QProgressBar()
        self.severity.setObjectName("severityBar")
        self.severity.setRange(0, 100)
        self.severity.setFixedHeight(14)
        self.severity.setMaximumWidth(110)
        self.severity.setFormat("%p%")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(f"slider_{row.name}")
        self.slider.setRange(0, 100)
        self.slider.setPageStep(10)
        self.slider.setToolTip("Strength: 0 % leaves the photo as it is, 100 % applies the full correction")
        self.value = QLabel()
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance("100 %") + 4)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.expert = QComboBox()
        self.expert.setObjectName(f"expert_{row.name}")
        self.expert.setToolTip("Which expert (model) restores this stage")
        self.expert.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.expert.setMinimumContentsLength(12)
        self.status = QLabel()
        self.status.setObjectName("stageStatus")
        self.status.setWordWrap(True)
        grid.addWidget(self.toggle, 0, 0)
        grid.addWidget(self.severity, 0, 1, 1, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.slider, 1, 0, 1, 2)
        grid.addWidget(self.value, 1, 2)
        grid.addWidget(self.expert, 2, 0, 1, 3)
        grid.addWidget(self.status, 3, 0, 1, 3)
        grid.setColumnStretch(0, 1)
        self.slider.valueChanged.connect(lambda v: self.value.setText(f"{v} %"))
        self.update_row(row)

    def update_row(self, row: StageRow) -> None:
        for w in (self.toggle, self.slider, self.expert):
            w.blockSignals(True)
        try:
            self.toggle.setChecked(row.enabled)
            if row.severity is None:
                self.severity.setVisible(False)
            else:
                self.severity.setVisible(True)
                self.severity.setValue(int(round(row.severity * 100)))
                self.severity.setToolTip(f"Detected severity {row.severity:.2f} (0 = absent, 1 = severe)")
                detected = row.severity >= DEFAULT_PRESENCE_THRESHOLD
                self.severity.setProperty("detected", detected)
                self.severity.style().unpolish(self.severity)
                self.severity.style().polish(self.severity)
            self.slider.setValue(int(round(row.strength * 100)))
            self.value.setText(f"{self.slider.value()} %")
            self.slider.setEnabled(row.enabled)
            ids = [self.expert.itemData(i) for i in range(self.expert.count())]
            if ids != [c[0] for c in row.choices]:
                self.expert.clear()
                for expert_id, name, description in row.choices:
                    self.expert.addItem(name, expert_id)
                    if description:
                        self.expert.setItemData(self.expert.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
            index = self.expert.findData(row.expert_id)
            self.expert.setCurrentIndex(max(index, 0))
            self.expert.setEnabled(len(row.choices) > 1)
            if not row.choices:
                self.toggle.setEnabled(False)
                self.status.setText("no expert installed for this stage")
            elif row.dropped and row.handled_by:
                self.status.setText(row.status)
            elif row.dropped:
                self.status.setText(f"skipped: {row.status}")
            else:
                self.status.setText("")
            self.status.setVisible(bool(self.status.text()))
        finally:
            for w in (self.toggle, self.slider, self.expert):
                w.blockSignals(False)


class ControlsPanel(QWidget):
    """Signals: ``strengthChanged(name, strength 0..1)``, ``enabledChanged(name, on)``,
    ``expertChanged(name, expert id)``, ``autoRequested()``."""

    strengthChanged = Signal(str, float)
    enabledChanged = Signal(str, bool)
    expertChanged = Signal(str, str)
    autoRequested = Signal()
    #: The Caution slider moved: 0..1.
    cautionChanged = Signal(float)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("controlsPanel")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        head = QHBoxLayout()
        self.summary = QLabel("No photo open")
        self.summary.setObjectName("analysisSummary")
        self.summary.setWordWrap(True)
        self.auto_button = QPushButton("Auto")
        self.auto_button.setObjectName("autoButton")
        self.auto_button.setToolTip("Restore the analysis's plan (Ctrl+R)")
        self.auto_button.setEnabled(False)
        self.auto_button.clicked.connect(self.autoRequested)
        head.addWidget(self.summary, 1)
        head.addWidget(self.auto_button)
        outer.addLayout(head)
        self.uncertainty = QLabel("")
        self.uncertainty.setObjectName("uncertaintySummary")
        self.uncertainty.setWordWrap(True)
        self.uncertainty.setVisible(False)
        outer.addWidget(self.uncertainty)
        caution = QHBoxLayout()
        self.caution_label = QLabel("Caution")
        self.caution = QSlider(Qt.Orientation.Horizontal)
        self.caution.setObjectName("cautionSlider")
        self.caution.setRange(0, 100)
        self.caution.setPageStep(10)
        self.caution.setEnabled(False)
        self.caution.setToolTip("Lean the result back towards the original where the restoration is uncertain "
                                "(expected error above 3 levels; fully from 12): 0 % keeps it as restored")
        self.caution_value = QLabel("0 %")
        self.caution_value.setMinimumWidth(self.caution_value.fontMetrics().horizontalAdvance("100 %") + 4)
        self.caution_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.caution.valueChanged.connect(lambda v: self.caution_value.setText(f"{v} %"))
        self.caution.valueChanged.connect(lambda v: self.cautionChanged.emit(v / 100.0))
        caution.addWidget(self.caution_label)
        caution.addWidget(self.caution, 1)
        caution.addWidget(self.caution_value)
        outer.addLayout(caution)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._body = QWidget()
        self._rows_layout = QVBoxLayout(self._body)
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.addStretch(1)
        self._scroll.setWidget(self._body)
        outer.addWidget(self._scroll, 1)
        self.controls: dict[str, StageControl] = {}

    def clear(self) -> None:
        for c in self.controls.values():
            c.setParent(None)
            c.deleteLater()
        self.controls.clear()
        self.summary.setText("No photo open")
        self.auto_button.setEnabled(False)
        self.set_uncertainty("")
        self.caution.setEnabled(False)

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)

    def set_uncertainty(self, text: str) -> None:
        """The per-photo uncertainty sentence (hidden when empty)."""
        self.uncertainty.setText(text)
        self.uncertainty.setVisible(bool(text))

    def set_caution(self, caution: float) -> None:
        """Show ``caution`` (0..1) without emitting ``cautionChanged``."""
        self.caution.blockSignals(True)
        try:
            self.caution.setValue(int(round(caution * 100)))
            self.caution_value.setText(f"{self.caution.value()} %")
        finally:
            self.caution.blockSignals(False)

    def set_rows(self, rows: list[StageRow]) -> None:
        """Show ``rows`` (creates the controls on first use, updates them afterwards)."""
        if [r.name for r in rows] != list(self.controls):
            self.clear()
            for i, row in enumerate(rows):
                control = StageControl(row, self._body)
                self._connect(control)
                self._rows_layout.insertWidget(i, control)
                control.show()
                self.controls[row.name] = control
        else:
            for row in rows:
                self.controls[row.name].update_row(row)
        self.auto_button.setEnabled(bool(rows))
        self.caution.setEnabled(bool(rows))

    def _connect(self, control: StageControl) -> None:
        name = control.name
        control.slider.valueChanged.connect(lambda v: self.strengthChanged.emit(name, v / 100.0))
        control.toggle.toggled.connect(lambda on: self.enabledChanged.emit(name, on))
        control.expert.activated.connect(
            lambda i: self.expertChanged.emit(name, str(control.expert.itemData(i))))

    def set_busy(self, busy: bool) -> None:
        """While experts run, only strengths may change (they re-compose the cached stages)."""
        for c in self.controls.values():
            c.expert.setEnabled(not busy and c.expert.count() > 1)
