"""Preferences: device, tile size, default output format/bit depth/folder, theme."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLineEdit, QSpinBox,
                               QWidget)

from .settings import DEVICES, THEMES, AppSettings
from .widgets import bit_depth_combo, format_combo, path_row

_DEVICE_LABELS = {"auto": "Automatic (GPU if available)", "cpu": "CPU", "cuda": "NVIDIA CUDA",
                  "mps": "Apple Metal (MPS)"}
_THEME_LABELS = {"system": "Follow system", "dark": "Dark", "light": "Light"}
#: Largest fixed tile edge offered, in pixels.
MAX_TILE = 4096


class SettingsDialog(QDialog):
    """Edits an :class:`AppSettings`; :meth:`apply` writes the choices (OK calls it)."""

    def __init__(self, settings: AppSettings, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restora — Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem(_DEVICE_LABELS[d], d)
        self.device.setCurrentIndex(self.device.findData(settings.device))
        self.tile = QSpinBox()
        self.tile.setRange(0, MAX_TILE)
        self.tile.setSingleStep(64)
        self.tile.setSpecialValueText("Automatic (from free memory)")
        self.tile.setSuffix(" px")
        self.tile.setValue(settings.tile or 0)
        self.format = format_combo(settings.output_format)
        self.bit_depth = bit_depth_combo(settings.bit_depth)
        self.outdir = QLineEdit(settings.output_dir)
        row = path_row(self.outdir, self._browse)
        self.theme = QComboBox()
        for t in THEMES:
            self.theme.addItem(_THEME_LABELS[t], t)
        self.theme.setCurrentIndex(self.theme.findData(settings.theme))
        form.addRow("Device:", self.device)
        form.addRow("Tile size:", self.tile)
        form.addRow("Default output format:", self.format)
        form.addRow("Default bit depth:", self.bit_depth)
        form.addRow("Default output folder:", row)
        form.addRow("Theme:", self.theme)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Default output folder", self.outdir.text())
        if folder:
            self.outdir.setText(folder)

    def apply(self) -> None:
        s = self.settings
        s.device = str(self.device.currentData())
        s.tile = self.tile.value() or None
        s.output_format = str(self.format.currentData())
        bd = str(self.bit_depth.currentData())
        s.bit_depth = None if bd == "same" else int(bd)
        s.output_dir = self.outdir.text().strip()
        s.theme = str(self.theme.currentData())
        s.sync()

    def accept(self) -> None:
        self.apply()
        super().accept()
