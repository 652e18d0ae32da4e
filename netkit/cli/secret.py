"""`netkit secret|config create|ls|inspect|rm`: swarm secrets and configs (on a manager node).

Both groups are made by one factory (`_group`): the commands differ only in
the noun, `ls`'s DRIVER column (secrets only) and inspect's data (a
config's Spec.Data, base64; never a secret's value).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from netkit.cli import AliasGroup, each, engine, show_found
from netkit.cli.parse import key_values

SECRET_HEADERS = {"ID": "ID", "Name": "NAME", "Driver": "DRIVER", "CreatedAt": "CREATED",
                  "UpdatedAt": "UPDATED", "Labels": "LABELS"}
SECRET_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
CONFIG_TABLE = "{{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"


def _row(obj: Any) -> dict[str, str]:
    from netkit.cli.render import ago, labels_text
    return {"ID": obj.id, "Name": obj.name, "Driver": "", "CreatedAt": ago(obj.created),
            "UpdatedAt": ago(obj.updated), "Labels": labels_text(obj.labels)}


def _pretty(kind: str, obj: Any) -> str:
    """docker's `inspect --pretty` text."""
    import base64
    lines = [f"ID:              {obj.id}", f"Name:              {obj.name}"]
    if obj.labels:
        lines.append("Labels:")
        lines += [f" - {k}={v}" if v else f" - {k}" for k, v in sorted(obj.labels.items())]
    if kind == "secret":
        lines.append("Driver:")
    lines += [f"Created at:        {obj.created}", f"Updated at:        {obj.updated}"]
    if kind == "config":
        lines += ["Data:", base64.b64decode(obj.data).decode(errors="replace").rstrip("\n")]
    return "\n".join(lines)


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        from netkit.errors import InvalidArgument
        raise InvalidArgument(f"error reading content from \"{source}\": {exc.strerror}") from None


def _group(kind: str) -> click.Group:
    title = kind.capitalize()
    calls = {"create": f"{kind}_create", "ls": f"{kind}s", "get": kind, "rm": f"{kind}_remove"}

    def call(name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(engine(), calls[name])(*args, **kwargs)

    @click.group(kind, cls=AliasGroup, help=f"Manage swarm {kind}s (on a manager node).")
    def group() -> None:
        pass

    @group.command("create")
    @click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE",
                  callback=key_values("--label", bare_ok=True), help=f"{title} labels.")
    @click.argument("name")
    @click.argument("source", metavar="FILE|-")
    def create(labels: dict[str, str], name: str, source: str) -> None:
        click.echo(call("create", name, _read(source), labels).id)
    create.help = f"Create a {kind} from a file or STDIN (-) as content; prints its ID."

    @group.command("ls")
    @click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
    @click.option("--format", "fmt", metavar="FORMAT", help="table, json or a Go-style template.")
    def ls(quiet: bool, fmt: str | None) -> None:
        from netkit.cli.render import format_rows
        rows = [_row(o) for o in call("ls")]
        table = SECRET_TABLE if kind == "secret" else CONFIG_TABLE
        for line in format_rows("{{.ID}}" if quiet else fmt, rows, SECRET_HEADERS, table):
            click.echo(line)
    ls.help = f"List {kind}s, sorted by name."

    @group.command("inspect")
    @click.option("--pretty", is_flag=True, help="Print the information in a human friendly format.")
    @click.option("-f", "--format", "fmt", metavar="TEMPLATE", help=f"Go-style template per {kind}.")
    @click.argument("refs", nargs=-1, required=True, metavar=f"{kind.upper()}...")
    def inspect(pretty: bool, fmt: str | None, refs: tuple[str, ...]) -> None:
        from netkit.services.secrets import inspect_json
        call("ls")                         # off swarm or on a worker: that one error first
        if pretty:
            each(refs, lambda ref: call("get", ref), show=lambda ref, obj: _pretty(kind, obj))
            return
        show_found(fmt, refs, lambda ref: inspect_json(kind, call("get", ref)))
    inspect.help = (f"Display detailed information on {kind}s (Docker's JSON"
                    + ("; never the value)." if kind == "secret" else "; Spec.Data is base64)."))

    @group.command("rm")
    @click.argument("refs", nargs=-1, required=True, metavar=f"{kind.upper()}...")
    def rm(refs: tuple[str, ...]) -> None:
        each(refs, lambda ref: call("rm", ref))
    rm.help = f"Remove {kind}s (refused while a service uses one); prints each one removed."

    return group


secret = _group("secret")
config = _group("config")
