"""`netkit network ...`: docker's `network` subcommands (reference §7.1)."""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, confirm, each, engine, names, render, show_found
from netkit.cli.parse import key_values

def unique_key_values(flag: str):
    """Like key_values, but a key given twice is refused (it would silently replace one)."""
    parse = key_values(flag)

    def callback(ctx: click.Context, param: click.Parameter, values) -> dict[str, str]:
        seen: set[str] = set()
        for item in values or ():
            key = item.partition("=")[0]
            if key in seen:
                from netkit.errors import InvalidArgument
                raise InvalidArgument(f'invalid argument "{item}" for "{flag}" flag: '
                                      f"duplicate key {key}")
            seen.add(key)
        return parse(ctx, param, values)
    return callback


PRUNE_WARNING = "WARNING! This will remove all custom networks not used by at least one container."


@click.group(cls=AliasGroup)
def network() -> None:
    """Manage networks."""


@network.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the network.")
@click.option("--subnet", "subnets", multiple=True, metavar="CIDR", help="Subnet (repeatable).")
@click.option("--ip-range", "ip_ranges", multiple=True, metavar="CIDR",
              help="Allocate container IPs from a sub-range.")
@click.option("--gateway", "gateways", multiple=True, metavar="IP", help="Gateway for the subnet.")
@click.option("--aux-address", "aux", multiple=True, metavar="NAME=IP",
              callback=unique_key_values("--aux-address"),
              help="Addresses the IPAM must not hand out.")
@click.option("-o", "--opt", "opts", multiple=True, metavar="KEY=VALUE",
              callback=key_values("-o, --opt"), help="Driver options.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              callback=key_values("--label", bare_ok=True), help="Metadata.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--ipv4/--no-ipv4", default=True, hidden=True)
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking.")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@click.option("--ipam-driver", default="default", show_default=True, metavar="NAME",
              help="IP Address Management driver (an IPAM plugin).")
@click.option("--ipam-opt", "ipam_opts", multiple=True, metavar="KEY=VALUE",
              callback=key_values("--ipam-opt"), help="Options of the IPAM driver.")
@click.argument("name")
def create(name: str, driver: str, subnets: tuple[str, ...], ip_ranges: tuple[str, ...],
           gateways: tuple[str, ...], aux: dict[str, str], opts: dict[str, str],
           labels: dict[str, str], internal: bool, ipv4: bool, ipv6: bool, attachable: bool,
           ipam_driver: str, ipam_opts: dict[str, str]) -> None:
    """Create a network; prints its id.

    \b
    Examples:
      netkit network create app
      netkit network create --subnet 10.1.0.0/24 --gateway 10.1.0.1 app
      netkit network create --internal --ipv6 --subnet fd00:1::/64 backend
      netkit --node h1 network create -d macvlan -o parent=eth0 \\
          --subnet 192.168.77.0/24 --gateway 192.168.77.1 lan0
    """
    from netkit.specs import NetworkSpec
    spec = NetworkSpec(name=name, driver=driver, subnets=subnets, ip_ranges=ip_ranges,
                       gateways=gateways, aux_addresses=aux, options=opts, labels=labels,
                       internal=internal, ipv6=ipv6, ipv4=ipv4, attachable=attachable,
                       ipam_driver=ipam_driver, ipam_options=ipam_opts)
    click.echo(engine().create_network(spec).id)


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="dangling=true|false, driver, id, label, name, scope, type=custom|builtin.")
@click.option("--format", "fmt", metavar="FORMAT", help="table, json or a Go-style template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
def ls(quiet: bool, filters: tuple[str, ...], fmt: str | None, no_trunc: bool) -> None:
    """List networks, sorted by name."""
    wanted = render.parse_filters(filters, render.NETWORK_FILTERS)
    eng = engine()
    nets = [n for n in eng.networks() if render.match_network(
        n, wanted, len(eng.network_members(n)) if "dangling" in wanted else 0)]
    nets.sort(key=lambda n: render.natural_key(n.name))
    rows = [render.network_row(n, trunc=not no_trunc) for n in nets]
    for line in render.format_rows("{{.ID}}" if quiet else fmt, rows, render.NETWORK_HEADERS,
                                   render.NETWORK_TABLE):
        click.echo(line)


@network.command("inspect")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go-style template per network.")
@click.argument("refs", nargs=-1, required=True, metavar="NETWORK...", shell_complete=names("network"))
def inspect(fmt: str | None, refs: tuple[str, ...]) -> None:
    """Show networks as docker's JSON (the ones found; an error for each missing one)."""
    eng = engine()
    show_found(fmt, refs, lambda ref: eng.inspect_networks([ref])[0])


@network.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not fail when a network does not exist.")
@click.argument("refs", nargs=-1, required=True, metavar="NETWORK...", shell_complete=names("network"))
def rm(force: bool, refs: tuple[str, ...]) -> None:
    """Remove networks; prints each one removed."""
    each(refs, engine().remove_network, ignore_missing=force)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(force: bool) -> None:
    """Remove all networks no container uses."""
    if not force and not confirm(PRUNE_WARNING):
        return
    removed = engine().prune_networks()
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@network.command("connect")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Network-scoped alias.")
@click.option("--ip", "ipv4", metavar="IP", help="IPv4 address.")
@click.option("--ip6", "ipv6", metavar="IP", help="IPv6 address.")
@click.option("--link", "links", multiple=True, metavar="CONTAINER[:ALIAS]", help="Link to a container.")
@click.argument("net", metavar="NETWORK", shell_complete=names("network"))
@click.argument("container", shell_complete=names("container"))
def connect(aliases: tuple[str, ...], ipv4: str | None, ipv6: str | None, links: tuple[str, ...],
            net: str, container: str) -> None:
    """Connect a container to a network.

    \b
    Examples:
      netkit network connect app web
      netkit network connect --alias db --ip 10.1.0.20 app pg
    """
    engine().connect(net, container, aliases=aliases, ipv4=ipv4, ipv6=ipv6, links=links)


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect.")
@click.argument("net", metavar="NETWORK", shell_complete=names("network"))
@click.argument("container", shell_complete=names("container"))
def disconnect(force: bool, net: str, container: str) -> None:
    """Disconnect a container from a network."""
    engine().disconnect(net, container, force=force)
