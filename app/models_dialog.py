"""The model manager: installed and available models (task, size, licence, source, and the
measured figure of the benchmark's ranking for the selected one), download
with progress and cancel, verify, remove, and import a model file. All file and network work
runs on a :class:`JobRunner` thread through :class:`engine.weights.manager.WeightsManager`."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel,
                               QMessageBox, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from engine.errors import RestoraError
from engine.experts.ranking import figure_for_model, load_ranking
from engine.kinds import LABELS
from engine.units import format_bytes

from .workers import JobRunner
from .widgets import detail_label

COLUMNS = ("Model", "Tasks", "Size", "Licence", "Source", "Status")
_STATUS_TEXT = {"installed": "installed", "not-installed": "available", "corrupt": "corrupt (re-download)",
                "available-from-package": "available offline (package)"}




class ModelManagerDialog(QDialog):
    """Lists every catalog and imported model. ``modelsChanged`` fires after an install, import
    or removal so the main window can rebuild its expert registry."""

    modelsChanged = Signal()

    def __init__(self, manager_factory: Optional[Callable[[], object]] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restora — Models")
        self.setObjectName("modelManager")
        self.resize(1180, 480)
        self._factory = manager_factory or _default_manager
        self.manager = None
        self.runner = JobRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(lambda: self._finish("Cancelled."))
        self.runner.busyChanged.connect(self._set_busy)

        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)
        self.details = detail_label("modelDetails")
        layout.addWidget(self.details)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.message = QLabel()
        self.message.setObjectName("modelMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.verify_button = QPushButton("Verify")
        self.remove_button = QPushButton("Remove")
        self.import_button = QPushButton("Import file…")
        self.cancel_button = QPushButton("Cancel")
        close = QPushButton("Close")
        self.download_button.clicked.connect(self.download_selected)
        self.verify_button.clicked.connect(self.verify_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.import_button.clicked.connect(self._import_dialog)
        self.cancel_button.clicked.connect(self.runner.cancel)
        close.clicked.connect(self.close)
        for b in (self.download_button, self.verify_button, self.remove_button, self.import_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self._ids: list[str] = []
        self._ranking = load_ranking()
        self.refresh()

    # -- listing ----------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.manager is None:
            try:
                self.manager = self._factory()
            except RestoraError as e:
                self.message.setText(f"The model catalog could not be read: {e}")
                self._update_buttons()
                return
        keep = self.selected_id()
        self.table.setRowCount(0)
        self._ids = []
        m = self.manager
        for model_id in m.known_ids():
            entry = m.entry(model_id)
            try:
                status = m.status(model_id).value
            except RestoraError as e:
                status = f"error: {e}"
            row = self.table.rowCount()
            self.table.insertRow(row)
            source = entry.sources[0].describe() if entry.sources else (entry.upstream or "imported file")
            size = format_bytes(entry.size) if entry.size else "—"
            values = (entry.name, ", ".join(LABELS.get(t, t) for t in entry.tasks), size, entry.license, source,
                      _STATUS_TEXT.get(status, status))
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
            self.table.item(row, 0).setData(Qt.ItemDataRole.UserRole, model_id)
            self._ids.append(model_id)
        if keep in self._ids:
            self.table.selectRow(self._ids.index(keep))
        elif self._ids:
            self.table.selectRow(0)
        self._update_buttons()

    def selected_id(self) -> Optional[str]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        return self._ids[rows[0].row()] if rows[0].row() < len(self._ids) else None

    def select(self, model_id: str) -> None:
        if model_id in self._ids:
            self.table.selectRow(self._ids.index(model_id))

    def _update_buttons(self) -> None:
        busy = self.runner.is_busy()
        mid = self.selected_id()
        status = None
        if mid is not None and self.manager is not None:
            entry = self.manager.entry(mid)
            status = self.manager.status(mid).value
            notes = [entry.description] if entry.description else []
            if entry.unverified:
                notes.append(f"Unverified: {entry.unverified}")
            if entry.generative:
                notes.append("Generative: invents plausible detail rather than restoring faithfully.")
            if entry.upstream:
                notes.append(f"Published at {entry.upstream} · licence: {entry.license}")
            measured = figure_for_model(self._ranking, entry.id)
            if measured:
                notes.append(f"Measured (benchmarks/results/expert-ranking.md): {measured}")
            notes.append(f"id {entry.id} · {entry.architecture} · ×{entry.scale} · sha256 {entry.sha256[:16] or '—'}")
            self.details.setText("\n".join(notes))
        self.download_button.setEnabled(not busy and status in ("not-installed", "corrupt", "available-from-package"))
        self.verify_button.setEnabled(not busy and status in ("installed", "corrupt"))
        self.remove_button.setEnabled(not busy and status in ("installed", "corrupt"))
        self.import_button.setEnabled(not busy and self.manager is not None)
        self.cancel_button.setEnabled(busy)

    # -- actions ----------------------------------------------------------------------------
    def download_selected(self) -> None:
        mid = self.selected_id()
        if mid is None or self.manager is None:
            return
        m = self.manager
        self.message.setText(f"Downloading {mid}…")
        self.runner.start(lambda p: m.download(mid, progress=p, cancel=p.cancel),
                          lambda path: self._finish(f"Installed {mid}: {path}", changed=True))

    def verify_selected(self) -> None:
        mid = self.selected_id()
        if mid is None or self.manager is None:
            return
        m = self.manager
        self.message.setText(f"Verifying {mid}…")
        self.runner.start(lambda p: m.verify(mid),
                          lambda results: self._finish("; ".join(f"{r.model_id}: {r.message}" for r in results)))

    def remove_selected(self, confirm: bool = True) -> None:
        mid = self.selected_id()
        if mid is None or self.manager is None:
            return
        if confirm and QMessageBox.question(self, "Remove model", f"Delete the installed files of {mid}?") \
                != QMessageBox.StandardButton.Yes:
            return
        m = self.manager
        self.runner.start(lambda p: m.remove(mid),
                          lambda removed: self._finish(f"Removed {mid} ({len(removed)} file(s)).", changed=True))

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model file", "",
                                              "Models (*.safetensors *.pth *.pt *.ckpt *.onnx)")
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        if self.manager is None:
            return
        m = self.manager
        self.message.setText(f"Importing {path}…")
        self.runner.start(lambda p: m.import_file(path),
                          lambda res: self._finish(f"Imported {res[0].id} ({res[0].architecture}).", changed=True))

    # -- job plumbing -----------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        if busy:
            self.progress.setValue(0)
        self._update_buttons()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.progress.setFormat(f"{message} %p%")

    def _on_failed(self, message: str) -> None:
        self._finish(message)

    def _finish(self, message: str, changed: bool = False) -> None:
        self.message.setText(message)
        self.refresh()
        if changed:
            self.modelsChanged.emit()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.runner.cancel()
        self.runner.wait(5000)
        super().closeEvent(event)


def _default_manager():
    from engine.weights.manager import WeightsManager

    return WeightsManager()
