"""`netkit stack deploy|ls|services|ps|rm`: compose v3 files as swarm services (on a manager node)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli import AliasGroup, engine, render

if TYPE_CHECKING:
    from netkit.services.model import Service, Task


@click.group(cls=AliasGroup)
def stack() -> None:
    """Manage swarm stacks: services from a compose file (use --node MANAGER)."""


@stack.command("deploy")
@click.option("-c", "--compose-file", "files", multiple=True, metavar="FILE",
              help="Path to a compose file (repeat to merge several, in order).")
@click.option("--prune", is_flag=True, help="Prune services that are no longer referenced.")
@click.argument("name")
def stack_deploy(files: tuple[str, ...], prune: bool, name: str) -> None:
    """Deploy a new stack or update an existing stack.

    Each service's `command` stands in for its image. Networks are overlays
    (NAME_default when a service names none), services are NAME_SERVICE and
    reach each other by their short names.

    \b
    Examples:
      netkit --node m1 stack deploy -c docker-compose.yml mystack
    """
    engine().stack_deploy(name, list(files), prune=prune, out=click.echo,
                          warn=lambda w: click.echo(w + "\n", err=True))


@stack.command("ls")
def stack_ls() -> None:
    """List stacks (NAME SERVICES)."""
    rows = [["NAME", "SERVICES"]] + [[n, str(c)] for n, c in engine().stacks()]
    for line in render.tabulate(rows):
        click.echo(line)


@stack.command("services")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.argument("name")
def stack_services(quiet: bool, name: str) -> None:
    """List the services in the stack (as `service ls`)."""
    eng = engine()
    svcs = eng.stack_services(name)
    if not svcs:
        click.echo(f"Nothing found in stack: {name}", err=True)
        return
    if quiet:
        for s in svcs:
            click.echo(s.id)
        return
    tasks = eng.stack_tasks(name)
    rows = [["ID", "NAME", "MODE", "REPLICAS", "COMMAND", "PORTS"]]
    rows += [[s.id[:12], s.name, s.spec.mode, _replicas(s, tasks),
              render.ellipsis(" ".join(s.spec.command), 30), _ports(s)] for s in svcs]
    for line in render.tabulate(rows):
        click.echo(line)


@stack.command("ps")
@click.option("-q", "--quiet", is_flag=True, help="Only display task IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("name")
def stack_ps(quiet: bool, no_trunc: bool, name: str) -> None:
    """List the tasks in the stack (as `service ps`)."""
    from netkit.errors import NotFound
    tasks = engine().stack_tasks(name)
    if not tasks:
        raise NotFound(f"nothing found in stack: {name}")
    tasks.sort(key=lambda t: (t.service_name, t.slot or 0, t.node_id, t.desired != "running",
                              t.created), reverse=False)
    if quiet:
        for t in tasks:
            click.echo(t.id)
        return
    rows = [["ID", "NAME", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"]]
    seen: set[str] = set()
    for t in tasks:
        shown = t.name if t.name not in seen else r" \_ " + t.name      # older tasks of a slot
        seen.add(t.name)
        rows.append([t.id if no_trunc else t.id[:12], shown, t.node, t.desired.capitalize(),
                     _state(t), t.error if no_trunc else render.ellipsis(t.error, 30)])
    for line in render.tabulate(rows):
        click.echo(line)


@stack.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
def stack_rm(names: tuple[str, ...]) -> None:
    """Remove one or more stacks: services, secrets, configs, then networks."""
    from netkit.errors import NetkitError
    eng = engine()
    failed = []
    for name in names:
        try:
            if not eng.stack_remove(name, out=click.echo):
                click.echo(f"Nothing found in stack: {name}", err=True)
        except NetkitError as exc:
            failed.append(str(exc))
    if failed:
        raise click.ClickException("\n".join(failed))


def _replicas(s: "Service", tasks: list["Task"]) -> str:
    mine = [t for t in tasks if t.service_id == s.id and t.desired == "running"]
    running = sum(t.state == "running" for t in mine)
    return f"{running}/{s.spec.replicas if s.spec.mode == 'replicated' else len(mine)}"


def _ports(s: "Service") -> str:
    return ", ".join(f"*:{p.published}->{p.target}/{p.protocol}" for p in s.spec.ports)


def _state(t: "Task") -> str:
    """`Running 5 seconds ago`."""
    from datetime import datetime, timezone

    from netkit.lifecycle import human_duration, parse_time
    since: Any = parse_time(t.since) if t.since else None
    ago = f" {human_duration((datetime.now(timezone.utc) - since).total_seconds())} ago" \
        if since else ""
    return t.state.capitalize() + ago
