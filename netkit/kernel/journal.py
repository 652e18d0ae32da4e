"""The undo journal of one action: inverse steps, run newest-first on failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

if TYPE_CHECKING:
    import logging


class _Log:
    """The "netkit" logger, loaded on first use: most commands never log, and
    importing `logging` costs each one ~2 ms."""

    def __getattr__(self, name: str) -> Any:
        import logging
        return getattr(logging.getLogger("netkit"), name)


log = cast("logging.Logger", _Log())


class UndoJournal:
    """Inverse steps of one action, run newest-first when the action fails, and the
    removals it asked for, run in order once it committed.

    Kernel helpers push their own undo right after each change succeeds, so
    a driver cannot forget one. Undo failures never replace the original
    error: they are logged and attached to it as notes. What cannot be
    undone (deleting a link, a namespace, a container's files) is `defer`red
    to the commit: a failed action never did it.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._deferred: list[tuple[str, Callable[[], object]]] = []

    def __len__(self) -> int:
        return len(self._undo)

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._undo.append((what, undo))

    def defer(self, what: str, do: Callable[[], object]) -> None:
        """Do `do` when the action commits (never, if it fails)."""
        self._deferred.append((what, do))

    def commit(self) -> list[Exception]:
        """The action committed: forget the undo steps, do the deferred removals (in the
        order asked). A removal that fails is logged and returned, never raised: the
        action is done (`system prune` removes what is left)."""
        self._undo.clear()
        failed: list[Exception] = []
        while self._deferred:
            what, do = self._deferred.pop(0)
            try:
                do()
            except Exception as exc:  # keep going: the store already says it is gone
                exc.add_note(f"while committing: {what}")
                log.warning("%s failed after the commit: %s", what, exc)
                failed.append(exc)
        return failed

    def discard(self) -> None:
        """Forget the undo steps and the deferred removals."""
        self._undo.clear()
        self._deferred.clear()

    def rollback(self) -> list[Exception]:
        self._deferred.clear()
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
