"""Keep the node's resolver in step with the store (ARCHITECTURE.md §5).

After every committed change that can affect names, the engine calls
`sync()`: it builds the resolver's snapshot (pure, from the store), writes
it, and starts or signals the node's resident resolver, waiting until it
serves the new version, so a name resolves as soon as `run` or `connect`
returns. When no container needs DNS any more, the resolver is stopped.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from netkit import drivers
from netkit.model import Container, Network, State
from netkit.sandbox import dns_names, parse_resolv

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.store import Tx


def _has_dns(net: Network) -> bool:
    return net.user_defined and drivers.get(net.driver).has_dns


def _order(nets: list[Network], eps_by_net: dict[str, object]) -> list[Network]:
    """Docker's sandbox order for name lookups: non-internal, dual-stack, then name."""
    return sorted(nets, key=lambda n: (n.internal, not (n.ipv4 and n.ipv6), n.name))


def build_snapshot(tx: "Tx", containers: list[Container], host_servers: list[str]) -> dict:
    """The resolver's input (netkit.dns.daemon's snapshot contract), from store rows."""
    nets = {n.id: n for n in tx.networks()}
    names = {c.id: c.name for c in containers}
    snap_nets: dict[str, dict] = {}
    sandboxes, endpoints = [], []
    for c in containers:
        if c.state is State.EXITED:
            continue                                     # stopped containers do not resolve
        dns_eps = [ep for ep in c.endpoints if _has_dns(nets[ep.network_id])]
        for ep in dns_eps:
            net = nets[ep.network_id]
            snap_nets[net.id] = {"name": net.name, "order": net.options.get("netkit.dns.order", "rr")}
            endpoints.append({"container_id": c.id, "container_name": c.name, "network_id": net.id,
                              "ipv4": ep.ipv4_address, "ipv6": ep.ipv6_address,
                              "names": dns_names(c.name, ep.aliases, c.short_id, c.hostname)})
        if not dns_eps or not c.netns or c.shares_netns_of:
            continue
        links: dict[str, str] = {}
        for ep in dns_eps:
            for link in ep.links:
                target, _, alias = link.partition(":")
                target = names.get(target, target).lstrip("/")
                links[(alias or target).lower()] = target.lower()
        ordered = _order([nets[ep.network_id] for ep in dns_eps], {})
        external = any(not nets[ep.network_id].internal and (nets[ep.network_id].gateway_v4 or
                                                            nets[ep.network_id].gateway_v6)
                       for ep in c.endpoints)
        sandboxes.append({"container_id": c.id, "netns": c.netns,
                          "networks": [n.id for n in ordered], "links": links,
                          "upstreams": list(c.dns)[:3], "host_upstreams": host_servers[:3],
                          "external": external})
    return {"version": time.time_ns(), "sandboxes": sandboxes, "networks": snap_nets,
            "endpoints": endpoints}


class DnsMixin:
    def _dns_run_dir(self: "Engine") -> str:
        return self.paths.run

    def _host_servers(self: "Engine") -> list[str]:
        servers, _, _ = parse_resolv(self._node_resolv())
        return [s for s in servers if s != "127.0.0.11"]

    def _after_change(self: "Engine", *container_ids: str) -> None:
        """Reload the resolver after a change to these containers (start it on demand,
        stop it when unused)."""
        from netkit.dns import daemon
        tx = self.store.read()
        snap = build_snapshot(tx, tx.containers(), self._host_servers())
        run_dir = self._dns_run_dir()
        if not snap["sandboxes"]:
            if os.path.exists(os.path.join(run_dir, "dns", "resolver.pid")):
                daemon.stop(run_dir)
            return
        daemon.write_snapshot(run_dir, snap)
        daemon.sync(run_dir, self.node.netns)

    def dns_status(self: "Engine") -> dict:
        """`netkit dns status`: pid, running, served version and sandboxes."""
        from netkit.dns import daemon
        return daemon.status(self._dns_run_dir())

    def dns_log(self: "Engine") -> str:
        """`netkit dns logs`: the resolver's log file."""
        try:
            with open(os.path.join(self._dns_run_dir(), "dns", "resolver.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _dns_needed(self: "Engine") -> bool:
        tx = self.store.read()
        return bool(build_snapshot(tx, tx.containers(), [])["sandboxes"])

    def _check_extra(self: "Engine") -> list[str]:
        if self._dns_needed() and not self.dns_status().get("running"):
            return ["resolver: not running (containers on DNS networks need it; "
                    "the next netkit action restarts it)"]
        return []

    def _reset_extra(self: "Engine") -> list[str]:
        from netkit.dns import daemon
        if os.path.exists(os.path.join(self._dns_run_dir(), "dns", "resolver.pid")):
            daemon.stop(self._dns_run_dir())
            return ["resolver"]
        return []
