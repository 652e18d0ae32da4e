"""The root `netkit` command (console entry point ``netkit.cli.main:main``)."""

from __future__ import annotations

import importlib

import click

from netkit import __version__
from netkit.cli import debug, names
from netkit.errors import NetkitError

# Each command and where it lives (module of netkit.cli, attribute): a command's module is
# imported when that command runs (`--help` lists them all), so that `netkit run` does not
# load `capture`, `lab`, `swarm` and the others (~3 ms of every command's start-up).
COMMANDS = {
    "network": ("network", "network"),
    "run": ("container", "run"), "create": ("container", "create"), "exec": ("container", "exec_"),
    "ps": ("container", "ps"), "rm": ("container", "rm"), "inspect": ("container", "inspect"),
    "port": ("container", "port"),
    "start": ("lifecycle", "start"), "stop": ("lifecycle", "stop"),
    "restart": ("lifecycle", "restart"), "kill": ("lifecycle", "kill"),
    "wait": ("lifecycle", "wait"), "logs": ("lifecycle", "logs"), "rename": ("lifecycle", "rename"),
    "system": ("system", "system"), "dns": ("dns", "dns"), "node": ("node", "node"),
    "lan": ("node", "lan"), "capture": ("capture", "capture"), "lab": ("lab", "lab"),
    "swarm": ("swarm", "swarm"), "service": ("service", "service"), "info": ("system", "info"), "version": ("version", "version"),
    "completion": ("completion", "completion"), "events": ("events", "events"),
    "stack": ("stack", "stack"),
    "secret": ("secret", "secret"), "config": ("secret", "config"),
}


class NetkitGroup(click.Group):
    """Turns library errors into one ``Error: ...`` line on stderr, never a traceback.

    The exit code is the error's own (1), or 125 for `run`, `create`, `start`
    and `exec`, where usage errors exit 125 too (see `runtime_command`); a
    command that cannot be run exits 126 or 127, as with Docker.
    NETKIT_DEBUG=1 lets errors through with their traceback. Ctrl-C exits 130
    quietly, as a shell does.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = self._failure_exit_code(ctx) or exc.exit_code
            raise
        except NetkitError as exc:
            if debug():
                raise
            err = click.ClickException(str(exc))
            # the command could not be run (126, 127): its code, as Docker's; else 125 / 1
            err.exit_code = exc.exit_code if exc.exit_code in (126, 127) else \
                self._failure_exit_code(ctx) or exc.exit_code
            raise err from exc
        except PermissionError as exc:       # not root: say so instead of a traceback
            if debug():
                raise
            where = f": {exc.filename}" if exc.filename else ""
            err = click.ClickException(f"permission denied{where} (netkit needs root)")
            err.exit_code = self._failure_exit_code(ctx) or err.exit_code
            raise err from exc
        except KeyboardInterrupt:
            if debug():
                raise
            raise click.exceptions.Exit(130) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            cmd = getattr(importlib.import_module(f"netkit.cli.{module}"), attr)
            self.add_command(cmd, cmd_name)
        return cmd

    def _failure_exit_code(self, ctx: click.Context) -> int | None:
        """The invoked subcommand's exit code for netkit's own failures, if it has one."""
        name = ctx.invoked_subcommand
        cmd = self.get_command(ctx, name) if name else None
        return getattr(cmd, "failure_exit_code", None)


@click.group(cls=NetkitGroup)
@click.option("--node", metavar="NAME", envvar="NETKIT_NODE", default=None, shell_complete=names("node"),
              help="Act on this simulated host instead of the real machine [env NETKIT_NODE].")
@click.version_option(__version__, prog_name="netkit", message="%(prog)s version %(version)s",
                      help="Print version information and quit (`netkit version`: more).")
def cli(node: str | None) -> None:
    """Docker's container networking on Linux namespaces, without Docker."""


def main(prog_name: str = "netkit") -> None:
    """The `netkit` command (console entry point and ``python -m netkit``).

    Once the command is done, the objects left are frozen (gc.freeze): the
    interpreter's final collection then does not walk every object of the
    ~250 modules a command loads, which cost ~15 ms of each command's exit.
    """
    try:
        cli(prog_name=prog_name)
    finally:
        import gc
        gc.freeze()
