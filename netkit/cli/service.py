"""`netkit service create|ls|ps|inspect|logs|scale|update|rollback|rm`: swarm services
(on a manager node: --node NAME). The command stands in for the image."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click

from netkit.cli import AliasGroup, each, engine, render
from netkit.cli.parse import VerbatimCommand

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.services.model import Service, ServiceSpec

PS_FILTERS = ("desired-state", "name", "node", "id")
PS_HEADERS = {"ID": "ID", "Name": "NAME", "Node": "NODE", "DesiredState": "DESIRED STATE",
              "CurrentState": "CURRENT STATE", "Error": "ERROR", "Ports": "PORTS",
              "Image": "COMMAND"}
PS_TABLE = "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}"
LS_HEADERS = {"ID": "ID", "Name": "NAME", "Mode": "MODE", "Replicas": "REPLICAS",
              "Command": "COMMAND", "Image": "COMMAND", "Ports": "PORTS"}
LS_TABLE = "{{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Command}}\t{{.Ports}}"
NO_IMAGE = "--image is not applicable in netkit: the service's command stands in for the image"


@click.group(cls=AliasGroup)
def service() -> None:
    """Manage swarm services (run on a manager node: --node NAME)."""


def _duration(flag: str) -> Callable[..., float | None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        from netkit.services.display import parse_duration
        return None if value is None else parse_duration(value, flag)
    return callback


def _policy_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The restart and update flags `create` and `update` share."""
    opts = [
        click.option("--restart-condition", type=click.Choice(["none", "on-failure", "any"]),
                     help="Restart when condition is met (default any)."),
        click.option("--restart-max-attempts", type=int, metavar="N",
                     help="Maximum number of restarts before giving up."),
        click.option("--restart-delay", callback=_duration("--restart-delay"), metavar="DURATION",
                     help="Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)."),
        click.option("--update-parallelism", type=int, metavar="N",
                     help="Maximum number of tasks updated simultaneously (0 to update all at once)."),
        click.option("--update-delay", callback=_duration("--update-delay"), metavar="DURATION",
                     help="Delay between updates (ns|us|ms|s|m|h) (default 0s)."),
        click.option("--update-order", type=click.Choice(["stop-first", "start-first"]),
                     help="Update order (default stop-first)."),
        click.option("--update-failure-action", type=click.Choice(["pause", "continue", "rollback"]),
                     help="Action on update failure (default pause)."),
        click.option("--update-monitor", callback=_duration("--update-monitor"), metavar="DURATION",
                     help="Duration after each task update to monitor for failure (default 5s)."),
        click.option("-d", "--detach", is_flag=True,
                     help="Exit immediately instead of waiting for the service to converge."),
        click.option("-q", "--quiet", is_flag=True, help="Suppress progress output."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _policies(spec: "ServiceSpec", o: dict[str, Any]) -> "ServiceSpec":
    from dataclasses import replace
    restart = {k: v for k, v in (("condition", o["restart_condition"]),
                                 ("max_attempts", o["restart_max_attempts"]),
                                 ("delay", o["restart_delay"])) if v is not None}
    update = {k: v for k, v in (("parallelism", o["update_parallelism"]),
                                ("delay", o["update_delay"]), ("order", o["update_order"]),
                                ("failure_action", o["update_failure_action"]),
                                ("monitor", o["update_monitor"])) if v is not None}
    return replace(spec, restart=replace(spec.restart, **restart),
                   update=replace(spec.update, **update))


@service.command("create", cls=VerbatimCommand)
@click.option("--name", metavar="NAME", help="Service name.")
@click.option("--mode", type=click.Choice(["replicated", "global"]), default="replicated",
              help="Service mode (replicated or global).")
@click.option("--replicas", type=int, metavar="N", help="Number of tasks.")
@click.option("--network", "networks", multiple=True, metavar="NETWORK", help="Network attachments.")
@click.option("-p", "--publish", "publish", multiple=True, metavar="PORT",
              help="Publish a port: [mode=ingress|host,]PUBLISHED:TARGET[/PROTO] or "
                   "published=P,target=T[,protocol=P][,mode=M].")
@click.option("--endpoint-mode", type=click.Choice(["vip", "dnsrr"]), default="vip",
              help="Endpoint mode (vip or dnsrr).")
@click.option("--constraint", "constraints", multiple=True, metavar="EXPR",
              help="Placement constraints: node.id|node.hostname|node.role|node.labels.K (==|!=) V.")
@click.option("-e", "--env", "env", multiple=True, metavar="K=V", help="Set environment variables.")
@click.option("--hostname", metavar="NAME", help="Container hostname.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Service labels.")
@click.option("--container-label", "container_labels", multiple=True, metavar="K=V",
              help="Container labels.")
@click.option("--secret", "secrets", multiple=True, metavar="SRC[,target=T,mode=M]",
              help="Specify secrets to expose to the service.")
@click.option("--config", "configs", multiple=True, metavar="SRC[,target=T,mode=M]",
              help="Specify configurations to expose to the service.")
@click.option("--stop-signal", metavar="SIGNAL", help="Signal to stop the container.")
@click.option("--stop-grace-period", callback=_duration("--stop-grace-period"), metavar="DURATION",
              help="Time to wait before force killing a container (default 10s).")
@_policy_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def create(name: str | None, mode: str, replicas: int | None, networks: tuple[str, ...],
           publish: tuple[str, ...], endpoint_mode: str, constraints: tuple[str, ...],
           env: tuple[str, ...], hostname: str | None, labels: tuple[str, ...],
           container_labels: tuple[str, ...], secrets: tuple[str, ...], configs: tuple[str, ...],
           stop_signal: str | None, stop_grace_period: float | None, command: tuple[str, ...],
           **o: Any) -> None:
    """Create a new service; prints its id, then its progress (unless -d).

    \b
    Examples:
      netkit --node m1 service create --name web --replicas 3 -p 8080:80 \\
          --network app python3 -m http.server 80
      netkit --node m1 service create --name mon --mode global sleep infinity
    """
    from netkit.cli.parse import env_vars, split_key_value
    from netkit.errors import InvalidArgument
    from netkit.services import display
    from netkit.services.manager import REPLICAS_GLOBAL
    from netkit.services.model import ServiceSpec
    if replicas is not None and mode == "global":
        raise InvalidArgument(REPLICAS_GLOBAL)
    spec = ServiceSpec(
        name=name or "", command=command, mode=mode,
        replicas=1 if replicas is None else replicas, networks=networks,
        ports=tuple(display.parse_publish(p) for p in publish), endpoint_mode=endpoint_mode,
        constraints=constraints, env=env_vars(env), hostname=hostname,
        labels=dict(split_key_value(v, "--label", bare_ok=True) for v in labels),
        container_labels=dict(split_key_value(v, "--container-label", bare_ok=True)
                              for v in container_labels),
        secrets=tuple(display.parse_file_ref(s, "--secret", True) for s in secrets),
        configs=tuple(display.parse_file_ref(s, "--config", False) for s in configs),
        stop_signal=stop_signal,
        stop_grace_period=10.0 if stop_grace_period is None else stop_grace_period)
    spec = _policies(spec, o)
    eng = engine()
    svc = eng.service_create(spec)
    click.echo(svc.id)
    if not o["detach"]:
        _progress(eng, svc.id, o["quiet"])


def _progress(eng: "Engine", service_id: str, quiet: bool) -> None:
    """Docker's progress display until the service converged (all its tasks running the
    current spec and no update in progress); on a terminal redrawn in place."""
    from netkit.services.reconcile import ROLLBACK_STARTED, UPDATING, spec_key
    tty = sys.stdout.isatty() and not quiet
    shown = 0
    while True:
        svc = eng.service(service_id)
        tasks = [t for t in eng.service_tasks(service_id) if t.desired == "running"]
        lines, done = _progress_lines(svc, tasks, spec_key)
        busy = svc.update_status.get("state") in (UPDATING, ROLLBACK_STARTED)
        converged = done and not busy
        if tty:
            if shown:
                click.echo(f"\x1b[{shown}A", nl=False)
            for line in lines:
                click.echo("\x1b[2K" + line)
            shown = len(lines)
        if converged:
            break
        time.sleep(0.1)
    if not quiet:
        if not tty:
            for line in lines:
                click.echo(line)
        click.echo("verify: Service converged ")


BAR = 50
STEPS = {"new": 1, "allocated": 2, "pending": 3, "assigned": 4, "accepted": 5, "preparing": 6,
         "ready": 7, "starting": 8, "running": 9}


def _bar(state: str) -> str:
    filled = STEPS.get(state, 0) * 100 // 9 // 2
    return "[" + "=" * filled + ">" + " " * (BAR - filled) + "]"


def _progress_lines(svc: "Service", tasks: list, spec_key: Callable[..., dict]) -> tuple[list[str], bool]:
    key = spec_key(svc.spec)
    current = [t for t in tasks if spec_key(t.spec) == key]
    if svc.spec.mode == "global":
        slots = sorted({t.node_id for t in tasks})
        pick = {s: [t for t in current if t.node_id == s] for s in slots}
        label = {s: s[:12] for s in slots}
    else:
        slots = list(range(1, svc.spec.replicas + 1))
        pick = {s: [t for t in current if t.slot == s] for s in slots}
        label = {s: f"{s}/{svc.spec.replicas}" for s in slots}
    states = {s: (max(pick[s], key=lambda t: t.created).state if pick[s] else "new") for s in slots}
    running = sum(st == "running" for st in states.values())
    lines = [f"overall progress: {running} out of {len(slots)} tasks "]
    lines += [f"{label[s]}: {states[s]:<9} {_bar(states[s])} " for s in slots]
    return lines, running == len(slots)


@service.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--format", "fmt", metavar="FORMAT", help="table, json or a Go-style template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
def ls(quiet: bool, fmt: str | None, no_trunc: bool) -> None:
    """List services."""
    from netkit.services.display import service_row
    eng = engine()
    tasks = eng.service_tasks()
    rows = [service_row(s, [t for t in tasks if t.service_id == s.id], trunc=not no_trunc)
            for s in eng.services()]
    for line in render.format_rows("{{.ID}}" if quiet else fmt, rows, LS_HEADERS, LS_TABLE):
        click.echo(line)


@service.command("ps")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="desired-state=running|shutdown|accepted, name, node, id.")
@click.option("--format", "fmt", metavar="FORMAT", help="table, json or a Go-style template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display task IDs.")
@click.argument("refs", nargs=-1, required=True, metavar="SERVICE...")
def ps(filters: tuple[str, ...], fmt: str | None, no_trunc: bool, quiet: bool,
       refs: tuple[str, ...]) -> None:
    """List the tasks of one or more services (history under each slot's current task)."""
    from netkit.services.display import ordered_tasks, task_row
    wanted = render.parse_filters(filters, PS_FILTERS)
    eng = engine()
    tasks = [t for ref in dict.fromkeys(refs) for t in eng.service_tasks(ref)]
    rows = [task_row(t, history, trunc=not no_trunc) for t, history in ordered_tasks(tasks)
            if _task_match(t, wanted)]
    for line in render.format_rows("{{.ID}}" if quiet else fmt, rows, PS_HEADERS, PS_TABLE):
        click.echo(line)


def _task_match(t: Any, wanted: dict[str, list[str]]) -> bool:
    checks = {"desired-state": lambda v: t.desired == v or (v == "accepted" and t.desired == "running"),
              "name": lambda v: t.name.startswith(v), "id": lambda v: t.id.startswith(v),
              "node": lambda v: v in (t.node, t.node_id)}
    return all(any(checks[k](v) for v in values) for k, values in wanted.items())


@service.command("inspect")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go-style template per service.")
@click.option("--pretty", is_flag=True, help="Print the information in a human friendly format.")
@click.argument("refs", nargs=-1, required=True, metavar="SERVICE...")
def inspect(fmt: str | None, pretty: bool, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more services."""
    from netkit.cli import show_found
    from netkit.services import display
    eng = engine()
    if pretty:
        names = {n.id: n.name for n in eng.networks()}
        each(refs, lambda ref: display.pretty(eng.service(ref), names), show=lambda _, text: text)
        return
    show_found(fmt, refs, lambda ref: display.inspect_json(eng.service(ref)))


@service.command("logs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate task ids.")
@click.option("-n", "--tail", type=int, metavar="N", help="Number of lines to show from the end.")
@click.argument("ref", metavar="SERVICE")
def logs(no_trunc: bool, tail: int | None, ref: str) -> None:
    """Fetch the logs of a service's tasks (each line: NAME.SLOT.TASKID@NODE | line)."""
    entries = engine().service_logs(ref, no_trunc=no_trunc)
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    for e in entries:
        click.echo(e.text, nl=not e.text.endswith("\n"), err=e.stream == "stderr")


@service.command("scale")
@click.option("-d", "--detach", is_flag=True, help="Exit immediately instead of waiting.")
@click.argument("scales", nargs=-1, required=True, metavar="SERVICE=REPLICAS...")
def scale(detach: bool, scales: tuple[str, ...]) -> None:
    """Scale one or more replicated services."""
    from netkit.errors import InvalidArgument
    wanted: dict[str, int] = {}
    for item in scales:
        name, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise InvalidArgument(f"invalid scale specifier '{item}'.\nSee 'netkit service scale "
                                  "--help'.\n\nUsage:  netkit service scale SERVICE=REPLICAS...")
        wanted[name] = int(n)
    eng = engine()
    eng.service_scale(wanted)
    for name, n in wanted.items():
        click.echo(f"{name} scaled to {n}")
        if not detach:
            _progress(eng, eng.service(name).id, False)


@service.command("update")
@click.option("--replicas", type=int, metavar="N", help="Number of tasks.")
@click.option("--args", "args", metavar="COMMAND", help="Service command args (the new command).")
@click.option("--env-add", multiple=True, metavar="K=V", help="Add or update an environment variable.")
@click.option("--env-rm", multiple=True, metavar="K", help="Remove an environment variable.")
@click.option("--publish-add", multiple=True, metavar="PORT", help="Add or update a published port.")
@click.option("--publish-rm", multiple=True, metavar="PORT",
              help="Remove a published port by its target port ([PUBLISHED:]TARGET[/PROTO]).")
@click.option("--constraint-add", multiple=True, metavar="EXPR", help="Add or update a constraint.")
@click.option("--constraint-rm", multiple=True, metavar="EXPR", help="Remove a constraint.")
@click.option("--force", is_flag=True, help="Force update even if no changes require it.")
@click.option("--image", metavar="IMAGE", help="Not applicable: the command stands in for it.")
@_policy_options
@click.argument("ref", metavar="SERVICE")
def update(replicas: int | None, args: str | None, env_add: tuple[str, ...],
           env_rm: tuple[str, ...], publish_add: tuple[str, ...], publish_rm: tuple[str, ...],
           constraint_add: tuple[str, ...], constraint_rm: tuple[str, ...], force: bool,
           image: str | None, ref: str, **o: Any) -> None:
    """Update a service (a rolling update when its tasks' part changes, or with --force)."""
    import shlex
    from dataclasses import replace

    from netkit.cli.parse import env_vars
    from netkit.errors import InvalidArgument
    from netkit.services import display
    from netkit.services.manager import REPLICAS_GLOBAL
    if image is not None:
        raise InvalidArgument(NO_IMAGE)
    try:
        command = None if args is None else tuple(shlex.split(args))
    except ValueError as exc:
        raise InvalidArgument(f'invalid argument "{args}" for "--args" flag: {exc}') from None
    eng = engine()
    svc = eng.service(ref)
    spec = svc.spec
    if replicas is not None:
        if spec.mode == "global":
            raise InvalidArgument(REPLICAS_GLOBAL)
        spec = replace(spec, replicas=replicas)
    if command is not None:
        spec = replace(spec, command=command)
    if env_add or env_rm:
        env = {k: v for k, v in spec.env.items() if k not in env_rm}
        spec = replace(spec, env={**env, **env_vars(env_add)})
    if publish_add or publish_rm:
        added = [display.parse_publish(p) for p in publish_add]
        gone = {_target(p) for p in publish_rm}
        ports = [p for p in spec.ports if (p.target, p.protocol) not in gone
                 and all((p.published, p.protocol) != (a.published, a.protocol) for a in added)]
        spec = replace(spec, ports=tuple(ports + added))
    if constraint_add or constraint_rm:
        kept = [c for c in spec.constraints if c not in constraint_rm and c not in constraint_add]
        spec = replace(spec, constraints=tuple(kept) + constraint_add)
    spec = _policies(spec, o)
    svc = eng.service_update(svc.id, spec, force=force)
    click.echo(svc.name)
    if not o["detach"]:
        _progress(eng, svc.id, o["quiet"])


def _target(value: str) -> tuple[int, str]:
    """`--publish-rm TARGET[/PROTO]` or PUBLISHED:TARGET[/PROTO]: Docker removes by target."""
    from netkit.errors import InvalidArgument
    ports, _, proto = value.partition("/")
    try:
        return int(ports.split(":")[-1]), proto or "tcp"
    except ValueError:
        raise InvalidArgument(f'invalid argument "{value}" for "--publish-rm" flag') from None


@service.command("rollback")
@click.option("-d", "--detach", is_flag=True, help="Exit immediately instead of waiting.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output.")
@click.argument("ref", metavar="SERVICE")
def rollback(detach: bool, quiet: bool, ref: str) -> None:
    """Revert changes to a service's configuration."""
    eng = engine()
    svc = eng.service_rollback(ref)
    click.echo(svc.name)
    if not detach:
        if not quiet:
            click.echo("rollback: manually requested rollback ")
        _progress(eng, svc.id, quiet)


@service.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="SERVICE...")
def rm(refs: tuple[str, ...]) -> None:
    """Remove one or more services."""
    each(refs, lambda ref: engine().service_remove(ref))
