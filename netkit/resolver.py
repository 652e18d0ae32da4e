"""The engine's handle on its node's resolver (ARCHITECTURE.md §5): `ResolverClient`.

It owns the conversation with the node's resident resolver process: after
every committed change to containers `after_change(ids)` sends `update
<ids>` over the daemon's control socket and returns once the change is
served; it starts the daemon on demand (the first container that needs DNS,
or a daemon that was killed) and stops it on `system reset`. What a
container contributes to the resolver is netkit.dnssync's business (pure);
the daemon itself is netkit.dns.daemon, which the engine never imports: it
speaks to it only through netkit.dns.client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from netkit.dnssync import Networks, container_entries, host_resolv_path

if TYPE_CHECKING:
    from netkit.model import Node
    from netkit.paths import NodePaths
    from netkit.store import Store


class ResolverClient:
    """The resolver of one node: start on demand, tell it what changed, ask its status."""

    def __init__(self, store: "Store", paths: "NodePaths", node: "Node") -> None:
        self.store = store
        self.paths = paths
        self.node = node

    @property
    def run_dir(self) -> str:
        return self.paths.run

    def _host_resolv_path(self) -> str:
        return host_resolv_path(self.paths.run if self.node.simulated else None)

    def start(self) -> int:
        """Start the node's daemon unless it runs; its pid once it answers."""
        from netkit.dns import client
        return client.ensure_running(self.run_dir, self.node.netns, store=self.store.path,
                                     host_resolv=self._host_resolv_path())

    def _needs_dns(self, container_ids: Iterable[str]) -> bool:
        """Does any of these containers need the resolver (a sandbox on a DNS network)?"""
        tx = self.store.read()
        nets = Networks(tx)
        return any(container_entries(tx, tx.container(cid), nets, [])[0] is not None
                   for cid in container_ids)

    def after_change(self, *container_ids: str) -> None:
        """Bring the resolver up to date with these containers (start it on demand).

        Returns once the resolver serves the change. The daemon stops by
        itself when nothing needs it any more.
        """
        from netkit.dns import client
        from netkit.errors import InternalError
        run_dir = self.run_dir
        if client.update(run_dir, container_ids) is not None:
            return
        # no resolver answered: start one if these containers need it, or if
        # one was killed (it served others); it builds everything from the store
        needed = self._needs_dns(container_ids)
        if not (needed or client.crashed(run_dir)):
            return
        try:
            self.start()
        except InternalError:
            if needed:
                raise
            return                  # best effort: `system check` reports it
        # it may have read the store before our commit: tell it anyway
        if client.update(run_dir, container_ids) is None and needed:
            raise InternalError("dns resolver does not answer: see "
                                f"{os.path.join(run_dir, 'dns', 'resolver.log')}")

    def status(self) -> dict:
        """`netkit dns status`: pid, running, served version and sandboxes."""
        from netkit.dns import client
        return client.status(self.run_dir)

    def log(self) -> str:
        """`netkit dns logs`: the resolver's log file."""
        try:
            with open(os.path.join(self.run_dir, "dns", "resolver.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def needed(self) -> bool:
        """Does any container of the node need the resolver? (reads them all)"""
        tx = self.store.read()
        nets = Networks(tx)
        containers = tx.containers()
        names = {c.id: c.name for c in containers}
        return any(container_entries(tx, c, nets, [], names)[0] is not None for c in containers)

    def check(self) -> list[str]:
        """`system check`: every sandbox the resolver serves has its netns' redirect of
        127.0.0.11:53 pointing at the ports it listens on (one line per one that does not)."""
        from netkit.dns import client, redirect
        from netkit.errors import NetkitError
        from netkit.kernel import netns as knetns
        served = client.ports(self.run_dir, timeout=2.0)
        if not served:
            return []
        names = {c.id: c.name for c in self.store.read().containers()}
        out = []
        for cid, (netns, udp, tcp) in sorted(served.items()):
            if cid not in names or not knetns.exists(netns) or (udp, tcp) == (53, 53):
                continue            # gone meanwhile, or served on port 53 itself (no nftables)
            try:
                have = knetns.run_in(netns, redirect.current)
            except (OSError, NetkitError) as exc:
                out.append(f"container {names[cid]}: cannot read its resolver redirect: {exc}")
                continue
            if have != (udp, tcp):
                where = f"udp {have[0]}, tcp {have[1]}" if have else "nowhere"
                out.append(f"container {names[cid]}: 127.0.0.11:53 is redirected to {where}, "
                           f"but the resolver listens on udp {udp}, tcp {tcp}")
        return out

    def stop(self) -> None:
        from netkit.dns import client
        client.stop(self.run_dir)

    def reset(self) -> list[str]:
        """`system reset`: stop the daemon if one was started here."""
        from netkit.dns import client
        if os.path.exists(os.path.join(self.run_dir, "dns", "resolver.pid")):
            client.stop(self.run_dir)
            return ["resolver"]
        return []
