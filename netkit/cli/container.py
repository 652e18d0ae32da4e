"""`netkit run | create | exec | ps | rm | inspect | port`: docker's container commands,
networking only (start, stop, logs ... are in `lifecycle`).

There is no image: everything after the options is the command, verbatim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import click

from netkit.cli import each, engine, names, render, runtime_command, show_found
from netkit.cli.parse import VerbatimCommand, env_vars, key_values, merge_first_network, network_flag

if TYPE_CHECKING:
    from netkit.specs import ContainerSpec


_CONTAINER_OPTIONS = (
    click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits."),
    click.option("--name", metavar="NAME", help="Container name."),
    click.option("--network", "--net", "networks", multiple=True, metavar="NETWORK",
                 shell_complete=names("network"),
                 help="bridge | host | none | container:<name|id> | a network (repeatable)."),
    click.option("--network-alias", "--net-alias", "aliases", multiple=True, metavar="ALIAS",
                 help="Network-scoped alias (first network)."),
    click.option("--ip", "ipv4", metavar="IP", help="IPv4 address (first network)."),
    click.option("--ip6", "ipv6", metavar="IP", help="IPv6 address (first network)."),
    click.option("-h", "--hostname", metavar="NAME", help="Container host name."),
    click.option("--mac-address", "mac", metavar="MAC", help="MAC address (first network)."),
    click.option("--dns", multiple=True, metavar="IP", help="Upstream DNS servers."),
    click.option("--link", "links", multiple=True, metavar="CONTAINER[:ALIAS]",
                 help="Link to another container."),
    click.option("-p", "--publish", "publish", multiple=True, metavar="[IP:][HOST:]PORT[/PROTO]",
                 help="Publish a container port on the node."),
    click.option("-P", "--publish-all", is_flag=True, help="Publish every --expose'd port to a random port."),
    click.option("--expose", multiple=True, metavar="PORT[/PROTO]", help="Declare a port (for -P)."),
    click.option("-e", "--env", "env", multiple=True, metavar="KEY[=VALUE]", help="Environment variables."),
    click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE",
                 callback=key_values("--label", bare_ok=True), help="Metadata."),
    click.option("--restart", default="no", metavar="POLICY",
                 help="no | on-failure[:MAX-RETRIES] | always | unless-stopped."),
    click.option("--stop-signal", metavar="SIGNAL", help="Signal to stop the container (default SIGTERM)."),
    click.option("--stop-timeout", type=int, metavar="SECONDS",
                 help="Seconds to wait for it to stop before SIGKILL (default 10)."),
    click.option("--log-driver", default="json-file", metavar="DRIVER", help="Logging driver (json-file)."),
    click.option("--log-opt", "log_opts", multiple=True, metavar="KEY=VALUE",
                 callback=key_values("--log-opt"), help="json-file options: max-size, max-file."),
    click.option("--cap-add", "cap_add", multiple=True, metavar="CAP", help="Add a Linux capability (ALL: all)."),
    click.option("--cap-drop", "cap_drop", multiple=True, metavar="CAP", help="Drop a Linux capability (ALL: all)."),
    click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
    click.option("-u", "--user", metavar="UID[:GID]", help="User (name or uid) and group to run as."),
    click.option("--sysctl", "sysctls", multiple=True, metavar="KEY=VALUE", help="Sysctl options (net.*)."),
    click.argument("command", nargs=-1, type=click.UNPROCESSED),
)


def container_options(f: Callable) -> Callable:
    """The options `run` and `create` share (docker's containerOptions)."""
    for option in reversed(_CONTAINER_OPTIONS):
        f = option(f)
    return f


def container_spec(*, detach: bool, auto_remove: bool, name: str | None, networks: tuple[str, ...],
                   aliases: tuple[str, ...], ipv4: str | None, ipv6: str | None,
                   hostname: str | None, mac: str | None, dns: tuple[str, ...],
                   links: tuple[str, ...], publish: tuple[str, ...], publish_all: bool,
                   expose: tuple[str, ...], env: tuple[str, ...], labels: dict[str, str],
                   restart: str, stop_signal: str | None, stop_timeout: int | None,
                   log_driver: str, log_opts: dict[str, str], cap_add: tuple[str, ...] = (),
                   cap_drop: tuple[str, ...] = (), privileged: bool = False,
                   user: str | None = None, sysctls: tuple[str, ...] = (),
                   command: tuple[str, ...] = ()) -> "ContainerSpec":
    """The flags of `run` / `create` as a ContainerSpec, with docker's client-side checks."""
    from netkit.errors import InvalidArgument
    from netkit.lifecycle import RestartPolicy
    from netkit.specs import ContainerSpec
    policy = RestartPolicy.parse(restart)            # docker's client-side checks; 125 if bad
    if auto_remove and policy.name != "no":
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    if log_driver != "json-file":
        raise InvalidArgument(f"logger: no log driver named '{log_driver}' is registered")
    from netkit.kernel.caps import parse_sysctls
    sysctl_map = parse_sysctls(sysctls)
    endpoints = [network_flag(n) for n in networks] or [network_flag("bridge")]
    first = merge_first_network(endpoints[0], aliases, ipv4, ipv6, mac)
    return ContainerSpec(name=name, command=command, network=first.network, aliases=first.aliases,
                         ipv4=first.ipv4, ipv6=first.ipv6, mac=first.mac, hostname=hostname,
                         detach=detach, auto_remove=auto_remove, dns=dns, links=links,
                         extra_networks=tuple(endpoints[1:]), env=env_vars(env), labels=labels,
                         publish=publish, publish_all=publish_all, expose=expose,
                         restart=restart or "no", stop_signal=stop_signal,
                         stop_timeout=stop_timeout, log_opts=log_opts, cap_add=cap_add,
                         cap_drop=cap_drop, privileged=privileged, user=user, sysctls=sysctl_map)


@runtime_command
@click.command(cls=VerbatimCommand)
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container ID.")
@container_options
def run(**flags: Any) -> None:
    """Run COMMAND in a new container (no image: COMMAND runs from the host's filesystem).

    With -d prints the container ID; otherwise waits and exits with COMMAND's exit code.

    \b
    Examples:
      netkit network create app
      netkit run -d --name web --network app python3 -m http.server 80
      netkit run --rm --network app curl -s http://web/
      netkit run -d --name pub -p 8080:80 python3 -m http.server 80
      netkit run --rm --network container:web ip -br addr
    """
    ctr, code = engine().run(container_spec(**flags))
    if code is None:
        click.echo(ctr.id)
    else:
        click.get_current_context().exit(code)


@runtime_command
@click.command(cls=VerbatimCommand)
@container_options
def create(**flags: Any) -> None:
    """Create a container without starting it; prints its ID.

    Its networks are configured; addresses are allocated when `netkit start` runs COMMAND.

    \b
    Examples:
      netkit create --name db --network app --ip 10.1.0.20 sleep infinity
      netkit start db
    """
    click.echo(engine().create_container(container_spec(detach=False, **flags)).id)


@runtime_command
@click.command("exec", cls=VerbatimCommand)
@click.argument("container", shell_complete=names("running"))
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(container: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in a running container; exits with its exit code.

    \b
    Examples:
      netkit exec web ip -br addr
      netkit exec web getent hosts db
    """
    click.get_current_context().exit(engine().exec(container, list(command)))


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="id, name, label, status, exited, network, publish, expose, before, since, is-task.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("--format", "fmt", metavar="FORMAT", help="table, json or a Go-style template.")
def ps(all_: bool, filters: tuple[str, ...], quiet: bool, no_trunc: bool, fmt: str | None) -> None:
    """List containers, newest first."""
    wanted = render.parse_filters(filters, render.CONTAINER_FILTERS)
    eng = engine()
    # Docker: a status filter lists every state; before/since include stopped ones too
    ctrs = eng.containers(all=all_ or any(k in wanted for k in ("status", "before", "since")))
    if wanted:
        created = {ref: eng.container(ref).created
                   for key in ("before", "since") for ref in wanted.get(key, ())}
        ctrs = [c for c in ctrs if _ps_match(c, wanted, created)]
    rows = [render.container_row(c, trunc=not no_trunc) for c in ctrs]
    for line in render.format_rows("{{.ID}}" if quiet else fmt, rows, render.CONTAINER_HEADERS,
                                   render.CONTAINER_TABLE):
        click.echo(line)


def _ps_match(ctr: Any, wanted: dict[str, list[str]], created: dict[str, str]) -> bool:
    ports = render.container_ports(ctr)
    exposed = {f"{private}/{proto}" for _, private, _, proto in ports}
    want = ctr.options.get("ports") or {}
    from netkit.ports import parse_expose, parse_publish
    exposed |= {f"{p}/{proto}" for e in want.get("expose", ()) for p, proto in parse_expose(e)}
    published = {f"{r.container_port}/{r.proto}" for p in want.get("publish", ())
                 for r in parse_publish(p)}
    return render.match_container(ctr, wanted, published=published, exposed=exposed | published,
                                  created=created)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container before removing it.")
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER...", shell_complete=names("container"))
def rm(force: bool, refs: tuple[str, ...]) -> None:
    """Remove containers; prints each one removed."""
    eng = engine()
    each(refs, lambda ref: eng.remove_container(ref, force=force), ignore_missing=force)


@click.command()
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go-style template per object.")
@click.option("--type", "kind", type=click.Choice(["container", "network"]),
              help="Only this type of object (default: a container, else a network).")
@click.argument("refs", nargs=-1, required=True, metavar="NAME|ID...", shell_complete=names("container"))
def inspect(fmt: str | None, kind: str | None, refs: tuple[str, ...]) -> None:
    """Show containers or networks as docker's JSON.

    Without --type a name is looked up as a container, then as a network (Docker's
    order). The objects found are printed; each one missing is an error on stderr.
    """
    from netkit.errors import NotFound
    eng = engine()
    finders = {"container": eng.inspect_containers, "network": eng.inspect_networks}
    order = ["container", "network"]

    def find(ref: str) -> dict:
        if kind:                                    # the type's own error when missing
            return finders[kind]([ref])[0]
        for what in order:
            try:
                return finders[what]([ref])[0]
            except NotFound:
                continue
        raise NotFound(f"No such object: {ref}")
    show_found(fmt, refs, find)


@click.command()
@click.argument("container", shell_complete=names("container"))
@click.argument("private", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
def port(container: str, private: str | None) -> None:
    """List a container's published ports (`80/tcp -> 0.0.0.0:8080`), or the host
    addresses of one container port."""
    from netkit.errors import InvalidArgument, NotFound
    mappings = engine().port(container)
    if private is None:
        lines = [f"{pm.container_port}/{pm.proto} -> {render.host_port(pm)}" for pm in mappings]
        for line in sorted(lines, key=render.natural_key):
            click.echo(line)
        return
    number, _, proto = private.partition("/")
    proto = proto or "tcp"
    if not number.isdigit() or int(number) > 65535:     # docker/cli's runPort
        raise InvalidArgument(f'invalid port ({number}): strconv.ParseUint: parsing "{number}": '
                              + ("value out of range" if number.isdigit() else "invalid syntax"))
    hosts = [render.host_port(pm) for pm in mappings
             if pm.container_port == int(number) and pm.proto == proto]
    if not hosts:
        raise NotFound(f"No public port '{private}' published for {container}")
    for line in sorted(hosts, key=render.natural_key):
        click.echo(line)
