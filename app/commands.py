"""Undoable control changes: every command swaps one immutable ControlState for another."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtGui import QUndoCommand

from .document import ControlState

#: Command id for strength changes (Qt merges consecutive commands with the same id).
STRENGTH_COMMAND_ID = 1001


class ControlChange(QUndoCommand):
    """Go from ``old`` to ``new`` by calling ``apply(state)``. Consecutive slider moves of the same
    stage (``merge_key``) merge into one undo step."""

    def __init__(self, apply: Callable[[ControlState], None], old: ControlState, new: ControlState,
                 text: str, merge_key: Optional[str] = None) -> None:
        super().__init__(text)
        self._apply, self.old, self.new, self.merge_key = apply, old, new, merge_key

    def id(self) -> int:
        return STRENGTH_COMMAND_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt name)
        if not isinstance(other, ControlChange) or other.merge_key != self.merge_key or self.merge_key is None:
            return False
        self.new = other.new
        self.setText(other.text())
        return True

    def redo(self) -> None:
        self._apply(self.new)

    def undo(self) -> None:
        self._apply(self.old)
