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
def info() -> None:
    """Display system-wide information: the node, and its swarm (which cluster store, its
    endpoints and their health)."""
    eng = engine()
    click.echo(f"Node: {eng.node_name or '(real host)'}")
    sw = eng.swarm_info()
    click.echo(f"Swarm: {sw['state']}")
    if sw["state"] == "inactive":
        return
    if sw.get("error"):
        click.echo(f" Error: {sw['error']}")
    click.echo(f" NodeID: {eng.node_name}")
    if "role" in sw:
        click.echo(f" Is Manager: {str(sw['role'] == 'manager').lower()}")
    click.echo(f" ClusterID: {sw['cluster']}")
    if "nodes" in sw:
        click.echo(f" Managers: {sw['managers']}")
        click.echo(f" Nodes: {sw['nodes']}")
        if sw["down"]:
            click.echo(f" Nodes Down: {', '.join(sw['down'])}")
    click.echo(f" Node Address: {sw['advertise'].split(':')[0]}")
    store = sw["store"]
    click.echo(f" Cluster Store: {'sqlite' if store == 'sqlite' else 'etcd'}"
               + ("" if store == "sqlite" else f" ({store})"))
    for ep in sw.get("endpoints", []):
        state = "healthy" if ep["healthy"] else "unhealthy"
        detail = "" if ep["healthy"] or not ep["detail"] else f" ({ep['detail']})"
        click.echo(f"  {ep['endpoint']}: {state}{detail}")
