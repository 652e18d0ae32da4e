"""`netkit node ...` and `netkit lan ...`: simulated hosts and the LANs between them.

Both are managed from the real host's engine (no --node).
"""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, each, engine, names, render
from netkit.cli.parse import VerbatimCommand


@click.group(cls=AliasGroup)
def node() -> None:
    """Manage simulated hosts (a netns each, optionally on a LAN)."""


@node.command("create")
@click.option("--lan", metavar="LAN", shell_complete=names("lan"),
              help="Plug the node's eth0 into this LAN.")
@click.option("--ip", metavar="CIDR", help="eth0's address on the LAN.")
@click.option("--gateway", metavar="IP", help="Default route (default: the LAN's gateway).")
@click.option("--dns", multiple=True, metavar="IP", help="Nameservers of the node's resolv.conf.")
@click.option("--state-dir", metavar="DIR",
              help="Keep the node's state in this directory of its own (new or empty).")
@click.option("--run-dir", metavar="DIR",
              help="Keep the node's runtime files in this directory of its own (new or empty).")
@click.argument("name")
def node_create(name: str, lan: str | None, ip: str | None, gateway: str | None,
                dns: tuple[str, ...], state_dir: str | None, run_dir: str | None) -> None:
    """Create a simulated host; prints its name.

    \b
    Examples:
      netkit lan create --subnet 192.168.77.0/24 --gateway 192.168.77.1 office
      netkit node create --lan office --ip 192.168.77.10/24 h1
      netkit --node h1 network create app
    """
    import os
    own = {k: os.path.abspath(v) for k, v in (("state_dir", state_dir), ("run_dir", run_dir)) if v}
    click.echo(engine(host=True).create_node(name, lan=lan, ip=ip, gateway=gateway, dns=dns,
                                             **own).name)


@node.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display names.")
def node_ls(quiet: bool) -> None:
    """List simulated hosts."""
    nodes = sorted(engine(host=True).nodes(), key=lambda n: render.natural_key(n.name))
    if quiet:
        for n in nodes:
            click.echo(n.name)
        return
    eng = engine(host=True)
    roles, agents = eng.swarm_roles(), eng.swarm_agents()
    rows = [["NAME", "LAN", "IP", "ROLE", "AGENT"]] + [
        [n.name, n.lan or "", n.ip or "", roles.get(n.name, ""), agents.get(n.name, "")]
        for n in nodes]
    for line in render.tabulate(rows):
        click.echo(line)


@node.command("rm")
@click.option("-f", "--force", is_flag=True, help="Remove even with containers or networks on it.")
@click.argument("names", nargs=-1, required=True, metavar="NAME...", shell_complete=names("node"))
def node_rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove simulated hosts and everything on them."""
    eng = engine(host=True)
    each(names, lambda name: eng.remove_node(name, force=force))


@node.command("exec", cls=VerbatimCommand)
@click.argument("name", shell_complete=names("node"))
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def node_exec(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND on a simulated host; exits with its exit code."""
    click.get_current_context().exit(engine(host=True).node_exec(name, list(command)))


@click.group(cls=AliasGroup)
def lan() -> None:
    """Manage simulated LANs (a switch in its own netns)."""


@lan.command("create")
@click.option("--subnet", required=True, metavar="CIDR", help="The LAN's subnet.")
@click.option("--gateway", metavar="IP", help="Router address on the LAN's switch.")
@click.argument("name")
def lan_create(name: str, subnet: str, gateway: str | None) -> None:
    """Create a simulated LAN; prints its name."""
    click.echo(engine(host=True).create_lan(name, subnet, gateway=gateway).name)


@lan.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display names.")
def lan_ls(quiet: bool) -> None:
    """List simulated LANs."""
    lans = sorted(engine(host=True).lans(), key=lambda n: render.natural_key(n.name))
    if quiet:
        for n in lans:
            click.echo(n.name)
        return
    rows = [["NAME", "SUBNET", "GATEWAY"]] + [[n.name, n.subnet, n.gateway or ""] for n in lans]
    for line in render.tabulate(rows):
        click.echo(line)


@lan.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...", shell_complete=names("lan"))
def lan_rm(names: tuple[str, ...]) -> None:
    """Remove simulated LANs (refused while nodes are plugged in)."""
    each(names, engine(host=True).remove_lan)
