"""`netkit swarm init|join|leave`: swarm mode on simulated nodes (use --node NAME)."""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, engine


@click.group(cls=AliasGroup)
def swarm() -> None:
    """Manage swarm membership of a simulated node (overlay networks need it)."""


@swarm.command("init")
def swarm_init() -> None:
    """Create a cluster with this node as its manager."""
    cluster_id = engine().swarm_init()
    click.echo(f"Swarm initialized: current node is now a manager of cluster {cluster_id}.")


@swarm.command("join")
@click.option("--manager", required=True, metavar="NODE", help="A manager node of the cluster (same LAN).")
def swarm_join(manager: str) -> None:
    """Join the cluster of MANAGER as a worker."""
    engine().swarm_join(manager)
    click.echo("This node joined a swarm as a worker.")


@swarm.command("leave")
@click.option("-f", "--force", is_flag=True, help="Leave even as a manager or with containers attached.")
def swarm_leave(force: bool) -> None:
    """Leave the swarm."""
    engine().swarm_leave(force=force)
    click.echo("Node left the swarm.")
