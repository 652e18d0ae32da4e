"""`netkit version`: Docker's `docker version` (Client and Server sections, ``--format``).

netkit has no daemon: the "server" is the engine of the node in effect
(--node / NETKIT_NODE, Docker's context), made of netkit itself, pyroute2
and nftables. Nothing here opens an Engine or touches the kernel.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import click

from netkit import __version__

# uname's machine names as Go's GOARCH, which Docker shows in OS/Arch
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
          "i686": "386", "i386": "386"}
TAB_MIN_WIDTH = 20              # docker's tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)


def arch() -> str:
    machine = os.uname().machine
    return GOARCH.get(machine, machine)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def nft_version() -> str:
    """``nft --version`` (``nftables v1.0.6 (Lester Gooch #5)`` -> ``1.0.6``); "" if absent."""
    import shutil
    import subprocess
    nft = shutil.which("nft")
    if nft is None:
        return ""
    try:
        out = subprocess.run([nft, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    words = out.split()
    return words[1].lstrip("v") if len(words) > 1 else ""


def version_data(context: str | None) -> dict[str, Any]:
    """What `docker version --format '{{json .}}'` prints, with netkit's fields."""
    import platform
    python = f"{platform.python_implementation()} {platform.python_version()}"
    client = {"Platform": {"Name": "netkit"}, "Version": __version__,
              "PythonVersion": python, "Os": "linux", "Arch": arch(),
              "Context": context or "default"}
    engine = {"Name": "Engine", "Version": __version__,
              "Details": {"PythonVersion": python, "Os": "linux", "Arch": arch(),
                          "KernelVersion": os.uname().release}}
    components = [engine]
    for name, found in (("pyroute2", _package_version("pyroute2")), ("nftables", nft_version())):
        if found:
            components.append({"Name": name, "Version": found, "Details": {}})
    server = {"Platform": {"Name": "netkit Engine"}, "Components": components,
              "Version": __version__, "PythonVersion": python, "Os": "linux", "Arch": arch(),
              "KernelVersion": os.uname().release}
    return {"Client": client, "Server": server}


def tab_lines(rows: list[tuple[str, str] | str]) -> list[str]:
    """docker's tabwriter (min width 20, padding 1) over ``(cell, value)`` rows; a plain
    string is a line of its own that ends the block of aligned rows."""
    out: list[str] = []
    block: list[tuple[str, str]] = []

    def flush() -> None:
        width = max([TAB_MIN_WIDTH] + [len(cell) + 1 for cell, _ in block])
        out.extend(f"{cell:<{width}}{value}".rstrip() for cell, value in block)
        block.clear()
    for row in rows:
        if isinstance(row, str):
            flush()
            out.append(row)
        else:
            block.append(row)
    flush()
    return out


def version_text(data: Mapping[str, Any]) -> list[str]:
    """`docker version`'s default output for `data` (see version_data)."""
    c, s = data["Client"], data["Server"]
    rows: list[tuple[str, str] | str] = [
        f"Client: {c['Platform']['Name']}", (" Version:", c["Version"]),
        (" Python version:", c["PythonVersion"]), (" OS/Arch:", f"{c['Os']}/{c['Arch']}"),
        (" Context:", c["Context"]), "", f"Server: {s['Platform']['Name']}"]
    for comp in s["Components"]:
        rows.append(f" {comp['Name']}:")
        rows.append(("  Version:", comp["Version"]))
        if comp["Name"] == "Engine":
            d = comp["Details"]
            rows += [("  Python version:", d["PythonVersion"]),
                     ("  OS/Arch:", f"{d['Os']}/{d['Arch']}"),
                     ("  Kernel version:", d["KernelVersion"])]
    return tab_lines(rows)


def format_object(fmt: str, data: Any) -> str:
    """`--format` of `version` and `info`: ``json`` (one line) or a Go template; a template
    that does not parse exits 64, as Docker's."""
    import json
    if fmt.strip() == "json":
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    from netkit.cli.render import Template, TemplateError
    text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    try:
        tmpl = Template(text)
    except TemplateError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(64) from None
    return tmpl.render(data)


@click.command("version")
@click.option("-f", "--format", "fmt", metavar="FORMAT",
              help="json, or a Go template (e.g. '{{.Server.Version}}').")
def version(fmt: str | None) -> None:
    """Show the netkit version information.

    \b
    Examples:
      netkit version
      netkit version --format '{{.Client.Version}}'
      netkit version --format json
    """
    data = version_data(click.get_current_context().find_root().params.get("node"))
    if fmt:
        click.echo(format_object(fmt, data))
    else:
        click.echo("\n".join(version_text(data)))
