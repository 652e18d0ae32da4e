"""The root `netkit` command (console entry point ``netkit.cli.main:main``)."""

from __future__ import annotations

import click

from netkit import __version__
from netkit.cli import container, debug, dns, lifecycle, network, node, system
from netkit.cli import capture
from netkit.cli import lab
from netkit.cli import swarm
from netkit.errors import NetkitError


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

    def _failure_exit_code(self, ctx: click.Context) -> int | None:
        """The invoked subcommand's exit code for netkit's own failures, if it has one."""
        name = ctx.invoked_subcommand
        cmd = self.get_command(ctx, name) if name else None
        return getattr(cmd, "failure_exit_code", None)


@click.group(cls=NetkitGroup)
@click.option("--node", metavar="NAME", envvar="NETKIT_NODE", default=None,
              help="Act on this simulated host instead of the real machine [env NETKIT_NODE].")
@click.version_option(__version__, prog_name="netkit")
def cli(node: str | None) -> None:
    """Docker's container networking on Linux namespaces, without Docker."""


cli.add_command(network.network)
cli.add_command(container.run)
cli.add_command(container.create)
cli.add_command(container.exec_)
cli.add_command(container.ps)
cli.add_command(container.rm)
cli.add_command(container.inspect)
cli.add_command(container.port)
for _cmd in (lifecycle.start, lifecycle.stop, lifecycle.restart, lifecycle.kill, lifecycle.wait,
             lifecycle.logs, lifecycle.rename):
    cli.add_command(_cmd)
cli.add_command(system.system)
cli.add_command(dns.dns)
cli.add_command(node.node)
cli.add_command(node.lan)
cli.add_command(capture.capture)
cli.add_command(lab.lab)
cli.add_command(swarm.swarm)


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
