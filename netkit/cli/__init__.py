"""netkit's command line: flags in, one Engine call, text out (STYLE.md "Thin CLI").

The commands live in `network`, `container`, `lifecycle`, `system`, `node`
and the other modules of this package; the root group in `main`; pure
rendering in `render`; flag parsing in `parse`. The Engine is imported
inside the commands (`engine()` below), so `netkit --help` loads click and
nothing of the kernel layer.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable, Iterable

import click

if TYPE_CHECKING:
    from netkit.engine import Engine

_ENGINE_KEY = "netkit.engine"


def engine(host: bool = False) -> "Engine":
    """The Engine for this invocation, opened on first use and closed when the command ends.

    `--node` (or NETKIT_NODE) picks the simulated host; `host=True` (node and
    LAN management, which lives on the real host) ignores it. Looked up as
    ``netkit.engine.Engine`` at call time so tests can swap it.
    """
    ctx = click.get_current_context()
    root = ctx.find_root()
    key = _ENGINE_KEY + (":host" if host else "")
    eng = root.meta.get(key)
    if eng is None:
        from netkit.engine import Engine
        eng = Engine.from_env(host=True) if host else Engine.from_env(root.params.get("node"))
        root.meta[key] = eng
        root.call_on_close(eng.close)
    return eng


def debug() -> bool:
    """NETKIT_DEBUG=1: let errors through with their traceback."""
    return os.environ.get("NETKIT_DEBUG", "") not in ("", "0")


class AliasGroup(click.Group):
    """A group with docker's hidden aliases (``list`` -> ``ls``, ``remove`` -> ``rm``)."""

    aliases: dict[str, str] = {"list": "ls", "remove": "rm"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else name), cmd, rest


def names(kind: str) -> Callable[[click.Context, click.Parameter, str], list]:
    """A `shell_complete` callback offering the names of `kind` ("container", "running",
    "stopped", "network", "node", "lan"; "target": capture's TARGET) from the store of
    the --node in effect (netkit.cli.completion, imported only when completing)."""
    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from netkit.cli.completion import complete
        return complete(kind, ctx, incomplete)
    return callback


def confirm(warning: str) -> bool:
    """docker's prompt: ``<warning>\\nAre you sure you want to continue? [y/N] ``; EOF is no."""
    click.echo(f"{warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        click.echo()
    return answer.strip().lower() in ("y", "yes")


RUNTIME_FAILURE = 125


def runtime_command(cmd: click.Command) -> click.Command:
    """Mark `run`, `create`, `start` and `exec`: netkit's own failures exit 125.

    As `docker run` does, so that the container command's own exit codes (1,
    2, 126, 127 ...) stay distinguishable from an error of netkit itself
    (a bad flag, a usage error, a NetkitError). The root group reads the mark.
    """
    cmd.failure_exit_code = RUNTIME_FAILURE           # type: ignore[attr-defined]
    return cmd


def attempt(refs: Iterable[str], action: Callable[[str], object], *,
            show: Callable[[str, object], object] | None = None,
            ignore_missing: bool = False) -> list[str]:
    """Run `action` on every ref, printing each ref done and ``Error: ...`` per failure.

    `show(ref, result)` chooses what to print for a success (default: the ref;
    None prints nothing). Returns the refs that failed.
    """
    from netkit.errors import NetkitError, NotFound
    failed: list[str] = []
    for ref in refs:
        try:
            result = action(ref)
        except NetkitError as exc:
            if debug():
                raise
            if ignore_missing and isinstance(exc, NotFound):
                continue
            failed.append(ref)
            click.echo(f"Error: {exc}", err=True)
        else:
            line = ref if show is None else show(ref, result)
            if line is not None:
                click.echo(line)
    return failed


def each(refs: Iterable[str], action: Callable[[str], object], *,
         show: Callable[[str, object], object] | None = None,
         ignore_missing: bool = False) -> None:
    """docker's loop for `rm NAME...` (and `stop`, `kill`, `wait` ...): keep going past
    failures, exit 1 at the end. See :func:`attempt`."""
    if attempt(refs, action, show=show, ignore_missing=ignore_missing):
        click.get_current_context().exit(1)


def show_found(fmt: str | None, refs: tuple[str, ...], find: Callable[[str], dict]) -> None:
    """docker's inspect loop (cli/command/inspect): print what was found (a JSON array,
    maybe ``[]``, or one template output per object, an empty line if none), then an
    ``Error: ...`` per missing ref or failed template; exit 1 if any. A template that
    does not parse exits 64 before anything is looked up, as Docker's."""
    from netkit.cli.render import Template, TemplateError, to_json
    from netkit.errors import NetkitError
    try:
        tmpl = Template(fmt) if fmt else None
    except TemplateError as exc:
        click.echo(f"Error: {exc}", err=True)
        click.get_current_context().exit(64)
    found, errors = [], []
    for ref in refs:
        try:
            item = find(ref)
            found.append(item if tmpl is None else tmpl.render(item))
        except NetkitError as exc:
            errors.append(str(exc))
    if tmpl is None:
        click.echo(to_json(found))
    else:
        click.echo("\n".join(found))
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if errors:
        click.get_current_context().exit(1)
