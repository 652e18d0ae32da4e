"""`netkit stack deploy|ls|services|ps|rm`: compose v3 files as swarm services (on a manager node)."""

from __future__ import annotations

import click

from netkit.cli import AliasGroup, engine, render


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
    from netkit.cli.service import LS_HEADERS, LS_TABLE
    from netkit.services.display import service_row
    eng = engine()
    svcs = eng.stack_services(name)
    if not svcs:
        click.echo(f"Nothing found in stack: {name}", err=True)
        return
    tasks = eng.stack_tasks(name)
    rows = [service_row(s, [t for t in tasks if t.service_id == s.id], trunc=not quiet)
            for s in svcs]
    for line in render.format_rows("{{.ID}}" if quiet else None, rows, LS_HEADERS, LS_TABLE):
        click.echo(line)


@stack.command("ps")
@click.option("-q", "--quiet", is_flag=True, help="Only display task IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("name")
def stack_ps(quiet: bool, no_trunc: bool, name: str) -> None:
    """List the tasks in the stack (as `service ps`)."""
    from netkit.cli.service import PS_HEADERS, PS_TABLE
    from netkit.errors import NotFound
    from netkit.services.display import ordered_tasks, task_row
    tasks = engine().stack_tasks(name)
    if not tasks:
        raise NotFound(f"nothing found in stack: {name}")
    rows = [task_row(t, history, trunc=not (no_trunc or quiet))
            for t, history in ordered_tasks(tasks)]
    for line in render.format_rows("{{.ID}}" if quiet else None, rows, PS_HEADERS, PS_TABLE):
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
