"""`netkit start | stop | restart | kill | wait | logs | rename`: docker's container lifecycle.

Each command makes one Engine call per container and prints what docker
prints: the refs as given (start, stop, restart, kill), exit codes (wait),
log lines on the stream they came from (logs), nothing (rename). Commands
taking several containers keep going past failures and exit 1 at the end;
`start` exits 125, as docker run does (see `runtime_command`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

import click

from netkit.cli import attempt, each, engine, names, runtime_command

if TYPE_CHECKING:
    from netkit.agent.logs import LogEntry

_TIMEOUT_HELP = "Seconds to wait for the container to stop before killing it."


@runtime_command
@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and exit with the container's code.")
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...",
                shell_complete=names("stopped"))
def start(attach: bool, refs: tuple[str, ...]) -> None:
    """Start one or more stopped containers; prints each one started."""
    from netkit.errors import InvalidArgument, NetkitError
    eng = engine()
    if attach:
        if len(refs) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        _, code = eng.start(refs[0], attach=True)
        if code:
            click.get_current_context().exit(code)
        return
    failed = attempt(refs, eng.start)
    if failed:
        raise NetkitError(f"failed to start containers: {', '.join(failed)}")


@click.command()
@click.option("-t", "--time", "--timeout", "timeout", type=int, metavar="SECONDS", help=_TIMEOUT_HELP)
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...",
                shell_complete=names("running"))
def stop(timeout: int | None, refs: tuple[str, ...]) -> None:
    """Stop running containers (the stop signal, then SIGKILL after the timeout)."""
    eng = engine()
    each(refs, lambda ref: eng.stop(ref, timeout=timeout))


@click.command()
@click.option("-t", "--time", "--timeout", "timeout", type=int, metavar="SECONDS", help=_TIMEOUT_HELP)
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...",
                shell_complete=names("container"))
def restart(timeout: int | None, refs: tuple[str, ...]) -> None:
    """Restart containers (stop, then start)."""
    eng = engine()
    each(refs, lambda ref: eng.restart(ref, timeout=timeout))


@click.command()
@click.option("-s", "--signal", "signal_", default="KILL", metavar="SIGNAL",
              help="Signal to send (name or number, default KILL).")
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...",
                shell_complete=names("running"))
def kill(signal_: str, refs: tuple[str, ...]) -> None:
    """Send a signal to the main process of running containers."""
    eng = engine()
    each(refs, lambda ref: eng.kill(ref, signal=signal_))


@click.command()
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...",
                shell_complete=names("running"))
def wait(refs: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    eng = engine()
    each(refs, eng.wait, show=lambda ref, code: code)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output until the container stops.")
@click.option("-n", "--tail", default="all", metavar="N", help="Number of lines to show from the end (default all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container", shell_complete=names("container"))
def logs(follow: bool, tail: str, timestamps: bool, container: str) -> None:
    """Fetch a container's logs (its stdout to stdout, its stderr to stderr)."""
    eng = engine()
    lines = tail_lines(tail)
    entries: Iterable[LogEntry] = (eng.follow_logs(container, tail=lines) if follow
                                   else eng.logs(container, tail=lines))
    for entry in entries:
        text = f"{nano_time(entry.time)} {entry.text}" if timestamps else entry.text
        click.echo(text, nl=False, err=entry.stream == "stderr")


@click.command()
@click.argument("container", shell_complete=names("container"))
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container."""
    from netkit.errors import NetkitError
    try:
        engine().rename(container, new_name)
    except NetkitError as exc:
        raise type(exc)(f"failed to rename container: {exc}") from exc


def tail_lines(value: str) -> int | None:
    """``--tail`` as docker reads it: a count, or None (all) for 'all', a negative number
    or anything that is not a number."""
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def nano_time(text: str) -> str:
    """An RFC 3339 time with its fraction padded to nine digits, as ``docker logs -t`` prints
    it (Go's RFC3339NanoFixed): ``2026-12-04T17:00:00.123456Z`` -> ``...00.123456000Z``."""
    m = _RFC3339.match(text)
    if m is None:
        return text
    return f"{m[1]}.{(m[2] or '')[:9].ljust(9, '0')}{m[3]}"
