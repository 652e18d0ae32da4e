"""`netkit swarm init|join|join-token|nodes|leave`: swarm mode on simulated nodes (use --node NAME)."""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, engine, names, render

JOIN_HINT = "To add a {role} to this swarm, run the following command:"


@click.group(cls=AliasGroup)
def swarm() -> None:
    """Manage swarm membership of a simulated node (overlay networks need it)."""


def _join_command(role: str, quiet: bool = False, rotate: bool = False) -> None:
    eng = engine()
    token = eng.swarm_join_token(role, rotate=True) if rotate else eng.swarm_join_token(role)
    if rotate and not quiet:
        from netkit.swarm import ROTATED
        click.echo(ROTATED.format(role=role) + "\n")
    if quiet:
        click.echo(token)
        return
    click.echo(JOIN_HINT.format(role=role) + "\n")
    click.echo(f"    netkit swarm join --token {token} {eng.swarm_advertise()}\n")


@swarm.command("init")
@click.option("--advertise-addr", metavar="ADDR[:PORT]",
              help="Address other nodes reach this one by (default: its LAN address, port 2377).")
@click.option("--cluster-store", metavar="URL",
              help="Keep the cluster in etcd: etcd://HOST:PORT[,HOST:PORT...] (default: the "
                   "embedded SQLite store, one machine).")
def swarm_init(advertise_addr: str | None, cluster_store: str | None) -> None:
    """Create a cluster with this node as its manager.

    \b
    Examples:
      netkit --node m1 swarm init
      netkit --node m1 swarm init --cluster-store etcd://192.168.77.5:2379
    """
    from netkit.services.model import node_id
    eng = engine()
    cluster_id = eng.swarm_init(advertise_addr=advertise_addr, cluster_store=cluster_store)
    click.echo(f"Swarm initialized: current node ({node_id(cluster_id, eng.node_name)}) is now "
               "a manager.\n")
    _join_command("worker")
    click.echo("To add a manager to this swarm, run 'netkit swarm join-token manager' and "
               "follow the instructions.")


@swarm.command("join")
@click.option("--token", metavar="TOKEN", help="Token for entry into the swarm.")
@click.option("--manager", metavar="NODE", shell_complete=names("node"), help="A manager node of the cluster (same LAN, one machine).")
@click.argument("address", required=False, metavar="HOST[:PORT]")
def swarm_join(token: str | None, manager: str | None, address: str | None) -> None:
    """Join a swarm: --token TOKEN HOST[:PORT] (over the network), or --manager NODE.

    \b
    Examples:
      netkit --node w1 swarm join --token SWMTKN-1-... 192.168.77.10:2377
      netkit --node w1 swarm join --manager m1
    """
    if manager is None and (token is None or address is None):
        raise click.UsageError('"netkit swarm join" requires --token TOKEN and HOST[:PORT] '
                               "(or --manager NODE)")
    if manager is not None and (token is not None or address is not None):
        raise click.UsageError("--manager cannot be used with --token or HOST[:PORT]")
    eng = engine()
    if manager is not None:
        eng.swarm_join(manager)
        role = "worker"
    else:
        eng.swarm_join(token=token, remote=address)
        role = next((m.role for m in eng.swarm_members() if m.node == eng.node_name), "worker")
    click.echo(f"This node joined a swarm as a {role}.")


@swarm.command("join-token")
@click.option("-q", "--quiet", is_flag=True, help="Only display token.")
@click.option("--rotate", is_flag=True, help="Rotate join token.")
@click.argument("role", type=click.Choice(["worker", "manager"]))
def swarm_join_token(quiet: bool, rotate: bool, role: str) -> None:
    """Manage join tokens: show the join command (or the token) for workers or managers;
    --rotate replaces the token (the old one admits nobody any more). Managers only."""
    _join_command(role, quiet, rotate)


@swarm.command("nodes")
def swarm_nodes() -> None:
    """List the swarm's members (`docker node ls`): status Ready, or Down once a member's
    agent stopped renewing its lease."""
    eng = engine()
    rows = [["HOSTNAME", "STATUS", "ROLE", "ADDRESS"]]
    for m, status in sorted(eng.swarm_nodes(), key=lambda x: render.natural_key(x[0].node)):
        me = " *" if m.node == eng.node_name else ""
        rows.append([m.node + me, status, m.role, m.vtep])
    for line in render.tabulate(rows):
        click.echo(line)


@swarm.command("leave")
@click.option("-f", "--force", is_flag=True, help="Leave even as a manager or with containers attached.")
def swarm_leave(force: bool) -> None:
    """Leave the swarm."""
    engine().swarm_leave(force=force)
    click.echo("Node left the swarm.")
