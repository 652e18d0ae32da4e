"""The undo journal of one action: inverse steps, run newest-first on failure."""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger("netkit")


class UndoJournal:
    """Inverse steps of one action, run newest-first when the action fails.

    Kernel helpers push their own undo right after each change succeeds, so
    a driver cannot forget one. Undo failures never replace the original
    error: they are logged and attached to it as notes.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []

    def __len__(self) -> int:
        return len(self._undo)

    def push(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def discard(self) -> None:
        """The action committed: forget the undo steps."""
        self._undo.clear()

    def rollback(self) -> list[Exception]:
        failed: list[Exception] = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep going: leave as little behind as possible
                exc.add_note(f"while undoing: {what}")
                log.warning("undo failed: %s: %s", what, exc)
                failed.append(exc)
        return failed
