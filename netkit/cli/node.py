"""`netkit node ...` and `netkit lan ...`: simulated hosts and the LANs between them.

Hosts and LANs are managed from the real host's engine (create, rm, exec: --node
is ignored). The swarm verbs (`node ls` with --node, promote, demote, update,
inspect) are Docker's `docker node ...`, run on the node --node names
(netkit/cli/swarm_nodes.py).
"""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, each, engine, names, render
from netkit.cli.parse import VerbatimCommand


@click.group(cls=AliasGroup)
def node() -> None:
    """Manage simulated hosts (a netns each, optionally on a LAN) and swarm nodes."""


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


def _acting_node() -> str | None:
    """The node named by --node / NETKIT_NODE (None: the real host)."""
    return click.get_current_context().find_root().params.get("node")


@node.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display names (IDs on a swarm member).")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter a swarm member's view: role=, membership=, name=, id=, node.label=.")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="Format a swarm member's view: table, json or a Go-style template.")
def node_ls(quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List simulated hosts; with --node NODE, the nodes of NODE's swarm (`docker node ls`).

    \b
    Without --node: every simulated host (NAME LAN IP ROLE AGENT).
    With --node NODE (a manager): its swarm's nodes, Docker's columns (ID, `*` for NODE,
    HOSTNAME, STATUS, AVAILABILITY, MANAGER STATUS) and each node's AGENT.
    """
    if _acting_node():
        from netkit.cli.swarm_nodes import ls
        ls(quiet, filters, fmt)
        return
    if filters or fmt:
        raise click.UsageError("--filter and --format list a swarm's nodes: use --node NODE")
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


@node.command("promote")
@click.argument("refs", nargs=-1, required=True, metavar="NODE...")
def node_promote(refs: tuple[str, ...]) -> None:
    """Promote one or more nodes to manager in the swarm (run on a manager: --node)."""
    from netkit.cli.swarm_nodes import set_role
    set_role(refs, "manager")


@node.command("demote")
@click.argument("refs", nargs=-1, required=True, metavar="NODE...")
def node_demote(refs: tuple[str, ...]) -> None:
    """Demote one or more nodes from manager in the swarm (never the last manager)."""
    from netkit.cli.swarm_nodes import set_role
    set_role(refs, "worker")


@node.command("update")
@click.option("--availability", type=click.Choice(["active", "pause", "drain"]),
              help="Availability of the node (drain moves its tasks away, pause places none).")
@click.option("--label-add", "label_add", multiple=True, metavar="KEY[=VALUE]",
              help="Add or update a node label.")
@click.option("--label-rm", "label_rm", multiple=True, metavar="KEY", help="Remove a node label.")
@click.argument("ref", metavar="NODE")
def node_update(availability: str | None, label_add: tuple[str, ...], label_rm: tuple[str, ...],
                ref: str) -> None:
    """Update a swarm node (run on a manager: --node).

    \b
    Examples:
      netkit --node m1 node update --availability drain w1
      netkit --node m1 node update --label-add zone=east w2
    """
    labels = dict(item.partition("=")[::2] for item in label_add)
    engine().node_update(ref, availability=availability, label_add=labels, label_rm=label_rm)
    click.echo(ref)


@node.command("inspect")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go-style template per node.")
@click.option("--pretty", is_flag=True, help="Print the information in a human friendly format.")
@click.argument("refs", nargs=-1, required=True, metavar="NODE...")
def node_inspect(fmt: str | None, pretty: bool, refs: tuple[str, ...]) -> None:
    """Display detailed information on swarm nodes (hostname, ID, ID prefix or `self`)."""
    from netkit.cli.swarm_nodes import inspect
    inspect(fmt, pretty, refs)


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
