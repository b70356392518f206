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


class _Text:
    """A string setting stored under ``key`` ("" when unset)."""

    def __init__(self, key: str, doc: str = "") -> None:
        self.key, self.__doc__ = key, doc or None

    def __get__(self, obj: "AppSettings", owner=None):
        return self if obj is None else str(obj._s.value(self.key, ""))

    def __set__(self, obj: "AppSettings", value: str) -> None:
        obj._s.setValue(self.key, str(value))


class _Flag:
    """A yes/no setting stored under ``key`` (``False`` when unset)."""

    def __init__(self, key: str, doc: str = "") -> None:
        self.key, self.__doc__ = key, doc or None

    def __get__(self, obj: "AppSettings", owner=None):
        return self if obj is None else _as_bool(obj._s.value(self.key, False))

    def __set__(self, obj: "AppSettings", value: bool) -> None:
        obj._s.setValue(self.key, bool(value))


class _Choice:
    """One of ``choices`` stored under ``key``; an unknown stored value reads as ``default``.
    Setting an unknown value raises :class:`ValueError` (``strict``), else stores ``default``
    (``strict=None``: stores it as given)."""

    def __init__(self, key: str, choices: tuple[str, ...], default: str, doc: str = "",
                 strict: Optional[bool] = True) -> None:
        self.key, self.choices, self.default, self.strict, self.__doc__ = key, choices, default, strict, doc or None

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj: "AppSettings", owner=None):
        if obj is None:
            return self
        value = str(obj._s.value(self.key, self.default))
        return value if value in self.choices else self.default

    def __set__(self, obj: "AppSettings", value: str) -> None:
        if value not in self.choices and self.strict is not None:
            if self.strict:
                raise ValueError(f"unknown {self.name.replace('_', ' ')} {value!r}")
            value = self.default
        obj._s.setValue(self.key, value)


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
    device = _Choice("engine/device", DEVICES, "auto", "``auto | cpu | cuda | mps``.")

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
    output_format = _Choice("output/format", FORMATS, "same", "``same`` or an offered output format.")

    @property
    def bit_depth(self) -> Optional[int]:
        """8, 16 or ``None`` (same as the input)."""
        value = self._choice("output/bit_depth", BIT_DEPTHS, "same")
        return None if value == "same" else int(value)

    @bit_depth.setter
    def bit_depth(self, value: Optional[int]) -> None:
        self._s.setValue("output/bit_depth", "same" if value is None else str(int(value)))

    output_dir = _Text("output/folder")
    overwrite = _Flag("output/overwrite")
    skip_existing = _Flag("output/skip_existing",
                          "Batch: leave outputs that already exist and report them as skipped (resume a batch).")

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

    batch_plan = _Choice("batch/plan", BATCH_PLANS, "auto",
                         "``auto`` (each photo its own analysis) or ``current`` (the open photo's settings).",
                         strict=False)

    # -- appearance -------------------------------------------------------------------------
    theme = _Choice("ui/theme", THEMES, "system")
    viewer_mode = _Choice("ui/viewer_mode", ("split", "side", "toggle", "uncertainty"), "split", strict=None)
    show_overlay = _Flag("ui/overlay")

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
    last_dir = _Text("files/last_dir")

    def recent_files(self) -> list[str]:
        return _as_list(self._s.value("files/recent", []))[:MAX_RECENT]

    def add_recent_file(self, path: str) -> list[str]:
        files = [path] + [f for f in self.recent_files() if f != path]
        files = files[:MAX_RECENT]
        self._s.setValue("files/recent", files)
        return files

    def clear_recent_files(self) -> None:
        self._s.setValue("files/recent", [])
