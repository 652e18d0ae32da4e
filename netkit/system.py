"""`netkit system check|prune|reset`: compare what the store says with the kernel (`System`).

Kernel objects netkit owns on a node are found by name and tag, never by
guessing: container namespaces `nkc-<node>-<id12>`, links whose ifalias is
"netkit" in the node's namespace, container run directories and namespace
files (paths.py `NodePaths.ns_file`). Anything
netkit owns that the store does not describe is drift; prune removes it,
and nothing else. Reset removes every container and user network first
(and leaves the swarm, on a member node).
"""

from __future__ import annotations

import os
import functools
import shutil
from typing import TYPE_CHECKING

from netkit import drivers
from netkit.drivers.base import DriverContext
from netkit.kernel import netns as kns
from netkit.kernel import mntns, spawn
from netkit.kernel.session import TAG
from netkit.paths import container_netns_prefix

if TYPE_CHECKING:
    from netkit.actions import Actions, KernelSessions
    from netkit.cluster import ClusterScope
    from netkit.containers import Containers
    from netkit.fwsync import FirewallSync
    from netkit.networks import Networks
    from netkit.paths import NodePaths
    from netkit.processes import Processes
    from netkit.resolver import ResolverClient
    from netkit.store import Store
    from netkit.swarm import Swarm


class System:
    """Drift between one node's store and its kernel, and the removal of what netkit made."""

    def __init__(self, store: "Store", paths: "NodePaths", node_name: str,
                 kernel: "KernelSessions", actions: "Actions", firewall: "FirewallSync",
                 resolver: "ResolverClient", cluster: "ClusterScope", swarm: "Swarm",
                 networks: "Networks", containers: "Containers", processes: "Processes") -> None:
        self.store = store
        self.paths = paths
        self.node_name = node_name
        self.kernel = kernel
        self.actions = actions
        self.firewall = firewall
        self.resolver = resolver
        self.cluster = cluster
        self.swarm = swarm
        self.networks = networks
        self.containers = containers
        self.processes = processes

    def _owned_objects(self) -> dict[str, set[str]]:
        """What the store implies should exist in the kernel (network links: as the drivers say)."""
        from netkit.drivers.checks import owned_links
        tx = self.store.read()
        netns, links, dirs = set(), owned_links(tx), set()
        for ctr in tx.containers():
            dirs.add(ctr.id)
            if ctr.netns and not ctr.shares_netns_of:
                netns.add(ctr.netns)
            for ep in ctr.endpoints:
                if ep.host_ifname:
                    links.add(ep.host_ifname)
        from netkit.services import mesh          # the routing mesh's sandbox links
        links |= mesh.owned_links(tx, self.node_name)
        return {"netns": netns, "links": links, "dirs": dirs}

    def _kernel_objects(self) -> dict[str, set[str]]:
        prefix = container_netns_prefix(self.node_name)
        netns = {n for n in kns.list_netns() if n.startswith(prefix)}
        session = self.kernel.for_queries()
        try:
            all_links = session.host.links()
            # bridges (and LAN ports) carry the tag; veths are found as ports of those bridges
            tagged = {l["index"]: l["ifname"] for l in all_links if l["alias"] == TAG}
            links = set(tagged.values()) | {l["ifname"] for l in all_links
                                            if l["kind"] == "veth" and l["master"] in tagged}
        finally:
            session.close()
        return {"netns": netns, "links": links, "dirs": self.paths.container_ids()}

    def check(self) -> list[str]:
        """Drift between the store and the kernel, one line each ([] = none)."""
        from netkit.drivers.checks import network_drift
        want, have = self._owned_objects(), self._kernel_objects()
        tx = self.store.read()
        session = self.kernel.for_queries()
        try:
            out = network_drift(DriverContext(self.actions.node, session), tx)   # drivers' CNI CHECK
        finally:
            session.close()
        for ctr in tx.containers():
            if ctr.netns and not ctr.shares_netns_of and ctr.netns not in have["netns"]:
                out.append(f"container {ctr.name}: netns {ctr.netns} is missing")
            for ep in ctr.endpoints:
                if ep.host_ifname and ep.host_ifname not in have["links"]:
                    out.append(f"container {ctr.name}: interface {ep.host_ifname} "
                               f"({ep.network_name}) is missing")
        for kind, label in (("netns", "netns"), ("links", "link"), ("dirs", "run dir")):
            for name in sorted(have[kind] - want[kind]):
                if kind == "links" and name == "netkit0" and "netkit0" not in want[kind]:
                    pass
                out.append(f"orphan {label} {name} (not in the store)")
        out.extend(self.firewall.check())
        out.extend(self._check_processes())
        return out

    def _check_processes(self) -> list[str]:
        """The node's resident processes: its agent (supervises containers; on a swarm member
        it also keeps the peers and cluster-wide names up to date) and its resolver."""
        out = []
        why = []
        supervised = bool(self.store.read().count_supervised())
        if supervised:
            why.append("containers keep running")
        if self.cluster.membership() is not None:        # the store may be unreachable
            why.append("this swarm node's peers and cluster-wide names are not kept up to date")
        if why and not self.processes.agent_status()["running"]:
            heals = "command" if supervised else "action"      # ps heals it; actions always do
            out.append(f"node agent: not running ({'; '.join(why)}; the next netkit {heals} "
                       "on this node restarts it)")
        if self.resolver.needed() and not self.resolver.status().get("running"):
            out.append("resolver: not running (containers on DNS networks need it; "
                       "the next netkit action restarts it)")
        out.extend(self.resolver.check())
        return out

    def prune(self) -> list[str]:
        """Remove what netkit owns on this node that the store no longer describes."""
        removed = []
        with self.actions() as (tx, ctx):        # holds the write lock: no action is half-way
            want, have = self._owned_objects(), self._kernel_objects()
            for name in sorted(have["netns"] - want["netns"]):
                for pid in spawn.netns_pids(name):
                    spawn.kill(pid)
                ctx.kernel.delete_netns(name)           # removals: when the action commits
                removed.append(f"netns {name}")
            for name in sorted(have["links"] - want["links"]):
                ctx.kernel.host.delete_link(name)
                removed.append(f"link {name}")
            for name in sorted(have["dirs"] - want["dirs"]):
                d = self.paths.container_dir(name)
                ctx.kernel.journal.defer(f"remove {d}", functools.partial(_remove_run_dir, self.paths, name))
                removed.append(f"run dir {name}")
        from netkit.fwsync import firewall_script
        if self.firewall.check():                  # re-apply what the store implies
            self.firewall.apply(firewall_script(self.store.read()))
            removed.append("firewall: re-applied")
        return removed

    def reset(self) -> list[str]:
        """Remove every container and user network, and everything netkit made on this node
        (a swarm node leaves the swarm first, -f)."""
        removed = []
        if self.cluster.store() is not None:
            self.swarm.leave(force=True)
            removed.append("swarm membership")
        for ctr in self.containers.ps(all=True):
            self.containers.remove(ctr.id, force=True)
            removed.append(f"container {ctr.name}")
        for net in self.networks.ls():
            if not net.predefined:
                self.networks.remove(net.id)
                removed.append(f"network {net.name}")
        with self.actions() as (tx, ctx):
            for net in tx.networks():
                if net.predefined:
                    drivers.get(net.driver).delete_network(ctx, net)
        removed.extend(self.resolver.reset())
        if self.processes.agent_status()["pid"]:
            self.processes.stop_agent()
            removed.append("node agent")
        removed.extend(self.prune())
        self.processes.remove_template()
        return removed


def _remove_run_dir(paths: "NodePaths", cid: str) -> None:
    """A container's run directory, with its UTS and mount namespace files."""
    kns.remove_bind(paths.ns_file(cid, "uts"))
    mntns.remove(paths.ns_file(cid, "mnt"))
    shutil.rmtree(paths.container_dir(cid), ignore_errors=True)
