"""Embedded DNS on 127.0.0.11, Docker style: one resolver for every sandbox of a node.

    entries   what the resolver is told: typed records (SandboxEntry, EndpointEntry,
              NetworkEntry, per container ContainerEntries, Snapshot) and their JSON form
    records   containers' names and PTRs per network -> tables of precomputed replies (pure)
    catalog   the sandboxes served and their tables (pure),
              built in full or updated one container at a time
    wire      hand-written header/question parsing and reply building
    server    the asyncio loop: sockets inside each sandbox netns
    upstream  forwarding of unknown names
    daemon    the resident process (reads the node's store; `update <ids>` per change)
    client    its control side: update/ensure_running/notify/stop/status (what the
              engine imports; it imports nothing of the daemon)

Importing this package is cheap: the names below load their module on use.
"""

from __future__ import annotations

__all__ = ["Resolver", "update", "ensure_running", "notify", "stop", "status",
           "write_snapshot", "load_snapshot", "build_tables"]


def __getattr__(name: str):
    if name == "build_tables":
        from netkit.dns.catalog import build
        return build
    if name == "Resolver":
        from netkit.dns import daemon
        return daemon.Resolver
    if name in __all__:
        from netkit.dns import client
        return getattr(client, name)
    raise AttributeError(f"module 'netkit.dns' has no attribute {name!r}")
