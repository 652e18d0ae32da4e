"""Stopping, starting and restarting a lab's containers, as Compose does.

`down`, `stop`, `restart`, scaling down and recreating stop each container
with its own stop signal and grace period (`stop_signal`,
`stop_grace_period`, kept on the container so `lab down -p NAME` needs no
file; `timeout`, Compose's `-t`, overrides the period for all), then
SIGKILL, through the node agent (`Engine.stop`).

Order, as Compose's: a service's containers stop after those of every
service that depends on it, and start after those it depends on; all the
containers of one step are stopped (or restarted) at the same time, so a
step lasts at most its longest grace period. Containers whose service is
not in the file (orphans, or no file) stop in the first step, those sharing
another container's namespace before the others.

A container's command is pid 1 of its PID namespace, so a signal it does
not handle is ignored (as in Docker): `sleep infinity` ends only when the
grace period does. Give such services `stop_signal: SIGKILL` or a command
that handles SIGTERM.

Each concurrent stop runs on an Engine of its own (an Engine and its store
connection belong to one thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from netkit.errors import NetkitError, NotFound
from netkit.labs.project import order
from netkit.model import State

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.labs.model import Service
    from netkit.labs.runner import Lab, Member

LIVE = (State.RUNNING, State.RESTARTING)
WORKERS = 16                       # containers stopped at the same time, at most


def live(m: "Member") -> bool:
    """Running, or waiting to be restarted by its policy."""
    return m.container.state in LIVE


def has_process(m: "Member") -> bool:
    """Its command runs, or its restart policy will run it again (not a bare sandbox)."""
    c = m.container
    return c.state is State.RESTARTING or (c.state is State.RUNNING and bool(c.pid))


def steps(members: Sequence["Member"], services: Mapping[str, "Service"] | None, *,
          stopping: bool) -> list[list["Member"]]:
    """`members` in groups to act on one after the other (see the module docstring)."""
    level: dict[str, int] = {}
    if services:
        names = order(services)
        if stopping:
            dependents: dict[str, list[str]] = {n: [] for n in names}
            for n in names:
                for d in services[n].depends_on:
                    if d.service in dependents:
                        dependents[d.service].append(n)
            for n in reversed(names):
                level[n] = 1 + max((level[x] for x in dependents[n]), default=-1)
        else:
            for n in names:
                level[n] = 1 + max((level[d.service] for d in services[n].depends_on
                                    if d.service in level), default=-1)

    def rank(m: "Member") -> int:
        if m.service in level:
            return level[m.service]
        sharer = m.container.shares_netns_of is not None
        return int(sharer) if not stopping else int(not sharer)

    groups: dict[int, list["Member"]] = {}
    for m in members:
        groups.setdefault(rank(m), []).append(m)
    return [sorted(groups[k], key=lambda m: (m.service, m.number)) for k in sorted(groups)]


def with_restart_dependents(services: Mapping[str, "Service"], names: Sequence[str]) -> list[str]:
    """`names` and, transitively, the services whose `depends_on` entry for one of them has
    `restart: true` (Compose's restart), in the file's order."""
    chosen = set(names)
    grew = True
    while grew:
        grew = False
        for s in services.values():
            if s.name not in chosen and any(d.restart and d.service in chosen for d in s.depends_on):
                chosen.add(s.name)
                grew = True
    return [n for n in services if n in chosen] + [n for n in names if n not in services]


def each(lab: "Lab", members: Sequence["Member"], fn: Callable[["Engine", "Member"], Any]
         ) -> Iterator[tuple["Member", NetkitError | None]]:
    """fn(engine, member) for all members at once; (member, error or None) as each ends."""
    if len(members) == 1:
        m = members[0]
        try:
            fn(lab.engine(m.node), m)
        except NetkitError as exc:
            yield m, exc
        else:
            yield m, None
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from netkit.engine import Engine

    def task(m: "Member") -> None:
        eng = Engine(m.node, root=lab.target.root, run=lab.target.run_root)
        try:
            fn(eng, m)
        finally:
            eng.close()

    pool = ThreadPoolExecutor(max_workers=min(WORKERS, len(members) or 1))
    try:
        futures = {pool.submit(task, m): m for m in members}
        for fut in as_completed(futures):
            exc = fut.exception()
            if exc is not None and not isinstance(exc, NetkitError):
                raise exc
            yield futures[fut], exc                   # type: ignore[misc]
    except BaseException:                             # Ctrl-C: do not wait out the grace periods
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _raise_first(errors: list[NetkitError]) -> None:
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(str(other))
        raise first


def _services(lab: "Lab") -> Mapping[str, "Service"] | None:
    return lab.project.services if lab.project is not None else None


def stop_step(lab: "Lab", step: Sequence["Member"], timeout: int | None) -> None:
    """Stop the live containers of one step at the same time (gone ones count as stopped)."""
    running = [m for m in step if live(m)]
    for m in running:
        lab._emit("Container", m.name, "Stopping", done=False)
    errors = []
    for m, exc in each(lab, running, lambda eng, m: eng.stop(m.container.id, timeout)):
        if exc is None or isinstance(exc, NotFound):
            lab._emit("Container", m.name, "Stopped")
        else:
            errors.append(exc)
    _raise_first(errors)


def stop(lab: "Lab", members: Sequence["Member"], timeout: int | None = None) -> None:
    """`compose stop`: dependents first, each step at once."""
    for step in steps([m for m in members if live(m)], _services(lab), stopping=True):
        stop_step(lab, step, timeout)


def remove(lab: "Lab", members: Sequence["Member"], timeout: int | None = None, why: str = "") -> None:
    """Stop (with the grace periods), then remove: `down`, scaling down."""
    for step in steps(members, _services(lab), stopping=True):
        stop_step(lab, step, timeout)
        for m in step:
            lab._remove(lab.engine(m.node), m.container, why)


def start(lab: "Lab", members: Sequence["Member"]) -> None:
    """`compose start`: stopped containers, dependencies first, waiting for their
    `depends_on` conditions as `up` does."""
    services = _services(lab)
    for step in steps([m for m in members if not live(m)], services, stopping=False):
        waited: set[str] = set()
        for m in step:
            if services and m.service in services and m.service not in waited:
                waited.add(m.service)
                lab._wait_for_dependencies(services[m.service])
            lab._emit("Container", m.name, "Starting", done=False)
            lab.engine(m.node).start(m.container.id)
            lab._emit("Container", m.name, "Started")


def restart(lab: "Lab", members: Sequence["Member"], timeout: int | None = None) -> None:
    """`compose restart`: dependencies first, each step at once (stopped ones just start)."""
    for step in steps(members, _services(lab), stopping=False):
        for m in step:
            lab._emit("Container", m.name, "Restarting", done=False)
        errors = []
        for m, exc in each(lab, step, lambda eng, m: eng.restart(m.container.id, timeout)):
            if exc is None:
                lab._emit("Container", m.name, "Started")
            else:
                errors.append(exc)
        _raise_first(errors)
