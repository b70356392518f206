"""The main window: viewer in the middle, analysis/controls and batch queue in docks, menus,
toolbar, status bar, undo/redo, persistence."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QDialogButtonBox, QDockWidget, QFileDialog,
                               QFormLayout, QFrame, QScrollArea, QLabel, QLineEdit, QMainWindow,
                               QMessageBox, QProgressBar, QToolButton, QWidget)

from engine.errors import RestoraError
from engine.experts.base import held_back
from engine.imageio.formats import FORMATS, OFFERED_FORMATS, same_output_format
from engine.kinds import LABELS
from engine.pipeline import RestoreOptions, Restorer
from engine.uncertainty.summary import UNCERTAIN_LEVELS

from .batch import BatchPanel
from .commands import ControlChange
from .controls import ControlsPanel
from .document import (CHANGE_MAP_FULL_SCALE, UNCERTAINTY_FULL_SCALE, ControlState, Document, PhotoPreview,
                       StagePreview)
from .filmstrip import Filmstrip
from .overview import OverviewPanel
from .settings import AppSettings
from .theme import app_icon, apply_theme
from .viewer import BeforeAfterViewer
from .workers import JobRunner
from .widgets import PathDropTarget, path_row

log = logging.getLogger(__name__)

APP_TITLE = "Restora"
#: Milliseconds after the last setting change before its uncertainty map is measured (a slider
#: being dragged does not start a measurement per step).
UNCERTAINTY_DELAY_MS = 200
#: The status bar while a strength between the deferred knots of a stage shows its linear preview
#: (Document.complete_knots); it stays until the knots land.
KNOTS_PENDING_MESSAGE = "Strength preview (approximate): the exact result at this strength is being computed…"
#: Export formats: the engine's offered output formats (name → extensions, bit depths, …).
EXPORT_FORMATS = {name: FORMATS[name] for name in OFFERED_FORMATS}
_EXT_TO_FORMAT = {e: f.name for f in EXPORT_FORMATS.values() for e in f.extensions}


def open_dialog_filter() -> str:
    """The Open dialog's filter: every extension the engine's loader reads (one table:
    ``engine.imageio.formats.SUPPORTED_EXTENSIONS``), upper- and lower-case."""
    from engine.imageio.formats import RAW_EXTENSIONS, SUPPORTED_EXTENSIONS

    def patterns(exts) -> str:
        return " ".join(f"*{e} *{e.upper()}" for e in sorted(exts))

    return (f"Photos ({patterns(SUPPORTED_EXTENSIONS)});;Camera RAW ({patterns(RAW_EXTENSIONS)});;"
            "All files (*)")


def _is_supported(path: Path) -> bool:
    try:
        from engine.imageio import is_supported
    except ImportError:
        return path.suffix.lower() in _EXT_TO_FORMAT
    return bool(is_supported(path))


def _load_photo(path: Path):
    from engine.imageio import load_photo

    return load_photo(path)


def _save_photo(photo, path: Path, fmt: str, bit_depth: Optional[int]) -> Path:
    from engine.imageio import save_photo

    return Path(save_photo(photo, path, fmt=fmt, bit_depth=bit_depth, overwrite=True))


def default_restorer(device_preference: str) -> tuple[Restorer, str]:
    """Build the restorer for the user's device choice; falls back to the CPU (and says so)."""
    from engine.experts.default import build_registry

    note = ""
    try:
        from engine.runtime.device import choose_device

        device = choose_device(device_preference)
    except ImportError:
        device = "cpu"
    except RestoraError as e:
        device, note = "cpu", f"{e}; using the CPU"
    return Restorer(build_registry(device=device), device=device), note


class ExportDialog(QDialog):
    """Asks for the output file, its format and bit depth."""

    def __init__(self, suggested: Path, fmt: str, bit_depth: int, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export restored photo")
        form = QFormLayout(self)
        self.path = QLineEdit(str(suggested))
        self.path.setMinimumWidth(420)
        row = path_row(self.path, self._browse)
        self.format = QComboBox()
        for name, f in EXPORT_FORMATS.items():
            self.format.addItem(f.label, name)
        self.format.setCurrentIndex(max(self.format.findData(fmt), 0))
        self.bit_depth = QComboBox()
        self.format.currentIndexChanged.connect(lambda _: self._formats_changed())
        self.path.textEdited.connect(self._path_edited)
        self._formats_changed(bit_depth)
        self._confirmed: Optional[Path] = None  # a path the file browser already asked about
        #: Asks whether to replace an existing file (tests replace it).
        self.confirm_replace = self._ask_replace
        form.addRow("File:", row)
        form.addRow("Format:", self.format)
        form.addRow("Bit depth:", self.bit_depth)
        form.addRow(QLabel("EXIF, ICC profile and orientation are carried over from the original."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _formats_changed(self, keep: Optional[int] = None) -> None:
        fmt = str(self.format.currentData())
        keep = keep if keep is not None else self.bit_depth.currentData()
        self.bit_depth.clear()
        for d in EXPORT_FORMATS[fmt].bit_depths:
            self.bit_depth.addItem(f"{d}-bit", d)
        self.bit_depth.setCurrentIndex(max(self.bit_depth.findData(keep), 0))
        p = Path(self.path.text())
        if p.suffix.lower() in _EXT_TO_FORMAT and _EXT_TO_FORMAT[p.suffix.lower()] != fmt:
            self.path.setText(str(p.with_suffix(EXPORT_FORMATS[fmt].extension)))

    def _path_edited(self, text: str) -> None:
        """A typed extension chooses the format (``photo.jpg`` → JPEG), so the two never disagree."""
        fmt_of = _EXT_TO_FORMAT.get(Path(text).suffix.lower())
        if fmt_of and fmt_of != self.format.currentData():
            self.format.blockSignals(True)
            self.format.setCurrentIndex(self.format.findData(fmt_of))
            self.format.blockSignals(False)
            self._formats_changed(self.bit_depth.currentData())

    def _browse(self) -> None:
        fmt = str(self.format.currentData())
        path, _ = QFileDialog.getSaveFileName(self, "Export as", self.path.text(), EXPORT_FORMATS[fmt].dialog_filter)
        if path:
            self.path.setText(path)
            self._path_edited(path)
            self._confirmed = self.target()  # the browser asked before replacing

    def target(self) -> Path:
        """The file that will be written: the typed name, with the format's extension added when
        the name has none or an extension of another format (never JPEG bytes in a .png)."""
        path = Path(self.path.text().strip()).expanduser()
        fmt = str(self.format.currentData())
        if _EXT_TO_FORMAT.get(path.suffix.lower()) != fmt:
            extension = EXPORT_FORMATS[fmt].extension
            path = path.with_name(path.name + extension) if path.suffix.lower() not in _EXT_TO_FORMAT \
                else path.with_suffix(extension)
        return path

    def _ask_replace(self, path: Path) -> bool:
        answer = QMessageBox.question(self, "Replace file?", f"{path.name} already exists in {path.parent}.\n"
                                      "Do you want to replace it?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def accept(self) -> None:
        target = self.target()
        if not self.path.text().strip():
            return
        if target.exists() and target != self._confirmed and not self.confirm_replace(target):
            return  # stay open: choose another name
        self.path.setText(str(target))
        super().accept()

    def choice(self) -> tuple[Path, str, int]:
        return self.target(), str(self.format.currentData()), int(self.bit_depth.currentData())


class MainWindow(PathDropTarget, QMainWindow):
    """Restora's main window. ``restorer`` may be injected (tests); otherwise it is built on
    first use for the device in the settings."""

    #: A photo being opened was decoded (emitted from the job's thread): ``(PhotoPreview, token)``.
    photoDecoded = Signal(object, object)
    #: A stage of the opening restoration landed (emitted from the job's thread):
    #: ``(StagePreview, plan, token)``.
    stageLanded = Signal(object, object, object)
    #: The preview-grid uncertainty map of the setting being measured is made (emitted from the
    #: measuring job's thread): ``token``.
    uncertaintyPreviewed = Signal(object)

    def __init__(self, settings: Optional[AppSettings] = None, restorer: Optional[Restorer] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self._restorer = restorer
        self._restorer_lock = threading.Lock()
        self.device_note = ""
        self.doc: Optional[Document] = None
        self._pending: Optional[ControlState] = None
        self._running_signature: Optional[tuple] = None
        self.export_path: Optional[tuple[Path, str, int]] = None
        self.last_error = ""
        self.last_message = ""
        self._job_started = 0.0
        self._opening: Optional[Path] = None  # the photo being opened (the current one is locked meanwhile)
        self._opening_token: Optional[object] = None  # identifies the opening job's events
        self._device_note_shown = False
        #: Asks whether to close while work is running (tests replace it).
        self.confirm_close = self._ask_close
        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.undo_stack = QUndoStack(self)
        self.jobs = JobRunner(self)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.busyChanged.connect(self._on_busy)
        self.photoDecoded.connect(self._show_decoded)
        self.stageLanded.connect(self._show_stage)
        #: Measures the uncertainty map of the setting shown (seconds on a large photo) on its own
        #: thread: the newest setting's job supersedes the older ones.
        self.maps = JobRunner(self)
        self.maps.failed.connect(lambda message: log.warning("uncertainty map: %s", message))
        self._map_token: Optional[object] = None
        self._map_for: Optional[tuple] = None  # (document, strengths) the job in flight measures
        self._map_timer = QTimer(self)
        self._map_timer.setSingleShot(True)
        self._map_timer.setInterval(UNCERTAINTY_DELAY_MS)
        self._map_timer.timeout.connect(self._measure_uncertainty)
        self.uncertaintyPreviewed.connect(self._uncertainty_arrived)
        #: Runs the denoiser's half-strength knot that its slider composes from, after the photo is
        #: on screen and its uncertainty measured (Document.complete_knots); any restoration job
        #: cancels it, and it starts again when that job ends.
        self.knots = JobRunner(self)
        self.knots.failed.connect(lambda message: log.warning("strength knots: %s", message))
        self._knots_for: Optional[Document] = None

        self.viewer = BeforeAfterViewer(self)
        self.viewer.setObjectName("viewer")
        self.viewer.legend_text = (f"change: 0 to {CHANGE_MAP_FULL_SCALE:.0%} of the tonal range "
                                   f"(≈{CHANGE_MAP_FULL_SCALE * 255:.0f} of 255 levels) or more")
        self.viewer.uncertainty_legend_text = (
            f"expected error: 0 to {UNCERTAINTY_FULL_SCALE:.0f} of 255 levels or more"
            f" (over {UNCERTAIN_LEVELS:.0f}: uncertain)")
        self.setCentralWidget(self.viewer)
        self.overview = OverviewPanel(self.viewer)
        self.controls = ControlsPanel()
        self.controls.strengthChanged.connect(self._strength_changed)
        self.controls.enabledChanged.connect(self._enabled_changed)
        self.controls.expertChanged.connect(self._expert_changed)
        self.controls.autoRequested.connect(self.reset_to_auto)
        self.controls.cautionChanged.connect(self._caution_changed)
        self.overview_dock = self._dock("Navigator and histogram", "overviewDock", self.overview,
                                        Qt.DockWidgetArea.RightDockWidgetArea)
        self.controls_dock = self._dock("Analysis", "analysisDock", self.controls,
                                        Qt.DockWidgetArea.RightDockWidgetArea)
        self.batch = BatchPanel(self.restorer, self.settings, current_options=self.current_batch_options,
                                is_supported=_is_supported)
        self.batch.openRequested.connect(self.open_file)
        self.batch.message.connect(self._show_message)
        # In a scroll area, so a small screen (1280x720) still fits the window.
        batch_scroll = QScrollArea()
        batch_scroll.setWidgetResizable(True)
        batch_scroll.setFrameShape(QFrame.Shape.NoFrame)
        batch_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        batch_scroll.setWidget(self.batch)
        self.batch_dock = self._dock("Batch queue", "queueDock", batch_scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.controls_dock, self.batch_dock)
        self.filmstrip = Filmstrip(self.batch)
        self.filmstrip.openRequested.connect(self.open_file)
        self.filmstrip_dock = self._dock("Filmstrip", "filmstripDock", self.filmstrip,
                                         Qt.DockWidgetArea.BottomDockWidgetArea)
        self.filmstrip_dock.setMinimumWidth(0)
        self.filmstrip_dock.hide()  # shown when several photos are opened or dropped
        self.resizeDocks([self.controls_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.overview_dock, self.controls_dock], [310, 600], Qt.Orientation.Vertical)
        self.controls_dock.raise_()
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(500)
        self._elapsed_timer.timeout.connect(self._tick)
        self._progress_text = ""
        self._build_status_bar()
        self._build_actions()
        self.viewer.viewChanged.connect(self._update_zoom_label)
        self.viewer.set_mode(self.settings.viewer_mode)
        self.viewer.set_overlay(self.settings.show_overlay)
        self.resize(1400, 880)
        geometry, state = self.settings.geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self._sync_mode_actions()
        self._update_status()
        self._update_actions()
        self.viewer.setFocus()  # Space, F, 1, 2, +/- work at once

    # -- construction -----------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setMinimumWidth(300)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot: Callable, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({act.shortcut().toString()})" if shortcut is not None else tip)
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        S = QKeySequence.StandardKey
        a = self.actions_by_name = {}
        a["open"] = self._action("&Open…", self.open_dialog, S.Open, "Open a photo")
        a["save"] = self._action("&Save", self.save, S.Save, "Save the restored photo (again to the last export)")
        a["export"] = self._action("&Export As…", self.export_dialog, QKeySequence("Ctrl+Shift+S"),
                                   "Export the restored photo with a format and bit depth")
        a["queue_add"] = self._action("Add to &Queue…", self.batch._add_files_dialog, QKeySequence("Ctrl+Shift+O"),
                                      "Add photos to the batch queue")
        a["quit"] = self._action("&Quit", self.close, QKeySequence("Ctrl+Q"), "Quit Restora")
        a["undo"] = self.undo_stack.createUndoAction(self, "&Undo")
        a["undo"].setShortcuts(S.Undo)
        a["redo"] = self.undo_stack.createRedoAction(self, "&Redo")
        a["redo"].setShortcuts([QKeySequence(S.Redo), QKeySequence("Ctrl+Y")])
        # The toolbar's Undo/Redo keep a fixed label (the menu's say what they undo), so the
        # buttons after them never shift.
        a["undo_tb"] = self._action("Undo", self.undo_stack.undo, None, "Undo the last change")
        a["redo_tb"] = self._action("Redo", self.undo_stack.redo, None, "Redo")
        self.removeAction(a["undo_tb"])
        self.removeAction(a["redo_tb"])
        self.undo_stack.canUndoChanged.connect(lambda on: a["undo_tb"].setEnabled(on and self._editable()))
        self.undo_stack.canRedoChanged.connect(lambda on: a["redo_tb"].setEnabled(on and self._editable()))
        self.undo_stack.undoTextChanged.connect(
            lambda t: a["undo_tb"].setToolTip(f"Undo {t} (Ctrl+Z)" if t else "Undo"))
        self.undo_stack.redoTextChanged.connect(lambda t: a["redo_tb"].setToolTip(f"Redo {t}" if t else "Redo"))
        a["auto"] = self._action("&Auto", self.reset_to_auto, QKeySequence("Ctrl+R"), "Back to the analysis's plan")
        a["cancel"] = self._action("&Cancel", self.cancel_job, QKeySequence("Esc"), "Stop the running job")
        a["settings"] = self._action("&Settings…", self.settings_dialog, QKeySequence("Ctrl+,"),
                                     "Device, tiles, output, theme")
        a["models"] = self._action("&Models…", self.models_dialog, QKeySequence("Ctrl+Shift+M"),
                                   "Installed and available models")
        modes = QActionGroup(self)
        for key, text, shortcut in (("split", "&Split", "Alt+1"), ("side", "Side &by Side", "Alt+2"),
                                    ("toggle", "&Toggle (hold Space)", "Alt+3"),
                                    ("uncertainty", "&Uncertainty", "Alt+4")):
            act = self._action(text, lambda checked=False, m=key: self.set_view_mode(m), QKeySequence(shortcut),
                               f"{text.replace('&', '')} view", checkable=True)
            modes.addAction(act)
            a[f"mode_{key}"] = act
        a["fit"] = self._action("&Fit", self.viewer.fit, QKeySequence("Ctrl+0"), "Fit the photo in the window")
        a["zoom100"] = self._action("&100 %", lambda: self.viewer.set_zoom(1.0), QKeySequence("Ctrl+1"),
                                    "Actual pixels")
        a["zoom200"] = self._action("&200 %", lambda: self.viewer.set_zoom(2.0), QKeySequence("Ctrl+2"), "200 %")
        a["zoom_in"] = self._action("Zoom &In", lambda: self.viewer.zoom_by(1.25), S.ZoomIn, "Zoom in")
        a["zoom_out"] = self._action("Zoom &Out", lambda: self.viewer.zoom_by(0.8), S.ZoomOut, "Zoom out")
        a["overlay"] = self._action("Show &Changes", self.set_overlay, QKeySequence("Ctrl+M"),
                                    "Overlay where the restoration changed the photo most", checkable=True)
        a["overlay"].setChecked(self.settings.show_overlay)
        a["loupe"] = self._action("&Loupe (1:1 under the cursor)", self.viewer.set_loupe, QKeySequence("Ctrl+L"),
                                  "Show actual pixels under the cursor, also in fit view", checkable=True)
        a["loupe"].setIconText("Loupe")
        a["about"] = self._action("&About Restora", self._about)

        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(a["open"])
        self.recent_menu = m.addMenu("Open &Recent")
        self._rebuild_recent()
        m.addSeparator()
        m.addAction(a["save"])
        m.addAction(a["export"])
        m.addSeparator()
        m.addAction(a["queue_add"])
        m.addSeparator()
        m.addAction(a["quit"])
        m = bar.addMenu("&Edit")
        m.addAction(a["undo"])
        m.addAction(a["redo"])
        m.addSeparator()
        m.addAction(a["auto"])
        m.addAction(a["cancel"])
        m.addSeparator()
        m.addAction(a["settings"])
        m = bar.addMenu("&View")
        for k in ("mode_split", "mode_side", "mode_toggle", "mode_uncertainty"):
            m.addAction(a[k])
        m.addSeparator()
        for k in ("fit", "zoom100", "zoom200", "zoom_in", "zoom_out"):
            m.addAction(a[k])
        m.addSeparator()
        m.addAction(a["overlay"])
        m.addAction(a["loupe"])
        m.addSeparator()
        m.addAction(self.overview_dock.toggleViewAction())
        m.addAction(self.controls_dock.toggleViewAction())
        m.addAction(self.batch_dock.toggleViewAction())
        m.addAction(self.filmstrip_dock.toggleViewAction())
        m = bar.addMenu("&Tools")
        m.addAction(a["models"])
        m.addAction(a["settings"])
        m = bar.addMenu("&Help")
        m.addAction(a["about"])

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for k in ("open", "export", None, "undo_tb", "redo_tb", None, "mode_split", "mode_side", "mode_toggle",
                  "mode_uncertainty", None,
                  "fit", "zoom100", "zoom200", None, "overlay", "loupe", "auto", None, "models"):
            if k is None:
                tb.addSeparator()
            else:
                tb.addAction(a[k])
        a["undo_tb"].setEnabled(False)
        a["redo_tb"].setEnabled(False)
        self.toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.size_label = QLabel()
        self.depth_label = QLabel()
        self.meta_label = QLabel()
        self.device_label = QLabel()
        self.time_label = QLabel()
        self.zoom_label = QLabel()
        for w in (self.size_label, self.depth_label, self.meta_label, self.device_label, self.time_label,
                  self.zoom_label):
            sb.addPermanentWidget(w)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.elapsed_label = QLabel()
        self.elapsed_label.setObjectName("elapsedLabel")
        self.elapsed_label.setVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_job)
        sb.addWidget(self.progress)
        sb.addWidget(self.elapsed_label)
        sb.addWidget(self.cancel_button)

    # -- restorer ---------------------------------------------------------------------------
    def restorer(self) -> Restorer:
        """The shared restorer (built on first use; safe to call from worker threads)."""
        with self._restorer_lock:
            if self._restorer is None:
                self._restorer, self.device_note = default_restorer(self.settings.device)
            return self._restorer

    def _reset_restorer(self) -> None:
        with self._restorer_lock:
            self._restorer = None
            self._device_note_shown = False

    # -- opening ----------------------------------------------------------------------------
    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open photos", self.settings.last_dir, open_dialog_filter())
        if paths:
            self.handle_paths([Path(p) for p in paths])

    def open_file(self, path: str | Path) -> int:
        """Load, analyse and restore ``path`` in the background; returns the job's generation.

        Until it is ready the photo on screen cannot be edited (an edit would start a job and
        cancel the opening); cancelling the opening keeps that photo."""
        path = Path(path)
        self.settings.last_dir = str(path.parent)
        self._show_message(f"Opening {path.name}…")

        token = object()  # this opening's events (a later opening of the same file has its own)

        def job(progress):
            photo = _load_photo(path)
            original = PhotoPreview(photo)
            self.photoDecoded.emit(original, token)  # on screen now, while the stages run

            def landed(session, plan, results):  # each stage on screen as it lands
                progress.check()
                self.stageLanded.emit(StagePreview.build(original, session, plan, results), plan, token)

            return Document.open(photo, self.restorer(), progress, tile=self.settings.tile, on_stage=landed)

        self._job_started = time.perf_counter()
        self._opening = path
        self._opening_token = token
        self._pending = None
        self._running_signature = None
        if self.doc is not None:
            self.controls.set_rows(self.doc.rows())  # show what the viewer shows, not a pending edit
            self.controls.set_caution(self.doc.state.caution)
        else:  # the panel would say "No photo open" while the photo it is analysing is on screen
            self.controls.set_summary(f"Analysing and restoring {path.name}…")
        self.viewer.set_busy_text(f"Opening {path.name}… (Esc cancels and keeps the photo on screen)"
                                  if self.doc is not None else f"Opening {path.name}…")
        gen = self.jobs.start(job, lambda doc: self._document_ready(doc, path))
        self._update_actions()
        return gen

    def _opening_now(self, token) -> bool:
        return self._opening is not None and token is getattr(self, "_opening_token", None)

    def _show_decoded(self, preview: PhotoPreview, token) -> None:
        """Show the original of the photo being opened at once, then each stage as it lands
        (cancelling or failing goes back to the photo that was on screen)."""
        if self._opening_now(token):
            self.viewer.set_source(preview)
            self.viewer.set_busy_text(f"Restoring {self._opening.name}… the first stage is running"
                                      + (" (Esc cancels)" if self.doc is not None else ""))

    def _show_stage(self, preview: StagePreview, plan, token) -> None:
        """Show the stages of the opening restoration that have landed, keeping the view."""
        if not self._opening_now(token):
            return  # cancelled, or another photo is opening now
        keep = isinstance(self.viewer.source(), PhotoPreview)
        self.viewer.set_source(preview, keep_view=keep)
        self.viewer.set_busy_text(self.stage_text(preview, plan, self._opening.name)
                                  + (" (Esc cancels)" if self.doc is not None else ""))

    @staticmethod
    def stage_text(preview: StagePreview, plan, name: str) -> str:
        """The banner while stages land: which stage is shown, which one was not kept."""
        last = preview.results[-1]
        shown = [LABELS.get(r.name, r.name) for r in preview.landed]
        total = max(len(plan.stages), len(preview.results))
        where = f"stage {len(preview.results)} of {total}"
        head = (f"{LABELS.get(last.name, last.name)} did not help, not applied ({where})" if last.dropped
                else f"{LABELS.get(last.name, last.name)} done ({where})")
        body = ("showing " + " + ".join(shown) + " fixed") if shown else "showing the original"
        more = "; restoring…" if len(preview.results) < total else "; finishing…"
        return f"Restoring {name}: {head}, {body}{more}"

    def _opening_ended(self, back_to_open_photo: bool = True) -> None:
        if self._opening is not None:
            self._opening = None
            self.viewer.set_busy_text("")
            if self.doc is None:
                self.controls.set_summary("No photo open")
            if back_to_open_photo and isinstance(self.viewer.source(), PhotoPreview):
                self.viewer.set_source(self.doc, keep_view=False)
            self._update_actions()

    def _editable(self) -> bool:
        """Whether the open photo's controls may change now (not while another photo opens)."""
        return self.doc is not None and self._opening is None

    def _update_actions(self) -> None:
        """Actions that cannot act are disabled (no photo, or a photo is opening)."""
        a = getattr(self, "actions_by_name", None)
        if a is None:
            return
        editable = self._editable()
        for k in ("export", "save", "auto"):
            a[k].setEnabled(editable)
        a["undo"].setEnabled(editable and self.undo_stack.canUndo())
        a["redo"].setEnabled(editable and self.undo_stack.canRedo())
        a["undo_tb"].setEnabled(editable and self.undo_stack.canUndo())
        a["redo_tb"].setEnabled(editable and self.undo_stack.canRedo())
        self.controls.setEnabled(self.doc is None or editable)

    def _document_ready(self, doc: Document, path: Path) -> None:
        if self._opening != path:
            return  # the opening was cancelled just as it finished: keep the photo on screen
        self._opening_ended(back_to_open_photo=False)  # the new document replaces the preview
        closed, self.doc = self.doc, doc
        self._pending = None
        self._running_signature = None
        self.export_path = None
        self.undo_stack.clear()
        self.viewer.set_source(doc)
        self.controls.set_rows(doc.rows())
        self.controls.set_caution(doc.state.caution)
        self.controls.set_summary(self._summary_text(doc))
        self._stop_measuring()  # the closed photo's measurement
        self._schedule_uncertainty()
        self.overview.histogram.set_document(doc)
        if closed is not None:  # nothing shows it or runs on it now: its temporary files go
            closed.close()
        self.setWindowTitle(f"{path.name} — {APP_TITLE}")
        self._rebuild_recent(self.settings.add_recent_file(str(path)))
        self._update_actions()
        self._job_ended(f"Opened {path.name}")

    @staticmethod
    def _summary_text(doc: Document) -> str:
        found = doc.report.present()
        if not found:
            return "Looks clean: no degradation detected."
        held = [LABELS.get(r.name, r.name).lower() for r in doc.session.results if r.dropped and held_back(r.reason)]
        return "Detected: " + ", ".join(f"{LABELS[k].lower()} {doc.report.severity(k):.0%}" for k in found) + (
            f"; held back: {', '.join(held)} (its row says why)" if held else "")

    def _rebuild_recent(self, files: Optional[list[str]] = None) -> None:
        files = self.settings.recent_files() if files is None else files
        self.recent_menu.clear()
        for f in files:
            self.recent_menu.addAction(f, lambda checked=False, p=f: self.open_file(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.settings.clear_recent_files(),
                                                              self._rebuild_recent([])))
        self.recent_menu.setEnabled(bool(files))

    # -- controls → state -------------------------------------------------------------------
    def current_state(self) -> Optional[ControlState]:
        if self.doc is None:
            return None
        return self._pending if self._pending is not None else self.doc.state

    def _push(self, new: ControlState, text: str, merge_key: Optional[str] = None) -> None:
        old = self.current_state()
        if old is None or new == old:
            return
        self.undo_stack.push(ControlChange(self.apply_state, old, new, text, merge_key))

    def _strength_changed(self, name: str, strength: float) -> None:
        state = self.current_state()
        if state is not None:
            self._push(state.with_strength(name, strength), f"{LABELS.get(name, name)} strength", merge_key=name)

    def _caution_changed(self, caution: float) -> None:
        state = self.current_state()
        if state is not None:
            self._push(state.with_caution(caution), "Caution", merge_key="caution")

    def _enabled_changed(self, name: str, on: bool) -> None:
        state = self.current_state()
        if state is not None:
            self._push(state.with_enabled(name, on), f"{LABELS.get(name, name)} {'on' if on else 'off'}")

    def _expert_changed(self, name: str, expert_id: str) -> None:
        state = self.current_state()
        if state is not None:
            self._push(state.with_expert(name, expert_id), f"{LABELS.get(name, name)} expert")

    def reset_to_auto(self) -> None:
        if self._editable():
            self._push(self.doc.auto_state, "Auto")

    def apply_state(self, state: ControlState) -> None:
        """Show ``state``: a re-compose when the cached stages suffice, else a background run
        (only the changed stage and the ones after it run; the rest come from the cache)."""
        doc = self.doc
        if doc is None:
            return
        self.overview.histogram.schedule()
        # A run in flight for other stages would replace the results this state composes from,
        # so a state that needs no run of its own still goes through the runner then (the cache
        # answers; the run in flight is cancelled).
        in_flight = self._running_signature is not None and self._running_signature != doc.run_signature(state)
        if doc.needs_run(state) or in_flight:
            self._pending = state
            self.controls.set_rows(doc.rows(state))
            self.controls.set_caution(state.caution)
            signature = doc.run_signature(state)
            if self.jobs.is_busy() and signature == self._running_signature:
                return  # the run in flight computes the same stages; only strengths differ
            self._running_signature = signature
            self._stop_measuring()  # the run replaces the stages a map reads; its end schedules the new map
            self._job_started = time.perf_counter()
            self.jobs.start(lambda p: doc.run(state, p), lambda _res: self._run_finished(doc))
        else:
            self._pending = None
            strength_only = dict(state.enabled) == dict(doc.state.enabled) and \
                dict(state.experts) == dict(doc.state.experts)
            doc.set_state(state)
            self.controls.set_rows(doc.rows())
            self.controls.set_caution(doc.state.caution)
            self.viewer.refresh(interactive=strength_only)
            if doc.knots_pending(state):
                self.last_message = KNOTS_PENDING_MESSAGE
                self.statusBar().showMessage(KNOTS_PENDING_MESSAGE)  # until the knots land
            elif self.statusBar().currentMessage() == KNOTS_PENDING_MESSAGE:
                self.statusBar().clearMessage()
            self._schedule_uncertainty()

    def _run_finished(self, doc: Document) -> None:
        if doc is not self.doc:
            return
        self._running_signature = None
        pending, self._pending = self._pending, None
        if pending is not None and pending != doc.state:
            if doc.needs_run(pending):
                self.apply_state(pending)
                return
            doc.set_state(pending)  # strengths moved while the run was in flight
        self._schedule_uncertainty()
        self.controls.set_rows(doc.rows())
        self.controls.set_caution(doc.state.caution)
        self.viewer.refresh()
        self.overview.histogram.schedule()
        self._job_ended("Restored.")

    def _on_cancelled(self) -> None:
        self._opening_ended()
        self._running_signature = None
        self._pending = None
        if self.doc is not None:
            self.controls.set_rows(self.doc.rows())  # the controls show what the viewer shows
            self.controls.set_caution(self.doc.state.caution)
        self._job_ended("Cancelled.")

    def current_batch_options(self) -> Optional[RestoreOptions]:
        return None if self.doc is None else self.doc.batch_options(tile=self.settings.tile)

    # -- uncertainty ------------------------------------------------------------------------
    def _schedule_uncertainty(self) -> None:
        """Show the uncertainty of the setting shown: its sentence and map when they are made,
        else say it is being measured and measure it off the UI thread once the settings rest
        for :data:`UNCERTAINTY_DELAY_MS` (a measurement of an older setting is cancelled)."""
        doc = self.doc
        self._show_uncertainty()
        if doc is None or doc.uncertainty_measured() or doc.knots_pending(doc.state):
            # a setting that needs the deferred knots is measured once they have landed
            self._map_timer.stop()
            self._start_knots()
            return
        if self.maps.is_busy() and self._map_for == (doc, doc.state.effective_strengths()):
            return  # the job in flight measures this very setting (only Caution or the view changed)
        self.maps.cancel()
        self._map_timer.start()

    def _start_knots(self) -> None:
        """Run the shown document's deferred knots in the background, when nothing else needs
        the CPU: no restoration job, and the uncertainty of the setting shown measured."""
        doc = self.doc
        if doc is None or self.jobs.is_busy() or self._opening is not None or not doc.knots_pending() \
                or not (doc.uncertainty_measured() or doc.knots_pending(doc.state)) \
                or (self.knots.is_busy() and self._knots_for is doc):
            return
        self._knots_for = doc
        self.knots.start(lambda p: doc.complete_knots(p), lambda landed: self._knots_landed(doc, landed))

    def _knots_landed(self, doc: Document, landed: bool) -> None:
        """The knots arrived: a strength between them now composes from them (redraw, and measure
        that setting's uncertainty again)."""
        if self._knots_for is doc:
            self._knots_for = None
        if doc is self.doc and landed:
            if self.statusBar().currentMessage() == KNOTS_PENDING_MESSAGE:
                self.statusBar().clearMessage()
            self.viewer.refresh()
            self.overview.histogram.schedule()
            self._schedule_uncertainty()

    def _stop_measuring(self) -> None:
        self._map_timer.stop()
        self.maps.cancel()
        self._map_token = None

    def _measure_uncertainty(self) -> None:
        doc = self.doc
        if doc is None or self._running_signature is not None or doc.uncertainty_measured():
            return  # nothing shown, or a run is replacing the stages (its end schedules the map)
        state, token = doc.state, object()
        preview = self.viewer.mode().value == "uncertainty"
        self._map_token, self._map_for = token, (doc, state.effective_strengths())

        def job(progress):
            doc.measure_uncertainty(state, preview, on_preview=lambda: self.uncertaintyPreviewed.emit(token),
                                    progress=progress)

        self.maps.start(job, lambda _res: self._uncertainty_arrived(token))

    def _uncertainty_arrived(self, token) -> None:
        """A measurement (its preview or its end) arrived: show what is made for the setting shown
        now (a superseded setting's map is cached, never shown)."""
        if token is self._map_token:
            self._schedule_uncertainty()  # shows what is made; measures again if the setting changed meanwhile

    def _show_uncertainty(self) -> None:
        doc = self.doc
        self.controls.set_uncertainty("" if doc is None else doc.uncertainty_text())
        if doc is not None and doc.refresh_caution():
            self.viewer.refresh()  # the picture drawn without its Caution blend gets it
            self.overview.histogram.schedule()
        self.viewer.refresh_layers()

    # -- saving -----------------------------------------------------------------------------
    def save(self) -> None:
        if not self._editable():
            return
        if self.export_path is None:
            self.export_dialog()
        else:
            self.export_to(*self.export_path)

    def _suggested_export(self) -> tuple[Path, str, int]:
        doc = self.doc
        assert doc is not None
        src = doc.photo.path or Path("photo.png")
        fmt = self.settings.output_format
        if fmt == "same":
            fmt = same_output_format(doc.photo.source_format)
        fmt = fmt if fmt in EXPORT_FORMATS else "png"
        depth = self.settings.bit_depth or doc.photo.bit_depth
        folder = Path(self.settings.output_dir) if self.settings.output_dir else src.parent
        return folder / f"{src.stem}_restored{EXPORT_FORMATS[fmt].extension}", fmt, depth

    def export_dialog(self) -> None:
        if not self._editable():
            return
        path, fmt, depth = self._suggested_export()
        dialog = ExportDialog(path, fmt, depth, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            path, fmt, depth = dialog.choice()
            if self.doc.photo.path is not None and path.resolve() == Path(self.doc.photo.path).resolve():
                self._show_error("Restora never overwrites the original; choose another file name.")
                return
            self.export_to(path, fmt, depth)

    def export_to(self, path: Path, fmt: str, bit_depth: int) -> int:
        """Write the full-resolution result (what the preview shows) in the background."""
        doc = self.doc
        if doc is None:
            return 0
        if self.jobs.is_busy():
            self._show_message("Restoring… export when it has finished (or press Esc to cancel it).")
            return 0
        path = Path(path)
        self.export_path = (path, fmt, bit_depth)
        self._show_message(f"Exporting {path.name}…")
        self._job_started = time.perf_counter()

        def job(progress):
            progress(0.1, "composing")
            revision = doc.revision
            photo = doc.restored_photo(progress.sub(0.1, 0.5))
            progress(0.5, "writing")
            return _save_photo(photo, path, fmt, bit_depth), doc.revision != revision

        def saved(result) -> None:
            out, knots_landed = result
            if knots_landed:  # the export ran the deferred knots: the preview composes from them too
                self._knots_landed(doc, True)
            self._job_ended(f"Saved {out}")

        return self.jobs.start(job, saved)

    # -- jobs -------------------------------------------------------------------------------
    def cancel_job(self) -> None:
        self.jobs.cancel()
        if self._opening is not None:  # the photo on screen is usable again at once
            name = self._opening.name
            self._opening_ended()
            self._show_message(f"Opening {name} cancelled.")

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.knots.cancel()  # the job needs the CPU, and may replace or release the stages
        else:  # after the finished job's own callback (which may install a new document)
            QTimer.singleShot(0, self._start_knots)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.elapsed_label.setVisible(busy)
        self.controls.set_busy(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat("%p%")
            self._last_progress = time.perf_counter()
            self._tick()
            self._elapsed_timer.start()
        else:
            self._elapsed_timer.stop()
            self.progress.setRange(0, 1000)

    def _on_progress(self, fraction: float, message: str) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1000)
        value = int(round(fraction * 1000))
        if value != self.progress.value():
            self._last_progress = time.perf_counter()
        self.progress.setValue(value)
        short = message.split(" (", 1)[0]  # "blur: Blind deblur (kernel …)" fits the bar as "blur: Blind deblur"
        self.progress.setFormat(f"{short} %p%" if message else "%p%")
        self.progress.setToolTip(message)
        self._progress_text = message

    #: Seconds without a progress report after which the bar shows it is still working.
    STALL_S = 2.0

    def _tick(self) -> None:
        """Elapsed time beside the bar, and a moving bar while an expert runs a long step that
        reports no progress (one big tile of a network)."""
        now = time.perf_counter()
        elapsed = now - self._job_started
        stalled = now - getattr(self, "_last_progress", now) >= self.STALL_S
        self.elapsed_label.setText(f"{elapsed:.0f} s" + (f" · working on {self._progress_text}" if stalled and
                                                         self._progress_text else ""))
        if stalled and self.progress.maximum() != 0:
            self.progress.setRange(0, 0)  # busy animation: the step gives no finer progress

    def _on_failed(self, message: str) -> None:
        self._opening_ended()
        self._pending = None
        self._running_signature = None
        if self.doc is not None:
            self.controls.set_rows(self.doc.rows())
            self.controls.set_caution(self.doc.state.caution)
        self._job_ended("")
        self._show_error(message)

    def _job_ended(self, message: str) -> None:
        if message:
            self._show_message(message)
        self._update_status()

    def _show_message(self, message: str) -> None:
        self.last_message = message
        self.statusBar().showMessage(message, 8000)

    def _show_error(self, message: str) -> None:
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, APP_TITLE, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not exec(): an error never blocks the event loop

    def _update_status(self) -> None:
        doc = self.doc
        if doc is None:
            for w in (self.size_label, self.depth_label, self.meta_label, self.time_label):
                w.setText("")
        else:
            p = doc.photo
            self.size_label.setText(f"{p.width} × {p.height} px ({p.megapixels:.1f} MP)")
            self.depth_label.setText(f"{p.bit_depth}-bit {p.source_format.upper()}")
            self.meta_label.setText(p.metadata.summary())
            self.time_label.setText("" if doc.last_run_seconds is None
                                    else f"restored in {doc.last_run_seconds:.1f} s")
        device = self._restorer.device.upper() if self._restorer is not None else self.settings.device
        wanted = self.settings.device
        if self._restorer is not None and wanted not in ("auto", self._restorer.device):
            device += f" ({wanted.upper()} not available)"
        self.device_label.setText(f"device: {device}")
        self.device_label.setToolTip(self.device_note)
        if self.device_note and not self._device_note_shown:
            self._device_note_shown = True
            self._show_message(self.device_note)
        self._update_zoom_label()

    def _update_zoom_label(self) -> None:
        if self.doc is None:
            self.zoom_label.setText("")
        else:
            self.zoom_label.setText(("fit " if self.viewer.is_fit() else "") + f"{self.viewer.zoom():.0%}")

    # -- view -------------------------------------------------------------------------------
    def set_view_mode(self, mode: str) -> None:
        self.viewer.set_mode(mode)
        self.settings.viewer_mode = self.viewer.mode().value
        self._sync_mode_actions()
        if self.doc is not None and self._editable() and self._running_signature is None:
            self._schedule_uncertainty()

    def _sync_mode_actions(self) -> None:
        key = f"mode_{self.viewer.mode().value}"
        if hasattr(self, "actions_by_name") and key in self.actions_by_name:
            self.actions_by_name[key].setChecked(True)

    def set_overlay(self, on: bool) -> None:
        self.viewer.set_overlay(on)
        self.settings.show_overlay = bool(on)

    # -- dialogs ----------------------------------------------------------------------------
    def settings_dialog(self) -> None:
        from .settings_dialog import SettingsDialog

        before = (self.settings.device, self.settings.tile)
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            app = QApplication.instance()
            if app is not None:
                apply_theme(app, self.settings.theme)
            if self.settings.device != before[0]:
                self._reset_restorer()
            if (self.settings.device, self.settings.tile) != before:
                self._show_message("Device and tile settings apply to the next photo you open.")
            self._update_status()

    def models_dialog(self) -> QDialog:
        from .models_dialog import ModelManagerDialog

        dialog = ModelManagerDialog(parent=self)
        dialog.modelsChanged.connect(self._reset_restorer)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _about(self) -> None:
        QMessageBox.about(self, "About Restora",
                          "<b>Restora</b><br>Detects what is wrong with a photo and restores it with classical "
                          "and neural experts, on your own GPU or CPU.<br><br>Hold <b>Space</b> to see the "
                          "original; drag the divider; wheel to zoom; Ctrl+0 fit, Ctrl+1 100 %.")

    # -- drag and drop ----------------------------------------------------------------------
    def paths_dropped(self, paths: list[Path]) -> None:
        self.handle_paths(paths)

    def handle_paths(self, paths: list[Path]) -> None:
        """One photo opens in the viewer; folders and several files go to the batch queue and
        the filmstrip (and the first opens in the viewer when none is open)."""
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and paths[0].is_file():
            self.open_file(paths[0])
            return
        first = len(self.batch.model.entries)
        added = self.batch.add_paths(paths)
        self.batch_dock.show()
        self.batch_dock.raise_()
        if added:
            self.filmstrip_dock.show()
        self._show_message(f"Added {added} photo(s) to the queue." +
                           (" " + "; ".join(self.batch.problems[:2]) if self.batch.problems else ""))
        if added and self.doc is None and self._opening is None:
            self.open_file(self.batch.model.entries[first].item.path)

    # -- shutdown ---------------------------------------------------------------------------
    def _ask_close(self, what: str) -> bool:
        answer = QMessageBox.question(self, "Quit Restora?", f"{what} is still running. Stop it and quit?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:  # noqa: N802
        running = [w for w, busy in (("A restoration", self.jobs.is_busy()),
                                     ("The batch queue", self.batch.runner.is_running())) if busy]
        if running and not self.confirm_close(" and ".join(running)):
            event.ignore()
            return
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.viewer_mode = self.viewer.mode().value
        self.settings.sync()
        self.jobs.cancel()
        self.maps.cancel()
        self.knots.cancel()
        self.batch.runner.cancel()
        self.jobs.wait(10000)
        self.maps.wait(10000)
        self.knots.wait(10000)
        self.batch.runner.wait(10000)
        if self.doc is not None:
            self.doc.close()  # the stage changes' temporary files
        super().closeEvent(event)
