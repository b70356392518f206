"""The user's choices, persisted with QSettings (organisation "Restora", application "Restora").

Typed accessors hide QSettings' string round-trips (the INI format returns every value as a
string). Tests point QSettings at a temporary folder with ``QSettings.setPath``.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QByteArray, QSettings

from engine.imageio.formats import OFFERED_FORMATS

DEVICES = ("auto", "cpu", "cuda", "mps")
THEMES = ("system", "dark", "light")
#: Output formats offered for export and batch ("same" keeps the input's format).
FORMATS = ("same",) + OFFERED_FORMATS
BIT_DEPTHS = ("same", "8", "16")
BATCH_PLANS = ("auto", "current")
MAX_RECENT = 10


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class AppSettings:
    """Typed view of the application's QSettings."""

    def __init__(self, qsettings: Optional[QSettings] = None) -> None:
        self._s = qsettings if qsettings is not None else QSettings()

    def sync(self) -> None:
        self._s.sync()

    def _choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = str(self._s.value(key, default))
        return value if value in choices else default

    # -- engine -----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """``auto | cpu | cuda | mps``."""
        return self._choice("engine/device", DEVICES, "auto")

    @device.setter
    def device(self, value: str) -> None:
        if value not in DEVICES:
            raise ValueError(f"unknown device {value!r}")
        self._s.setValue("engine/device", value)

    @property
    def tile(self) -> Optional[int]:
        """Tile edge in pixels, or ``None`` for automatic."""
        try:
            value = int(self._s.value("engine/tile", 0))
        except (TypeError, ValueError):
            return None
        return value if value > 0 else None

    @tile.setter
    def tile(self, value: Optional[int]) -> None:
        self._s.setValue("engine/tile", int(value or 0))

    # -- output -----------------------------------------------------------------------------
    @property
    def output_format(self) -> str:
        return self._choice("output/format", FORMATS, "same")

    @output_format.setter
    def output_format(self, value: str) -> None:
        if value not in FORMATS:
            raise ValueError(f"unknown format {value!r}")
        self._s.setValue("output/format", value)

    @property
    def bit_depth(self) -> Optional[int]:
        """8, 16 or ``None`` (same as the input)."""
        value = self._choice("output/bit_depth", BIT_DEPTHS, "same")
        return None if value == "same" else int(value)

    @bit_depth.setter
    def bit_depth(self, value: Optional[int]) -> None:
        self._s.setValue("output/bit_depth", "same" if value is None else str(int(value)))

    @property
    def output_dir(self) -> str:
        return str(self._s.value("output/folder", ""))

    @output_dir.setter
    def output_dir(self, value: str) -> None:
        self._s.setValue("output/folder", str(value))

    @property
    def overwrite(self) -> bool:
        return _as_bool(self._s.value("output/overwrite", False))

    @overwrite.setter
    def overwrite(self, value: bool) -> None:
        self._s.setValue("output/overwrite", bool(value))

    @property
    def skip_existing(self) -> bool:
        """Batch: leave outputs that already exist and report them as skipped (resume a batch)."""
        return _as_bool(self._s.value("output/skip_existing", False))

    @skip_existing.setter
    def skip_existing(self, value: bool) -> None:
        self._s.setValue("output/skip_existing", bool(value))

    @property
    def jpeg_quality(self) -> int:
        """JPEG/WebP quality of batch outputs, 1..100."""
        try:
            value = int(self._s.value("output/jpeg_quality", 95))
        except (TypeError, ValueError):
            return 95
        return min(max(value, 1), 100)

    @jpeg_quality.setter
    def jpeg_quality(self, value: int) -> None:
        self._s.setValue("output/jpeg_quality", min(max(int(value), 1), 100))

    @property
    def batch_plan(self) -> str:
        """``auto`` (each photo its own analysis) or ``current`` (the open photo's settings)."""
        return self._choice("batch/plan", BATCH_PLANS, "auto")

    @batch_plan.setter
    def batch_plan(self, value: str) -> None:
        self._s.setValue("batch/plan", value if value in BATCH_PLANS else "auto")

    # -- appearance -------------------------------------------------------------------------
    @property
    def theme(self) -> str:
        return self._choice("ui/theme", THEMES, "system")

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r}")
        self._s.setValue("ui/theme", value)

    @property
    def viewer_mode(self) -> str:
        return self._choice("ui/viewer_mode", ("split", "side", "toggle", "uncertainty"), "split")

    @viewer_mode.setter
    def viewer_mode(self, value: str) -> None:
        self._s.setValue("ui/viewer_mode", value)

    @property
    def show_overlay(self) -> bool:
        return _as_bool(self._s.value("ui/overlay", False))

    @show_overlay.setter
    def show_overlay(self, value: bool) -> None:
        self._s.setValue("ui/overlay", bool(value))

    def geometry(self) -> Optional[QByteArray]:
        value = self._s.value("ui/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> Optional[QByteArray]:
        value = self._s.value("ui/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("ui/geometry", geometry)
        self._s.setValue("ui/state", state)

    # -- files ------------------------------------------------------------------------------
    @property
    def last_dir(self) -> str:
        return str(self._s.value("files/last_dir", ""))

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self._s.setValue("files/last_dir", str(value))

    def recent_files(self) -> list[str]:
        return _as_list(self._s.value("files/recent", []))[:MAX_RECENT]

    def add_recent_file(self, path: str) -> list[str]:
        files = [path] + [f for f in self.recent_files() if f != path]
        files = files[:MAX_RECENT]
        self._s.setValue("files/recent", files)
        return files

    def clear_recent_files(self) -> None:
        self._s.setValue("files/recent", [])
