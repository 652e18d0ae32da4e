"""One action = one store transaction + one kernel undo journal (ARCHITECTURE.md §4).

`Actions` owns the transaction every Engine verb runs in: BEGIN IMMEDIATE
on the node's store and a `KernelSession` with an `UndoJournal`. On any
exception the journal is replayed newest-first and the store rolled back,
so a failed action leaves nothing behind; removals (links, namespaces, a
container's files) cannot be undone, so they wait for the commit. Parts of the engine that must
take part in every action declare `Hooks` (begin / commit / abort / after)
and register them; the runner knows none of them (the cluster scope,
netkit/cluster.py, is the one today).

`KernelSessions` makes the kernel sessions of one node: it keeps the
node namespace's netlink handles across actions and the test fault plan.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from netkit.drivers.base import DriverContext
from netkit.errors import InternalError, NetkitError
from netkit.kernel.journal import UndoJournal
from netkit.kernel.session import FaultPlan, KernelSession
from netkit.model import Node
from netkit.store import Store, Tx


class KernelSessions:
    """Kernel sessions of one node (`netns` None: the real machine's root netns)."""

    def __init__(self, netns: str | None, faults: FaultPlan | None = None) -> None:
        self.netns = netns
        self.faults = faults                      # test hook: fail the Nth kernel call
        self.cache: dict[str | None, Any] = {}    # the node netns' handles, kept across actions

    def for_action(self, journal: UndoJournal) -> KernelSession:
        """A session whose changes are journaled and counted by the fault plan."""
        if self.faults is not None:
            self.faults.calls = 0
        return KernelSession(self.netns, journal, cache=self.cache, faults=self.faults,
                             defer_removals=True)

    def for_queries(self) -> KernelSession:
        """A session for reading the kernel (nothing journaled, nothing counted)."""
        return KernelSession(self.netns, cache=self.cache)

    def close(self) -> None:
        for handle in self.cache.values():
            handle.close()
        self.cache.clear()


@dataclass(frozen=True, slots=True)
class Hooks:
    """What one part of the engine does at each point of every action (each optional)."""

    begin: Callable[[Tx], None] | None = None   # the store transaction is open, nothing done yet
    commit: Callable[[], None] | None = None    # the action's work is done; the store commits next
    abort: Callable[[], None] | None = None     # the action failed; before the journal is replayed
    after: Callable[[], None] | None = None     # committed; journal dropped, kernel session closed


class Actions:
    """The transaction runner of one node: `with actions() as (tx, ctx): ...`."""

    def __init__(self, store: Store, node: Node, kernel: KernelSessions) -> None:
        self.store = store
        self.node = node
        self.kernel = kernel
        self.hooks: list[Hooks] = []

    def register(self, hooks: Hooks) -> None:
        """Run `hooks` in every action from now on (in the order registered)."""
        self.hooks.append(hooks)

    def _run(self, point: str, *args: Any) -> None:
        for hooks in self.hooks:
            fn = getattr(hooks, point)
            if fn is not None:
                fn(*args)

    @contextmanager
    def __call__(self) -> Iterator[tuple[Tx, DriverContext]]:
        journal = UndoJournal()
        kernel = self.kernel.for_action(journal)
        try:
            with self.store.transaction() as tx:
                self._run("begin", tx)
                yield tx, DriverContext(self.node, kernel)
                self._run("commit")
        except BaseException as exc:
            self._run("abort")
            for failure in journal.rollback():
                exc.add_note(f"rollback: {failure}")
            kernel.close()
            if isinstance(exc, (NetkitError, KeyboardInterrupt, SystemExit)):
                raise
            raise InternalError(f"{type(exc).__name__}: {exc}") from exc
        journal.commit()              # the removals it asked for (deleted links, namespaces)
        kernel.close()
        self._run("after")
