"""The batch queue: drop files and folders, restore them one after another in the background.

Each entry fails alone: a corrupt file is marked failed with the engine's one-line reason and
the queue goes on. Pause holds the worker at its next progress check; Cancel stops it there
(the engine's CancelToken) and leaves the remaining entries waiting.
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Optional

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QObject, QRunnable, QThreadPool, QUrl, Qt,
                            Signal)
from PySide6.QtGui import QBrush, QDesktopServices, QImage
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QButtonGroup, QCheckBox, QComboBox,
                               QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu,
                               QPushButton, QRadioButton, QSpinBox, QStyle, QStyledItemDelegate,
                               QStyleOptionProgressBar, QTableView, QVBoxLayout, QWidget)

from engine.errors import Cancelled, OutputExistsError, RestoraError, describe_error
from engine.kinds import LABELS
from engine.pipeline import RestoreOptions, RestoreResult, Restorer
from engine.pipeline.batch import Batch
from engine.pipeline.inputs import BatchItem, collect_inputs
from engine.progress import CancelToken, Progress

from .theme import color
from .widgets import PathDropTarget, bit_depth_combo, detail_label, format_combo, path_row

#: Item data role of a queue entry's thumbnail (a ``QImage`` or ``None``).
THUMBNAIL_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item data role of a queue entry's status (a :class:`Status` value string).
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2
#: The batch panel's controls, as the rows' messages name them.
OVERWRITE_LABEL = "Overwrite existing outputs"
SKIP_LABEL = "Skip existing outputs"

#: Seconds between cancel checks while paused.
PAUSE_POLL_S = 0.1
#: The invisible root of the flat table model (the parent of every row).
_ROOT = QModelIndex()


class Status(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
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
    #: This photo's own settings ("apply current settings to the selected photos"); ``None``:
    #: the panel's choice for every photo. ``settings_label`` describes them in a few words.
    options: Optional[RestoreOptions] = None
    settings_label: str = ""
    #: What the output could not keep from the input (from the engine), one phrase each.
    not_kept: tuple[str, ...] = ()


class BatchModel(QAbstractTableModel):
    """The queue's entries for a table view (file, status with the failure reason, progress,
    settings, output) and for the filmstrip (:data:`THUMBNAIL_ROLE`)."""

    COLUMNS = ("File", "Status", "Progress", "Settings", "Output")
    _COLOR_NAMES = {Status.DONE: "ok", Status.SKIPPED: "muted", Status.FAILED: "error", Status.CANCELLED: "warning",
                    Status.RUNNING: "running"}

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.entries: list[BatchEntry] = []
        self._ids = itertools.count(1)
        self.thumbnails: dict[int, Optional[QImage]] = {}

    def set_thumbnail(self, entry_id: int, image: Optional[QImage]) -> None:
        self.thumbnails[entry_id] = image
        self.update(entry_id)

    def row_of(self, entry_id: int) -> int:
        return next((i for i, e in enumerate(self.entries) if e.id == entry_id), -1)

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
        self.thumbnails = {k: v for k, v in self.thumbnails.items() if self.entry(k) is not None}
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
        """Put failed, skipped and cancelled entries back to waiting (Retry)."""
        for e in self.entries:
            if e.status in (Status.FAILED, Status.CANCELLED, Status.SKIPPED):
                self.update(e.id, status=Status.WAITING, progress=0.0, message="", error="")

    def counts(self) -> dict[Status, int]:
        out = {s: 0 for s in Status}
        for e in self.entries:
            out[e.status] += 1
        return out

    # -- Qt model ---------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802
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
                return self.status_text(e)
            if col == 2:
                return int(round(e.progress * 100))
            if col == 3:
                return e.settings_label or "batch choice"
            if col == 4:
                return "" if e.output is None else str(e.output)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 1:
                return self.status_text(e)
            if col == 3:
                return e.settings_label or "The plan chosen above for every photo"
            return str(e.item.path) if col == 0 else (str(e.output) if col == 4 and e.output else None)
        if role == Qt.ItemDataRole.ForegroundRole and col == 1 and e.status in self._COLOR_NAMES:
            return QBrush(color(self._COLOR_NAMES[e.status]))
        if role == Qt.ItemDataRole.UserRole:
            return e.id
        if role == THUMBNAIL_ROLE:
            return self.thumbnails.get(e.id)
        if role == STATUS_ROLE:
            return e.status.value
        return None

    @staticmethod
    def status_text(e: BatchEntry) -> str:
        """The status column: the whole failure reason, not only a tooltip."""
        if e.status == Status.FAILED:
            return f"failed: {e.error}"
        if e.status == Status.SKIPPED:
            return f"skipped: {e.error}"
        if e.status == Status.RUNNING and e.message:
            return f"running: {e.message}"
        if e.status == Status.DONE:
            return f"done ({e.seconds:.1f} s)" + (f"; not kept: {', '.join(e.not_kept)}" if e.not_kept else "")
        return e.status.value


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
    skipped = Signal(int, object, str)
    cancelled = Signal(int)
    done = Signal()


def exists_message(target: Path) -> str:
    """Why an output was not written, naming the batch panel's controls (not a CLI flag)."""
    return f"{target}: already exists (tick “{OVERWRITE_LABEL}” to replace it, or “{SKIP_LABEL}” to leave it)"


class _BatchJob(QRunnable):
    """Runs queue entries through the engine's :class:`engine.pipeline.batch.Batch` (the same
    guarantees as the CLI: stale partial files removed, no output onto an input or onto another
    entry's output, any error fails one photo alone with its reason)."""

    def __init__(self, runner: "BatchRunner", work: list[tuple[int, BatchItem, RestoreOptions]], batch: Batch,
                 restorer_provider: Callable[[], Restorer]) -> None:
        super().__init__()
        self.runner, self.work, self.batch = runner, work, batch
        self.restorer_provider = restorer_provider
        self.signals = runner._signals

    def _restore(self, restorer: Restorer, item: BatchItem, options: RestoreOptions, progress: Progress):
        # An entry with its own settings shares the batch's record of claimed outputs
        # (dataclasses.replace passes the same dict and lock on).
        batch = self.batch if options == self.batch.options else replace(self.batch, options=options)
        if options.skip_existing:
            expected = batch.expected_target(item)
            if expected.exists():
                return RestoreResult(input=item.path, output=expected, skipped=True)

        def target_for(photo) -> Path:
            target = batch.target_for(item, photo)
            if target.exists() and not options.overwrite and not options.skip_existing:
                raise OutputExistsError(exists_message(target))  # named after this panel's controls
            return target

        return restorer.restore_file(item.path, target_for, options, progress)

    def run(self) -> None:
        sig, token = self.signals, self.runner._token
        try:
            restorer = self.restorer_provider()
            self.batch.prepare()
            for entry_id, item, options in self.work:
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

                try:
                    result = self._restore(restorer, item, options, Progress(report, token))
                except Cancelled:
                    sig.cancelled.emit(entry_id)
                    break
                except Exception as e:  # the CLI's policy: one photo fails alone, whatever went wrong
                    result = RestoreResult(input=item.path, error=describe_error(e, item.path))
                if result.skipped:
                    sig.skipped.emit(entry_id, result.output, f"the output exists (“{SKIP_LABEL}” is on)")
                else:
                    sig.finished.emit(entry_id, result)
        except Exception as e:  # the restorer itself could not be built: fail the first item visibly
            if self.work:
                sig.finished.emit(self.work[0][0], RestoreResult(input=self.work[0][1].path,
                                                                 error=describe_error(e, self.work[0][1].path)))
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
        self._signals.skipped.connect(lambda i, out, why: model.update(
            i, status=Status.SKIPPED, output=out, progress=1.0, message="", error=why))
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

    def make_batch(self, options: RestoreOptions, outdir: Path) -> Batch:
        """The engine batch of the waiting entries (call :meth:`Batch.check` before starting)."""
        return Batch([e.item for e in self.model.waiting()], Path(outdir), options)

    def start(self, options: RestoreOptions, outdir: Path,
              per_entry: Optional[Callable[[BatchEntry], RestoreOptions]] = None,
              batch: Optional[Batch] = None) -> bool:
        """Start the waiting entries; False if nothing is waiting or a run is in progress.
        ``per_entry(entry)`` gives an entry's own options (default: ``options`` for all);
        ``batch``: the checked engine batch (default: made here)."""
        work = [(e.id, e.item, per_entry(e) if per_entry else options) for e in self.model.waiting()]
        if self._running or not work:
            return False
        self._token = CancelToken()
        self._resume.set()
        self._running = True
        self._pool.start(_BatchJob(self, work, batch or self.make_batch(options, outdir), self.restorer_provider))
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
                              seconds=result.seconds, not_kept=tuple(getattr(result, "not_kept", ()) or ()))

    def _on_done(self) -> None:
        self._running = False
        if self.on_done is not None:
            self.on_done()


class ThumbnailLoader(QObject):
    """Decodes small previews of queued photos on a background thread (the engine's
    :func:`engine.imageio.thumbnail.load_thumbnail`) and hands them to the model."""

    class _Signals(QObject):
        done = Signal(int, object)

    class _Job(QRunnable):
        def __init__(self, entry_id: int, path: Path, signals) -> None:
            super().__init__()
            self.entry_id, self.path, self.signals = entry_id, path, signals

        def run(self) -> None:
            from engine.imageio.thumbnail import load_thumbnail

            try:
                pixels = load_thumbnail(self.path, THUMBNAIL_SIDE)
            except Exception:  # an unreadable photo gets no thumbnail; the batch reports why
                pixels = None
            self.signals.done.emit(self.entry_id, pixels)

    def __init__(self, model: BatchModel, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.model = model
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = self._Signals()
        self._signals.done.connect(self._done)

    def load(self, entries: Iterable[BatchEntry]) -> None:
        for e in entries:
            self._pool.start(self._Job(e.id, e.item.path, self._signals))

    def _done(self, entry_id: int, pixels) -> None:
        from .imaging import rgb_to_qimage

        if self.model.entry(entry_id) is not None:  # a null image: the file gave no preview
            self.model.set_thumbnail(entry_id, QImage() if pixels is None else rgb_to_qimage(pixels))

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)


#: Longest side of a filmstrip thumbnail, in pixels.
THUMBNAIL_SIDE = 160


def describe_options(options: RestoreOptions) -> str:
    """A few words for the Settings column: which kinds at which strength."""
    if options.auto:
        return "auto plan"
    parts = [f"{LABELS.get(k, k).lower()} {s:.0%}" for k, s in options.strengths.items()]
    return "own settings: " + (", ".join(parts) if parts else "nothing switched on")


class BatchPanel(PathDropTarget, QWidget):
    """The queue panel: drop target, options, Start / Pause / Cancel, per-item table."""

    #: Emitted with a one-line summary whenever the queue's state changes.
    statusChanged = Signal(str)
    #: A photo to show in the viewer (double-click on a waiting row or a thumbnail).
    openRequested = Signal(object)
    #: A message for the window's status bar (e.g. why a result could not be opened).
    message = Signal(str)

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
        self.thumbnails = ThumbnailLoader(self.model, self)
        self.problems: list[str] = []
        #: Opens a file in the desktop's viewer; returns False when there is none (tests replace it).
        self.open_external: Callable[[Path], bool] = lambda p: QDesktopServices.openUrl(QUrl.fromLocalFile(str(p)))
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
        outdir_row = path_row(self.outdir, self._choose_outdir, "Choose the output folder")
        self.format = format_combo(self.settings.output_format)
        self.format.setObjectName("batchFormat")
        self.bit_depth = bit_depth_combo(self.settings.bit_depth)
        self.bit_depth.setObjectName("batchBitDepth")
        self.bit_depth.setToolTip("Bit depth of the outputs (16-bit needs PNG, TIFF or same-as-input)")
        self.quality = QSpinBox()
        self.quality.setObjectName("batchQuality")
        self.quality.setRange(1, 100)
        self.quality.setValue(self.settings.jpeg_quality)
        self.quality.setToolTip("JPEG and WebP quality (1–100)")
        for combo in (self.format, self.bit_depth):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        self.format.currentIndexChanged.connect(lambda _i: self._format_changed())
        self.plan_auto = QRadioButton("Own auto plan")
        self.plan_auto.setToolTip("Each photo is analysed and gets its own automatic plan")
        self.plan_current = QRadioButton("Current settings")
        self.plan_current.setToolTip("Apply the open photo's switches, strengths and experts to every photo")
        group = QButtonGroup(self)
        group.addButton(self.plan_auto)
        group.addButton(self.plan_current)
        (self.plan_current if self.settings.batch_plan == "current" else self.plan_auto).setChecked(True)
        self.overwrite = QCheckBox(OVERWRITE_LABEL)
        self.overwrite.setObjectName("batchOverwrite")
        self.overwrite.setChecked(self.settings.overwrite)
        self.skip_existing = QCheckBox(SKIP_LABEL)
        self.skip_existing.setObjectName("batchSkipExisting")
        self.skip_existing.setToolTip("Resume a batch: outputs that already exist are left as they are and "
                                      "reported as skipped")
        self.skip_existing.setChecked(self.settings.skip_existing and not self.settings.overwrite)
        self.overwrite.toggled.connect(lambda on: on and self.skip_existing.setChecked(False))
        self.skip_existing.toggled.connect(lambda on: on and self.overwrite.setChecked(False))
        opts.addWidget(QLabel("Output:"), 0, 0)
        opts.addLayout(outdir_row, 0, 1, 1, 4)
        opts.addWidget(QLabel("Format:"), 1, 0)
        opts.addWidget(self.format, 1, 1)
        opts.addWidget(self.bit_depth, 1, 2, 1, 3)
        self.quality_label = QLabel("Quality:")
        self.quality_label.setToolTip(self.quality.toolTip())
        opts.addWidget(self.quality_label, 2, 0)
        opts.addWidget(self.quality, 2, 1)
        opts.addWidget(QLabel("(JPEG, WebP)"), 2, 2, 1, 3)
        opts.addWidget(self.plan_auto, 3, 0, 1, 2)
        opts.addWidget(self.plan_current, 3, 2, 1, 3)
        opts.addWidget(self.overwrite, 4, 0, 1, 5)
        opts.addWidget(self.skip_existing, 5, 0, 1, 5)
        opts.setColumnStretch(1, 1)
        layout.addLayout(opts)
        self._format_changed()

        add_row = QHBoxLayout()
        add_files = QPushButton("Add files…")
        add_row.setSpacing(4)
        add_files.clicked.connect(self._add_files_dialog)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._add_folder_dialog)
        clear = QPushButton("Clear done")
        clear.setToolTip("Remove finished, failed and skipped photos from the queue")
        clear.clicked.connect(self.model.remove_finished)
        for b in (add_files, add_folder, clear):
            add_row.addWidget(b)
        layout.addLayout(add_row)
        self.apply_button = QPushButton("Apply current settings to selected")
        self.apply_button.setObjectName("batchApplyCurrent")
        self.apply_button.setToolTip("Give the selected photos the open photo's switches, strengths and experts")
        self.apply_button.clicked.connect(self.apply_current_to_selected)
        self.auto_selected_button = QPushButton("Use batch choice")
        self.auto_selected_button.setToolTip("The selected photos follow the plan chosen above again")
        self.auto_selected_button.clicked.connect(lambda: self.set_options(self.selected_rows(), None))
        own_row = QHBoxLayout()
        own_row.addWidget(self.apply_button, 3)
        own_row.addWidget(self.auto_selected_button, 2)
        layout.addLayout(own_row)
        self.apply_button.setText("Apply current settings")
        self.apply_button.setMinimumWidth(60)
        self.auto_selected_button.setMinimumWidth(60)

        self.table = QTableView()
        self.table.setObjectName("batchTable")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(2, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 120)
        header.resizeSection(2, 56)
        header.resizeSection(3, 90)
        self.table.setColumnHidden(4, True)
        self.table.setColumnHidden(3, True)  # shown once a photo has its own settings
        self.table.doubleClicked.connect(lambda idx: self.activate(idx.row()))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_detail())
        layout.addWidget(self.table, 1)
        self.detail = detail_label("batchDetail")
        layout.addWidget(self.detail)

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

    def _format_changed(self) -> None:
        fmt = str(self.format.currentData())
        lossy = fmt in ("jpeg", "webp", "same")
        self.quality.setEnabled(lossy)
        self.quality_label.setEnabled(lossy)
        sixteen = fmt in ("png", "tiff", "same")
        item = self.bit_depth.model().item(self.bit_depth.findData("16"))
        item.setEnabled(sixteen)
        if not sixteen and self.bit_depth.currentData() == "16":
            self.bit_depth.setCurrentIndex(self.bit_depth.findData("8"))

    # -- adding -----------------------------------------------------------------------------
    def add_paths(self, paths: Iterable[str | Path]) -> int:
        """Queue files and folders (folders recursively); returns how many photos were added."""
        outdir = self.outdir.text().strip()
        items, problems = collect_inputs([Path(p) for p in paths], self.is_supported,
                                         exclude=[Path(outdir).expanduser()] if outdir else [])
        self.problems = [str(p) for p in problems]
        before = len(self.model.entries)
        added = self.model.add(items)
        self.thumbnails.load(self.model.entries[before:])
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

    def paths_dropped(self, paths: list[Path]) -> None:
        self.add_paths(paths)

    # -- per-photo settings -----------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        """Rows selected in the table or the filmstrip (they share one selection)."""
        return sorted({i.row() for i in self.table.selectionModel().selectedIndexes()})

    def set_options(self, rows: Iterable[int], options: Optional[RestoreOptions]) -> int:
        """Give the entries at ``rows`` their own ``options`` (``None``: the batch choice again);
        running and finished entries keep what they ran with. Returns how many changed."""
        changed = 0
        for row in rows:
            if 0 <= row < len(self.model.entries):
                e = self.model.entries[row]
                if e.status == Status.RUNNING:
                    continue
                label = "" if options is None else describe_options(options)
                self.model.update(e.id, options=options, settings_label=label)
                changed += 1
        self.table.setColumnHidden(3, not any(e.options is not None for e in self.model.entries))
        self._show_detail()
        return changed

    def apply_current_to_selected(self) -> int:
        current = self.current_options()
        rows = self.selected_rows()
        if current is None:
            self.summary.setText("Open a photo and tune it first: its settings are what gets applied.")
            return 0
        if not rows:
            self.summary.setText("Select photos in the queue or the filmstrip first.")
            return 0
        n = self.set_options(rows, current)
        self.message.emit(f"{n} photo(s) will use the open photo's settings.")
        return n

    # -- running ----------------------------------------------------------------------------
    def _common(self) -> dict:
        bd = str(self.bit_depth.currentData())
        return dict(fmt=str(self.format.currentData()), bit_depth=None if bd == "same" else int(bd),
                    tile=self.settings.tile, overwrite=self.overwrite.isChecked(),
                    skip_existing=self.skip_existing.isChecked(), jpeg_quality=self.quality.value())

    def options(self) -> RestoreOptions:
        common = self._common()
        if self.plan_current.isChecked():
            current = self.current_options()
            if current is not None:
                return replace(current, **common)
        return RestoreOptions(auto=True, **common)

    def options_for(self, entry: BatchEntry) -> RestoreOptions:
        """The entry's own settings with the panel's output choices, or the panel's options."""
        if entry.options is not None:
            return replace(entry.options, **self._common())
        return self.options()

    def start(self) -> bool:
        outdir = self.outdir.text().strip()
        if not outdir:
            self.summary.setText("Choose an output folder first.")
            return False
        options = self.options()
        batch = self.runner.make_batch(options, Path(outdir).expanduser())
        try:
            batch.check()  # before any work: conflicting choices, an output onto an input
        except RestoraError as e:
            self.summary.setText(f"Not started: {e}")
            self.message.emit(self.summary.text())
            return False
        self.settings.output_dir = outdir
        self.settings.output_format = str(self.format.currentData())
        bd = str(self.bit_depth.currentData())
        self.settings.bit_depth = None if bd == "same" else int(bd)
        self.settings.jpeg_quality = self.quality.value()
        self.settings.batch_plan = "current" if self.plan_current.isChecked() else "auto"
        self.settings.overwrite = self.overwrite.isChecked()
        self.settings.skip_existing = self.skip_existing.isChecked()
        self.pause_button.setChecked(False)
        started = self.runner.start(options, Path(outdir).expanduser(), per_entry=self.options_for, batch=batch)
        self._refresh()
        return started

    def _pause(self, paused: bool) -> None:
        self.runner.pause(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self._refresh()

    def _on_run_done(self) -> None:
        self.pause_button.setChecked(False)
        self._refresh()

    # -- rows -------------------------------------------------------------------------------
    def activate(self, row: int) -> str:
        """Double-click: a finished row opens its result (in the desktop's viewer, else here),
        a failed one shows its reason, a waiting one opens in the viewer. Returns what it did."""
        if not 0 <= row < len(self.model.entries):
            return ""
        e = self.model.entries[row]
        self.table.selectRow(row)
        self._show_detail(row)
        if e.status in (Status.DONE, Status.SKIPPED) and e.output is not None:
            if self.open_external(e.output):
                return "external"
            self.message.emit(f"No external viewer opened {e.output.name}; showing it here. "
                              f"The file is {e.output}")
            self.openRequested.emit(e.output)
            return "viewer"
        if e.status == Status.FAILED:
            self.message.emit(self.model.status_text(e))
            return "reason"
        if e.status == Status.RUNNING:
            return ""
        self.openRequested.emit(e.item.path)
        return "viewer"

    def open_result(self, row: int) -> bool:
        if 0 <= row < len(self.model.entries) and self.model.entries[row].output is not None:
            return self.activate(row) in ("external", "viewer")
        return False

    def _show_detail(self, row: Optional[int] = None) -> None:
        """The current row's full status (a failure reason in full) under the table."""
        if row is None:
            row = self.table.currentIndex().row()
        if not 0 <= row < len(self.model.entries):
            failed = [e for e in self.model.entries if e.status == Status.FAILED]
            last = failed[-1] if failed else None
            self.detail.setText(f"{last.item.relative}: {self.model.status_text(last)}" if last else "")
            return
        e = self.model.entries[row]
        lines = [f"{e.item.relative}: {self.model.status_text(e)}"]
        if e.settings_label:
            lines.append(e.settings_label)
        self.detail.setText("\n".join(lines))

    def _context_menu(self, pos) -> None:
        row = self.table.indexAt(pos).row()
        menu = QMenu(self)
        if row >= 0:
            entry = self.model.entries[row]
            act = menu.addAction("Open result", lambda: self.open_result(row))
            act.setEnabled(entry.output is not None)
            if entry.output is not None:
                menu.addAction("Show in folder", lambda: self.open_external(entry.output.parent))
            menu.addAction("Open in viewer", lambda: self.openRequested.emit(entry.item.path))
            menu.addAction("Remove", lambda: self.model.remove_rows(self.selected_rows() or [row]))
        menu.addAction("Apply current settings to selected", self.apply_current_to_selected)
        menu.addAction("Retry failed, skipped and cancelled", self.model.reset_unfinished)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _refresh(self, *args) -> None:
        c = self.model.counts()
        running = self.runner.is_running()
        self.start_button.setEnabled(not running and c[Status.WAITING] > 0)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.apply_button.setEnabled(bool(self.model.entries))
        parts = [f"{len(self.model.entries)} in queue", f"{c[Status.DONE]} done"]
        if c[Status.SKIPPED]:
            parts.append(f"{c[Status.SKIPPED]} skipped")
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
        self.table.resizeRowsToContents()
        if not self.table.currentIndex().isValid():
            self._show_detail()
        self.statusChanged.emit(text)
