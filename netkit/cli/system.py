"""`netkit system check | prune | reset`: compare and clean up what netkit made on a node."""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, confirm, engine

PRUNE_WARNING = ("WARNING! This will remove the namespaces, links and run directories that "
                 "netkit made on this node and its store no longer describes.")
RESET_REFUSED = "system reset removes everything netkit made on this node; pass -f to confirm"


@click.group(cls=AliasGroup)
def system() -> None:
    """Check and clean up what netkit made."""


@system.command("check")
def check() -> None:
    """Compare the store with the kernel; prints each drift, exits 1 if any."""
    drift = engine().system_check()
    for line in drift:
        click.echo(line)
    if drift:
        click.get_current_context().exit(1)
    click.echo("No drift.")


@system.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(force: bool) -> None:
    """Remove orphans: objects netkit made that its store no longer describes."""
    if not force and not confirm(PRUNE_WARNING):
        return
    for line in engine().system_prune():
        click.echo(line)


@system.command("reset")
@click.option("-f", "--force", is_flag=True, help="Confirm: remove everything.")
def reset(force: bool) -> None:
    """Remove every container, user network and everything else netkit made on this node."""
    if not force:
        raise click.ClickException(RESET_REFUSED)
    for line in engine().system_reset():
        click.echo(line)


@click.command("info")
@click.option("-f", "--format", "fmt", metavar="FORMAT",
              help="json, or a Go template (e.g. '{{.ContainersRunning}}').")
def info(fmt: str | None) -> None:
    """Display system-wide information: containers and their states, networks, the
    kernel and the machine, and the node's swarm (which cluster store, its endpoints and
    their health).

    \b
    Examples:
      netkit info
      netkit --node h1 info --format '{{.Swarm.LocalNodeState}}'
      netkit info --format json
    """
    from netkit.cli import debug
    from netkit.cli.info import info_data, info_text
    eng = engine()
    sw = eng.swarm_info()
    data = info_data(eng, sw, click.get_current_context().find_root().params.get("node"),
                     debug())
    if fmt:
        from netkit.cli.version import format_object
        click.echo(format_object(fmt, data))
    else:
        click.echo("\n".join(info_text(data, sw)))
