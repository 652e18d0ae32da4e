"""`netkit lab ...`: Compose files as labs (up, down, stop, start, restart, ps, config, scale,
exec, logs, graph, test).

The project options (-f, -p, --env-file, --compatibility) are accepted both
before the subcommand, as `docker compose` takes them, and after it.
Progress goes to stderr (rich); results go to stdout.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click

from netkit.cli import AliasGroup, engine, render
from netkit.cli.parse import VerbatimCommand

if TYPE_CHECKING:
    from netkit.labs.runner import Event, Lab

_OPTS = "netkit.lab.opts"


def project_options(fn: Callable | None = None, *, short_file: bool = True) -> Callable:
    """-f/--file, -p/--project-name, --env-file, --compatibility (group or subcommand).
    `short_file=False` leaves -f to the command (`logs -f` follows, as in Compose)."""
    if fn is None:
        return functools.partial(project_options, short_file=short_file)
    flags = ("-f", "--file") if short_file else ("--file",)

    @click.option(*flags, "files", multiple=True, metavar="FILE",
                  help="Lab (compose) file; repeat to merge [default: lab.yml, compose.yaml ...].")
    @click.option("-p", "--project-name", "project", metavar="NAME", help="Project name.")
    @click.option("--env-file", "env_files", multiple=True, metavar="FILE",
                  help="Variables for interpolation [default: .env beside the file].")
    @click.option("--compatibility", is_flag=True, default=None,
                  help="Name containers <project>_<service>_<n> (Compose v1).")
    @click.option("--profile", "profiles", multiple=True, metavar="PROFILE",
                  help="Enable services of this profile [default: $COMPOSE_PROFILES].")
    @functools.wraps(fn)
    def wrapper(*args: Any, files: tuple[str, ...], project: str | None, env_files: tuple[str, ...],
                compatibility: bool | None, profiles: tuple[str, ...], **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        merged = dict(ctx.meta.get(_OPTS) or {})
        for key, value in (("files", files), ("project", project), ("env_files", env_files),
                           ("compatibility", compatibility), ("profiles", profiles)):
            if value:
                merged[key] = value
        ctx.meta[_OPTS] = merged
        return fn(*args, **kwargs)
    return wrapper


@click.group(cls=AliasGroup)
@project_options
def lab() -> None:
    """Run labs: Compose files whose services are host commands in netkit containers."""


class Reporter:
    """Compose-style progress lines on stderr; a spinner while something is under way."""

    def __init__(self) -> None:
        from rich.console import Console
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.status: Any = None
        self.started: dict[tuple[str, str], float] = {}

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def __call__(self, ev: "Event") -> None:
        from rich.markup import escape
        if ev.kind == "Warning":
            self.stop()
            self.console.print(f"[yellow]WARN[/] {escape(ev.detail)}")
            return
        key = (ev.kind, ev.name)
        text = f"{ev.kind} {escape(ev.name)}  [bold]{escape(ev.status)}[/]"
        detail = f"  [dim]{escape(ev.detail)}[/]" if ev.detail else ""
        if not ev.done:
            self.started.setdefault(key, time.monotonic())
            if self.console.is_terminal:
                if self.status is None:
                    self.status = self.console.status(text + detail)
                    self.status.start()
                else:
                    self.status.update(text + detail)
            return
        self.stop()
        began = self.started.pop(key, None)
        took = f"  [dim]{time.monotonic() - began:.1f}s[/]" if began is not None else ""
        self.console.print(f" [green]✔[/] {text}{detail}{took}")


def _open(*, need_file: bool = True, scale: dict[str, int] | None = None,
          quiet: bool = False, enable: tuple[str, ...] = ()) -> "Lab":
    """The Lab of this invocation (from the file, or by project name for ps/down/logs)."""
    from netkit.errors import InvalidArgument
    from netkit.labs.project import find_files
    from netkit.labs.runner import Lab
    ctx = click.get_current_context()
    opts = ctx.meta.get(_OPTS) or {}
    files = list(opts.get("files") or ())
    if not files:
        try:
            files = find_files()
        except InvalidArgument:
            if need_file or not opts.get("project"):
                raise
    reporter = None if quiet else Reporter()
    common = dict(engine=engine(), compatibility=bool(opts.get("compatibility")), on_event=reporter)
    if files:
        the_lab = Lab.load(files, project=opts.get("project"), env_files=opts.get("env_files") or (),
                           scale=scale, profiles=opts.get("profiles") or (), enable=enable, **common)
    else:
        the_lab = Lab(None, name=opts["project"], **common)
    ctx.call_on_close(the_lab.close)
    if reporter is not None:
        ctx.call_on_close(reporter.stop)
    return the_lab


def _counts(values: tuple[str, ...], flag: str) -> dict[str, int]:
    from netkit.errors import InvalidArgument
    out = {}
    for item in values:
        name, sep, n = item.partition("=")
        if not sep or not name or not n.isdigit():
            raise InvalidArgument(f'invalid argument "{item}" for "{flag}": expected SERVICE=N')
        out[name] = int(n)
    return out


@lab.command("up")
@project_options
@click.option("--scale", "scales", multiple=True, metavar="SERVICE=N", help="Replicas of a service.")
@click.option("-d", "--detach", is_flag=True, help="Start and return (default: follow the logs).")
@click.option("--no-deps", is_flag=True, help="Do not start the services' dependencies.")
@click.argument("services", nargs=-1)
def up(scales: tuple[str, ...], detach: bool, no_deps: bool, services: tuple[str, ...]) -> None:
    """Create nodes, LANs, networks and start the services (in dependency order).

    Without -d, follow the services' output; Ctrl-C then stops the lab's
    containers (each with its stop signal and grace period); `lab up` or
    `lab start` starts them again, `lab down` removes the lab.

    \b
    Examples:
      netkit lab up -d                       # lab.yml or compose.yaml here
      netkit lab -f compose.yaml up -d --scale web=3
      netkit lab ps
      netkit lab down
    """
    scale = _counts(scales, "--scale")
    the_lab = _open(scale=scale, enable=services)        # a named service runs whatever its profiles
    the_lab.up(list(services), scale=scale, no_deps=no_deps)
    if detach:
        return
    names = ", ".join(m.name for m in the_lab.ps())
    click.echo(f"Attaching to {names}", err=True)
    try:
        _follow(the_lab, None, prefix=True, until_exit=True)
    except KeyboardInterrupt:
        click.echo("Gracefully stopping... (press Ctrl+C again to force)", err=True)
        try:
            the_lab.stop()
        except KeyboardInterrupt:
            the_lab.stop(timeout=0)


_TIMEOUT = click.option("-t", "--timeout", type=int, default=None, metavar="SECONDS",
                        help="Seconds to wait for each container to stop before killing it "
                             "[default: its stop_grace_period, else 10].")


@lab.command("down")
@project_options
@_TIMEOUT
def down(timeout: int | None) -> None:
    """Stop and remove the lab's containers, its networks, and the nodes and LANs it created."""
    _open(need_file=False).down(timeout=timeout)


@lab.command("stop")
@project_options
@_TIMEOUT
@click.argument("services", nargs=-1)
def stop(timeout: int | None, services: tuple[str, ...]) -> None:
    """Stop the services' containers (stop signal, then SIGKILL after the grace period)."""
    _open(need_file=False).stop(list(services), timeout=timeout)


@lab.command("start")
@project_options
@click.argument("services", nargs=-1)
def start(services: tuple[str, ...]) -> None:
    """Start the services' stopped containers again (dependencies first)."""
    _open(need_file=False).start(list(services))


@lab.command("restart")
@project_options
@_TIMEOUT
@click.argument("services", nargs=-1)
def restart(timeout: int | None, services: tuple[str, ...]) -> None:
    """Stop and start the services' containers."""
    _open(need_file=False).restart(list(services), timeout=timeout)


@lab.command("ps")
@project_options
@click.option("-a", "--all", "all_", is_flag=True, help="Show exited containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--services", "services_only", is_flag=True, help="Only display service names.")
@click.argument("services", nargs=-1)
def ps(all_: bool, quiet: bool, services_only: bool, services: tuple[str, ...]) -> None:
    """List the lab's containers: node, state (health), addresses, ports."""
    the_lab = _open(need_file=False, quiet=True)
    members = [m for m in the_lab.ps(all=all_) if not services or m.service in services]
    if quiet:
        for m in members:
            click.echo(m.container.id)
        return
    if services_only:
        for name in dict.fromkeys(m.service for m in members):
            click.echo(name)
        return
    rows = [["NAME", "SERVICE", "NODE", "STATUS", "ADDRESSES", "PORTS"]]
    names = {m.container.id: m.name for m in the_lab.ps()}
    for m in members:
        c = m.container
        status = render.container_status(c)
        health = the_lab.health(m)
        if health:
            status += f" ({health})"
        addrs = ", ".join(f"{ep.network_name}={ep.ipv4_address or ep.ipv6_address}" for ep in c.endpoints)
        if not c.endpoints:
            addrs = c.network_mode if not c.shares_netns_of else \
                f"container:{names.get(c.shares_netns_of, c.shares_netns_of[:12])}"
        ports = ", ".join(f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.proto}" for p in c.ports)
        rows.append([m.name, m.service, m.node or "host", status, addrs, ports])
    for line in render.tabulate(rows):
        click.echo(line)


@lab.command("config")
@project_options
@click.option("--services", "what", flag_value="services", help="Only the service names.")
@click.option("--networks", "what", flag_value="networks", help="Only the network names.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def config(what: str | None, quiet: bool, fmt: str) -> None:
    """Validate the file and print it normalized (defaults filled in, names resolved)."""
    from netkit.labs.project import find_files, load_project
    opts = click.get_current_context().meta.get(_OPTS) or {}
    project = load_project(list(opts.get("files") or ()) or find_files(), project=opts.get("project"),
                           env_files=opts.get("env_files") or (), profiles=opts.get("profiles") or ())
    for w in project.warnings:
        click.echo(f"WARN {w}", err=True)
    if quiet:
        return
    if what == "services":
        click.echo("\n".join(project.services))
        return
    if what == "networks":
        click.echo("\n".join(n.name for n in project.networks.values()))
        return
    data = project.to_dict()
    if fmt == "json":
        click.echo(render.to_json(data))
    else:
        import yaml
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True), nl=False)


@lab.command("scale")
@project_options
@click.argument("counts", nargs=-1, required=True, metavar="SERVICE=N...")
def scale(counts: tuple[str, ...]) -> None:
    """Set the number of containers of services (new ones get the next free numbers)."""
    wanted = _counts(counts, "scale")
    _open().scale(wanted)


@lab.command("exec", cls=VerbatimCommand)
@project_options
@click.option("--index", type=int, default=None, metavar="N", help="Which replica [default: 1].")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(index: int | None, service: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in a service's container; exits with its exit code."""
    the_lab = _open(need_file=False, quiet=True)
    click.get_current_context().exit(the_lab.exec(service, list(command), index=index))


@lab.command("logs")
@project_options(short_file=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("--no-prefix", is_flag=True, help="Do not prefix lines with the container name.")
@click.argument("services", nargs=-1)
def logs(follow: bool, no_prefix: bool, services: tuple[str, ...]) -> None:
    """Show the output of the lab's containers."""
    the_lab = _open(need_file=False, quiet=True)
    _known_services(the_lab, services)
    if follow:
        try:
            _follow(the_lab, services, prefix=not no_prefix, until_exit=False)
        except KeyboardInterrupt:
            pass
        return
    width = max((len(m.name) for m, _ in the_lab.logs()), default=0)
    for m, text in the_lab.logs():
        if services and m.service not in services:
            continue
        for line in text.splitlines():
            click.echo(line if no_prefix else f"{m.name.ljust(width)} | {line}")


def _known_services(the_lab: "Lab", services: tuple[str, ...]) -> None:
    """Compose's check of service arguments: the file's services (else the running ones)."""
    from netkit.errors import InvalidArgument
    known = set(the_lab.project.services) if the_lab.project is not None else {
        m.service for m in the_lab.ps()}
    for name in services:
        if name not in known:
            raise InvalidArgument(f"no such service: {name}")


def _follow(the_lab: "Lab", services: tuple[str, ...] | None, *, prefix: bool, until_exit: bool) -> None:
    """Tail every container's log; with `until_exit`, stop once none runs or restarts (after
    printing what they wrote last)."""
    from netkit.agent import logs
    from netkit.labs.lifecycle import has_process
    followers: dict[str, object] = {}
    while True:
        members = [m for m in the_lab.ps() if not services or m.service in services]
        done = until_exit and not any(has_process(m) for m in members)
        width = max((len(m.name) for m in members), default=0)
        for m in members:
            f = followers.get(m.container.id)
            if f is None:
                f = followers[m.container.id] = logs.follow(the_lab.log_dir(m), 0)
            for e in next(f)[1]:                                          # type: ignore[call-overload]
                for line in e.text.splitlines():
                    click.echo(line if not prefix else f"{m.name.ljust(width)} | {line}")
        if done:
            return
        time.sleep(0.3)


@lab.command("graph")
@project_options
@click.option("-o", "--output", metavar="FILE", help="Write FILE.svg, .png, .pdf, .dot or .mmd.")
@click.option("--format", "fmt", type=click.Choice(["dot", "mmd"]), default="dot",
              help="Text format on stdout when no -o is given.")
def graph(output: str | None, fmt: str) -> None:
    """Draw the running lab: nodes, LANs, networks with subnets, containers with addresses."""
    from netkit.labs import graph as g
    the_lab = _open(need_file=False, quiet=True)
    topo = the_lab.topology()
    if not topo.containers and not topo.networks:
        from netkit.errors import NotFound
        raise NotFound(f"lab {the_lab.name} is not running (nothing to draw): run `netkit lab up -d` first")
    if output is None:
        click.echo(g.render(topo, fmt).decode(), nl=False)
        return
    g.write(topo, output)
    click.echo(output)


@lab.command("test")
@project_options
def test() -> None:
    """Run the file's checks (x-netkit.checks) against the running lab; exit 1 if any failed."""
    from rich.console import Console
    from rich.markup import escape
    the_lab = _open(quiet=True)
    checks = the_lab.project.checks if the_lab.project else []
    if not checks:
        click.echo(f"lab {the_lab.name} has no checks (x-netkit.checks)")
        return
    if not the_lab.ps(all=False):
        from netkit.errors import Conflict
        raise Conflict(f"lab {the_lab.name} is not running: run `netkit lab up -d` first")
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    status = err.status("") if err.is_terminal else None
    t0 = time.monotonic()
    counts = {"passed": 0, "failed": 0, "done": 0}
    for i, check in enumerate(checks, 1):
        if status is not None:
            status.update(f"[{i}/{len(checks)}] {escape(check.title)}")
            status.start()
        result = the_lab.check(check)
        if status is not None:
            status.stop()
        counts[result.status] += 1
        colour = {"passed": "green", "done": "blue", "failed": "red"}[result.status]
        out.print(f"[{colour}]{result.status.upper():6}[/] {escape(check.title)}  [dim]{result.seconds:.1f}s[/]")
        for line in result.evidence.splitlines():
            out.print(f"       {escape(line)}")
    summary = f"{counts['passed']} passed, {counts['failed']} failed"
    if counts["done"]:
        summary += f", {counts['done']} steps"
    out.print(f"{summary} in {time.monotonic() - t0:.1f}s")
    sys.stdout.flush()
    if counts["failed"]:
        click.get_current_context().exit(1)
