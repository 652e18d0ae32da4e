"""`netkit dns status | logs`: the node's embedded resolver."""

from __future__ import annotations

import time

import click

from netkit.cli import engine


@click.group()
def dns() -> None:
    """The embedded DNS resolver (127.0.0.11 in every container on a user network)."""


@dns.command()
def status() -> None:
    """Show whether the resolver runs, its pid and what it serves."""
    st = engine().dns_status()
    if not st.get("running"):
        click.echo("resolver: not running")
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.get("started") or 0))
        click.echo(f"resolver: running (pid {st['pid']}, since {started})")
        click.echo(f"version:  {st.get('version')}")
        click.echo(f"containers served: {st.get('sandboxes')}")
    if st.get("applied") is not None:         # a swarm member: its node agent's sync
        click.echo(f"agent: cluster version {st['applied']} applied (overlay peers and names)")


@dns.command()
@click.option("-n", "--tail", type=int, default=0, help="Only the last N lines.")
def logs(tail: int) -> None:
    """Print the resolver's log."""
    lines = engine().dns_log().splitlines()
    for line in lines[-tail:] if tail else lines:
        click.echo(line)
