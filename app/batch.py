"""The batch queue: drop files and folders, restore them one after another in the background.

Each entry fails alone: a corrupt file is marked failed with the engine's one-line reason and
the queue goes on. Pause holds the worker at its next progress check; Cancel stops it there
(the engine's CancelToken) and leaves the remaining entries waiting.
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QObject, QRunnable, QThreadPool, QUrl, Qt,
                            Signal)
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QButtonGroup, QCheckBox, QComboBox,
                               QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu,
                               QPushButton, QRadioButton, QStyle, QStyledItemDelegate, QStyleOptionProgressBar,
                               QTableView, QVBoxLayout, QWidget)

from engine.errors import Cancelled
from engine.pipeline import RestoreOptions, RestoreResult, Restorer
from engine.pipeline.inputs import BatchItem, collect_inputs, output_path_for
from engine.pipeline.job import output_extension
from engine.progress import CancelToken, Progress

from .settings import FORMATS
from .workers import describe_error

#: Seconds between cancel checks while paused.
PAUSE_POLL_S = 0.1


class Status(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class BatchEntry:
    """One queued photo. ``progress`` in [0, 1]; ``error`` is the one-line reason of a failure."""

    id: int
    item: BatchItem
    status: Status = Status.WAITING
    progress: float = 0.0
    message: str = ""
    output: Optional[Path] = None
    error: str = ""
    seconds: float = 0.0


class BatchModel(QAbstractTableModel):
    """The queue's entries for a table view: file, status, progress, output."""

    COLUMNS = ("File", "Status", "Progress", "Output")
    _COLORS = {Status.DONE: QColor(60, 170, 90), Status.FAILED: QColor(220, 70, 60),
               Status.CANCELLED: QColor(200, 150, 40), Status.RUNNING: QColor(70, 140, 230)}

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.entries: list[BatchEntry] = []
        self._ids = itertools.count(1)

    # -- editing ----------------------------------------------------------------------------
    def add(self, items: Iterable[BatchItem]) -> int:
        """Append items not already waiting in the queue; returns how many were added."""
        queued = {e.item.path.resolve() for e in self.entries if e.status == Status.WAITING}
        new = [BatchEntry(next(self._ids), it) for it in items if it.path.resolve() not in queued]
        if new:
            self.beginInsertRows(QModelIndex(), len(self.entries), len(self.entries) + len(new) - 1)
            self.entries.extend(new)
            self.endInsertRows()
        return len(new)

    def remove_finished(self) -> None:
        self.beginResetModel()
        self.entries = [e for e in self.entries if e.status in (Status.WAITING, Status.RUNNING)]
        self.endResetModel()

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            if 0 <= row < len(self.entries) and self.entries[row].status != Status.RUNNING:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.entries[row]
                self.endRemoveRows()

    def entry(self, entry_id: int) -> Optional[BatchEntry]:
        return next((e for e in self.entries if e.id == entry_id), None)

    def update(self, entry_id: int, **changes) -> None:
        for row, e in enumerate(self.entries):
            if e.id == entry_id:
                for k, v in changes.items():
                    setattr(e, k, v)
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
                return

    def waiting(self) -> list[BatchEntry]:
        return [e for e in self.entries if e.status == Status.WAITING]

    def reset_unfinished(self) -> None:
        """Put failed and cancelled entries back to waiting (Retry)."""
        for e in self.entries:
            if e.status in (Status.FAILED, Status.CANCELLED):
                self.update(e.id, status=Status.WAITING, progress=0.0, message="", error="")

    def counts(self) -> dict[Status, int]:
        out = {s: 0 for s in Status}
        for e in self.entries:
            out[e.status] += 1
        return out

    # -- Qt model ---------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        e = self.entries[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return str(e.item.relative)
            if col == 1:
                if e.status == Status.FAILED:
                    return f"failed: {e.error}"
                if e.status == Status.RUNNING and e.message:
                    return f"running: {e.message}"
                if e.status == Status.DONE:
                    return f"done ({e.seconds:.1f} s)"
                return e.status.value
            if col == 2:
                return int(round(e.progress * 100))
            if col == 3:
                return "" if e.output is None else str(e.output)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 1 and e.error:
                return e.error
            return str(e.item.path) if col == 0 else (str(e.output) if col == 3 and e.output else None)
        if role == Qt.ItemDataRole.ForegroundRole and col == 1 and e.status in self._COLORS:
            return QBrush(self._COLORS[e.status])
        if role == Qt.ItemDataRole.UserRole:
            return e.id
        return None


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a progress bar."""

    def paint(self, painter, option, index) -> None:
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(3, 4, -3, -4)
        bar.minimum, bar.maximum = 0, 100
        bar.progress = int(index.data() or 0)
        bar.text = f"{bar.progress} %"
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class _RunnerSignals(QObject):
    started = Signal(int)
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    cancelled = Signal(int)
    done = Signal()


class _BatchJob(QRunnable):
    def __init__(self, runner: "BatchRunner", work: list[tuple[int, BatchItem]], options: RestoreOptions,
                 outdir: Path, restorer_provider: Callable[[], Restorer]) -> None:
        super().__init__()
        self.runner, self.work, self.options, self.outdir = runner, work, options, outdir
        self.restorer_provider = restorer_provider
        self.signals = runner._signals

    def run(self) -> None:
        sig, token = self.signals, self.runner._token
        try:
            restorer = self.restorer_provider()
            for entry_id, item in self.work:
                try:
                    self.runner._wait_while_paused()
                except Cancelled:
                    break
                if self.runner._is_removed(entry_id):
                    continue
                sig.started.emit(entry_id)

                def report(fraction: float, message: str, _id: int = entry_id) -> None:
                    self.runner._wait_while_paused()
                    sig.progress.emit(_id, fraction, message)

                def target_for(photo, _item: BatchItem = item) -> Path:
                    return output_path_for(_item, self.outdir, output_extension(photo, _item.path, self.options.fmt))

                try:
                    result = restorer.restore_file(item.path, target_for, self.options, Progress(report, token))
                except Cancelled:
                    sig.cancelled.emit(entry_id)
                    break
                except Exception as e:  # one bad photo must fail alone, whatever went wrong
                    result = RestoreResult(input=item.path, error=describe_error(e))
                sig.finished.emit(entry_id, result)
        except Exception as e:  # the restorer itself could not be built: fail the first item visibly
            if self.work:
                sig.finished.emit(self.work[0][0], RestoreResult(input=self.work[0][1].path, error=describe_error(e)))
        finally:
            sig.done.emit()


class BatchRunner(QObject):
    """Runs a snapshot of queue entries in order on one background thread."""

    def __init__(self, model: BatchModel, restorer_provider: Callable[[], Restorer],
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.model = model
        self.restorer_provider = restorer_provider
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _RunnerSignals()
        self._signals.started.connect(lambda i: model.update(i, status=Status.RUNNING, progress=0.0))
        self._signals.progress.connect(lambda i, f, m: model.update(i, progress=f, message=m))
        self._signals.finished.connect(self._on_finished)
        self._signals.cancelled.connect(
            lambda i: model.update(i, status=Status.CANCELLED, message="", error="cancelled"))
        self._signals.done.connect(self._on_done)
        self._token = CancelToken()
        self._resume = threading.Event()
        self._resume.set()
        self._running = False
        self._removed: set[int] = set()
        self._removed_lock = threading.Lock()
        self.on_done: Optional[Callable[[], None]] = None
        model.rowsAboutToBeRemoved.connect(self._rows_removed)
        model.modelAboutToBeReset.connect(lambda: self._forget(e.id for e in model.entries
                                                               if e.status == Status.WAITING))

    def is_running(self) -> bool:
        return self._running

    def is_paused(self) -> bool:
        return not self._resume.is_set()

    def start(self, options: RestoreOptions, outdir: Path) -> bool:
        """Start the waiting entries; False if nothing is waiting or a run is in progress."""
        work = [(e.id, e.item) for e in self.model.waiting()]
        if self._running or not work:
            return False
        self._token = CancelToken()
        self._resume.set()
        self._running = True
        self._pool.start(_BatchJob(self, work, options, Path(outdir), self.restorer_provider))
        return True

    def pause(self, paused: bool) -> None:
        if paused:
            self._resume.clear()
        else:
            self._resume.set()

    def cancel(self) -> None:
        self._token.cancel()
        self._resume.set()

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    def _rows_removed(self, parent, first: int, last: int) -> None:
        self._forget(e.id for e in self.model.entries[first:last + 1])

    def _forget(self, ids: Iterable[int]) -> None:
        """Entries removed from the queue: the running batch skips them."""
        with self._removed_lock:
            self._removed.update(ids)

    def _is_removed(self, entry_id: int) -> bool:
        with self._removed_lock:
            return entry_id in self._removed

    def _wait_while_paused(self) -> None:
        while not self._resume.wait(PAUSE_POLL_S):
            self._token.raise_if_cancelled()
        self._token.raise_if_cancelled()

    def _on_finished(self, entry_id: int, result: RestoreResult) -> None:
        if result.error:
            self.model.update(entry_id, status=Status.FAILED, error=result.error, message="", seconds=result.seconds)
        else:
            self.model.update(entry_id, status=Status.DONE, progress=1.0, output=result.output, message="",
                              seconds=result.seconds)

    def _on_done(self) -> None:
        self._running = False
        if self.on_done is not None:
            self.on_done()


class BatchPanel(QWidget):
    """The queue panel: drop target, options, Start / Pause / Cancel, per-item table."""

    #: Emitted with a one-line summary whenever the queue's state changes.
    statusChanged = Signal(str)

    def __init__(self, restorer_provider: Callable[[], Restorer], settings,
                 current_options: Callable[[], Optional[RestoreOptions]] = lambda: None,
                 is_supported: Callable[[Path], bool] = lambda p: True, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("batchPanel")
        self.setAcceptDrops(True)
        self.settings = settings
        self.current_options = current_options
        self.is_supported = is_supported
        self.model = BatchModel(self)
        self.runner = BatchRunner(self.model, restorer_provider, self)
        self.runner.on_done = self._on_run_done
        self.problems: list[str] = []
        self._build()
        self.model.dataChanged.connect(self._refresh)
        self.model.rowsInserted.connect(self._refresh)
        self.model.modelReset.connect(self._refresh)
        self._refresh()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        opts = QGridLayout()
        self.outdir = QLineEdit(self.settings.output_dir)
        self.outdir.setObjectName("batchOutdir")
        self.outdir.setPlaceholderText("Output folder")
        browse = QPushButton("…")
        browse.setToolTip("Choose the output folder")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._choose_outdir)
        self.format = QComboBox()
        self.format.setObjectName("batchFormat")
        for f in FORMATS:
            self.format.addItem("same as input" if f == "same" else f.upper(), f)
        self.format.setCurrentIndex(max(self.format.findData(self.settings.output_format), 0))
        self.plan_auto = QRadioButton("Each photo's own auto plan")
        self.plan_current = QRadioButton("Current settings")
        self.plan_current.setToolTip("Apply the open photo's switches, strengths and experts to every photo")
        group = QButtonGroup(self)
        group.addButton(self.plan_auto)
        group.addButton(self.plan_current)
        (self.plan_current if self.settings.batch_plan == "current" else self.plan_auto).setChecked(True)
        self.overwrite = QCheckBox("Overwrite existing outputs")
        self.overwrite.setChecked(self.settings.overwrite)
        opts.addWidget(QLabel("Output:"), 0, 0)
        opts.addWidget(self.outdir, 0, 1)
        opts.addWidget(browse, 0, 2)
        opts.addWidget(QLabel("Format:"), 1, 0)
        opts.addWidget(self.format, 1, 1, 1, 2)
        opts.addWidget(self.plan_auto, 2, 0, 1, 3)
        opts.addWidget(self.plan_current, 3, 0, 1, 3)
        opts.addWidget(self.overwrite, 4, 0, 1, 3)
        opts.setColumnStretch(1, 1)
        layout.addLayout(opts)

        add_row = QHBoxLayout()
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._add_files_dialog)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._add_folder_dialog)
        clear = QPushButton("Clear finished")
        clear.clicked.connect(self.model.remove_finished)
        for b in (add_files, add_folder, clear):
            add_row.addWidget(b)
        layout.addLayout(add_row)

        self.table = QTableView()
        self.table.setObjectName("batchTable")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(2, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(0, 150)
        header.resizeSection(2, 80)
        self.table.setColumnHidden(3, True)
        self.table.doubleClicked.connect(lambda idx: self.open_result(idx.row()))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.table, 1)

        run_row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("batchStart")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        for b in (self.start_button, self.pause_button, self.cancel_button):
            run_row.addWidget(b)
        layout.addLayout(run_row)
        self.summary = QLabel()
        self.summary.setObjectName("batchSummary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

    # -- adding -----------------------------------------------------------------------------
    def add_paths(self, paths: Iterable[str | Path]) -> int:
        """Queue files and folders (folders recursively); returns how many photos were added."""
        items, problems = collect_inputs([Path(p) for p in paths], self.is_supported)
        self.problems = problems
        added = self.model.add(items)
        self._refresh()
        return added

    def _add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos to the queue", self.settings.last_dir)
        if files:
            self.add_paths(files)

    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the queue", self.settings.last_dir)
        if folder:
            self.add_paths([folder])

    def _choose_outdir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.outdir.text() or self.settings.last_dir)
        if folder:
            self.outdir.setText(folder)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()

    # -- running ----------------------------------------------------------------------------
    def options(self) -> RestoreOptions:
        fmt = str(self.format.currentData())
        common = dict(fmt=fmt, bit_depth=self.settings.bit_depth, tile=self.settings.tile,
                      overwrite=self.overwrite.isChecked())
        if self.plan_current.isChecked():
            current = self.current_options()
            if current is not None:
                from dataclasses import replace

                return replace(current, **common)
        return RestoreOptions(auto=True, **common)

    def start(self) -> bool:
        outdir = self.outdir.text().strip()
        if not outdir:
            self.summary.setText("Choose an output folder first.")
            return False
        self.settings.output_dir = outdir
        self.settings.output_format = str(self.format.currentData())
        self.settings.batch_plan = "current" if self.plan_current.isChecked() else "auto"
        self.settings.overwrite = self.overwrite.isChecked()
        self.pause_button.setChecked(False)
        started = self.runner.start(self.options(), Path(outdir))
        self._refresh()
        return started

    def _pause(self, paused: bool) -> None:
        self.runner.pause(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self._refresh()

    def _on_run_done(self) -> None:
        self.pause_button.setChecked(False)
        self._refresh()

    def open_result(self, row: int) -> bool:
        if 0 <= row < len(self.model.entries) and self.model.entries[row].output is not None:
            return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.model.entries[row].output)))
        return False

    def _context_menu(self, pos) -> None:
        row = self.table.indexAt(pos).row()
        menu = QMenu(self)
        if row >= 0:
            entry = self.model.entries[row]
            act = menu.addAction("Open result", lambda: self.open_result(row))
            act.setEnabled(entry.output is not None)
            if entry.output is not None:
                menu.addAction("Show in folder", lambda: QDesktopServices.openUrl(
                    QUrl.fromLocalFile(str(entry.output.parent))))
            menu.addAction("Remove", lambda: self.model.remove_rows([i.row() for i in
                                                                      self.table.selectionModel().selectedRows()] or [row]))
        menu.addAction("Retry failed and cancelled", self.model.reset_unfinished)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _refresh(self, *args) -> None:
        c = self.model.counts()
        running = self.runner.is_running()
        self.start_button.setEnabled(not running and c[Status.WAITING] > 0)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        parts = [f"{len(self.model.entries)} in queue", f"{c[Status.DONE]} done"]
        if c[Status.FAILED]:
            parts.append(f"{c[Status.FAILED]} failed")
        if c[Status.WAITING]:
            parts.append(f"{c[Status.WAITING]} waiting")
        if running and self.runner.is_paused():
            parts.append("paused")
        text = " · ".join(parts)
        if self.problems:
            text += "\n" + "; ".join(self.problems[:3])
        self.summary.setText(text)
        self.statusChanged.emit(text)
