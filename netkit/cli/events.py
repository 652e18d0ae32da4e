"""`netkit events`: Docker's `docker events` for the node's networks and containers."""

from __future__ import annotations

import click

from netkit.cli import engine


@click.command("events")
@click.option("--since", metavar="TIME",
              help="Show events since a timestamp (Unix, RFC 3339) or a duration before now.")
@click.option("--until", metavar="TIME", help="Stream events until this timestamp.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="type=network|container, event, network, container (repeatable).")
@click.option("--format", "fmt", metavar="FORMAT", help="json or a Go-style template.")
def events(since: str | None, until: str | None, filters: tuple[str, ...],
           fmt: str | None) -> None:
    """Get real time events: network create/connect/disconnect/destroy and container
    create/start/die/kill/stop/restart/rename/destroy. Without --until it follows new events
    until interrupted (Ctrl-C)."""
    import json

    from netkit.events import parse_filters
    parse_filters(filters)                                # a bad filter: before anything else
    template = None
    if fmt and fmt.strip() != "json":
        from netkit.cli.template import Template
        template = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
    stream = engine().events(since, until, filters)
    try:
        for ev in stream:
            if fmt is None:
                click.echo(ev.line())
            elif template is None:
                click.echo(json.dumps(ev.to_json(), separators=(",", ":")))
            else:
                doc = ev.to_json()
                click.echo(template.render({"Type": ev.type, "Action": ev.action,
                                            "Actor": doc["Actor"], "Scope": "local",
                                            "Time": ev.time, "TimeNano": ev.time_nano}))
    finally:
        stream.close()
