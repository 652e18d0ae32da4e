"""netkit's command line: flags in, one Engine call, text out (STYLE.md "Thin CLI").

The commands live in `network`, `container`, `system` and `node`; the root
group in `main`; pure rendering in `render`; flag parsing in `parse`. The
Engine is imported inside the commands (`engine()` below), so
`netkit --help` loads click and nothing of the kernel layer.
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


def confirm(warning: str) -> bool:
    """docker's prompt: ``<warning>\\nAre you sure you want to continue? [y/N] ``; EOF is no."""
    click.echo(f"{warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        click.echo()
    return answer.strip().lower() in ("y", "yes")


def each(refs: Iterable[str], action: Callable[[str], object], *,
         ignore_missing: bool = False) -> None:
    """Run `action` on every ref, printing each ref done and ``Error: ...`` per failure.

    docker's loop for `rm NAME...`: keep going past failures, exit 1 at the end.
    """
    from netkit.errors import NetkitError, NotFound
    failed = False
    for ref in refs:
        try:
            action(ref)
        except NetkitError as exc:
            if debug():
                raise
            if ignore_missing and isinstance(exc, NotFound):
                continue
            failed = True
            click.echo(f"Error: {exc}", err=True)
        else:
            click.echo(ref)
    if failed:
        click.get_current_context().exit(1)
