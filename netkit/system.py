"""`netkit system check|prune|reset`: compare what the store says with the kernel.

Kernel objects netkit owns on a node are found by name and tag, never by
guessing: container namespaces `nkc-<node>-<id12>`, links whose ifalias is
"netkit" in the node's namespace, container run directories. Anything
netkit owns that the store does not describe is drift; prune removes it,
and nothing else.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from netkit import drivers
from netkit.drivers.base import DriverContext
from netkit.kernel import netns as kns
from netkit.kernel import spawn
from netkit.kernel.session import TAG, KernelSession
from netkit.paths import container_netns_prefix

if TYPE_CHECKING:
    from netkit.engine import Engine


class SystemMixin:
    def _owned_objects(self: "Engine") -> dict[str, set[str]]:
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
        return {"netns": netns, "links": links, "dirs": dirs}

    def _kernel_objects(self: "Engine") -> dict[str, set[str]]:
        prefix = container_netns_prefix(self.node_name)
        netns = {n for n in kns.list_netns() if n.startswith(prefix)}
        session = KernelSession(self.node.netns, cache=self._ipr_cache)
        try:
            all_links = session.host.links()
            # bridges (and LAN ports) carry the tag; veths are found as ports of those bridges
            tagged = {l["index"]: l["ifname"] for l in all_links if l["alias"] == TAG}
            links = set(tagged.values()) | {l["ifname"] for l in all_links
                                            if l["kind"] == "veth" and l["master"] in tagged}
        finally:
            session.close()
        try:
            dirs = set(os.listdir(self.paths.containers_dir))
        except FileNotFoundError:
            dirs = set()
        return {"netns": netns, "links": links, "dirs": dirs}

    def system_check(self: "Engine") -> list[str]:
        """Drift between the store and the kernel, one line each ([] = none)."""
        from netkit.drivers.checks import network_drift
        want, have = self._owned_objects(), self._kernel_objects()
        tx = self.store.read()
        session = KernelSession(self.node.netns, cache=self._ipr_cache)
        try:
            out = network_drift(DriverContext(self.node, session), tx)     # drivers' CNI CHECK
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
        out.extend(self.firewall_check())
        out.extend(self._check_extra())
        return out

    def system_prune(self: "Engine") -> list[str]:
        """Remove what netkit owns on this node that the store no longer describes."""
        removed = []
        with self._action() as (tx, ctx):        # holds the write lock: no action is half-way
            want, have = self._owned_objects(), self._kernel_objects()
            for name in sorted(have["netns"] - want["netns"]):
                for pid in spawn.netns_pids(name):
                    spawn.kill(pid)
                kns.delete_netns(name)
                removed.append(f"netns {name}")
            for name in sorted(have["links"] - want["links"]):
                ctx.kernel.host.delete_link(name)
                removed.append(f"link {name}")
            for name in sorted(have["dirs"] - want["dirs"]):
                d = os.path.join(self.paths.containers_dir, name)
                kns.remove_bind(os.path.join(d, "uts"))
                shutil.rmtree(d, ignore_errors=True)
                removed.append(f"run dir {name}")
        removed.extend(self._prune_extra())
        from netkit.fwsync import firewall_script
        from netkit.kernel import nft
        if self.firewall_check():                  # re-apply what the store implies
            self._apply_script(firewall_script(self.store.read()))
            removed.append("firewall: re-applied")
        return removed

    def _prune_extra(self: "Engine") -> list[str]:
        return []

    def system_reset(self: "Engine") -> list[str]:
        """Remove every container and user network, and everything netkit made on this node."""
        removed = []
        for ctr in self.containers(all=True):
            self.remove_container(ctr.id, force=True)
            removed.append(f"container {ctr.name}")
        for net in self.networks():
            if not net.predefined:
                self.remove_network(net.id)
                removed.append(f"network {net.name}")
        with self._action() as (tx, ctx):
            for net in tx.networks():
                if net.predefined:
                    drivers.get(net.driver).delete_network(ctx, net)
        removed.extend(self._reset_extra())
        removed.extend(self.system_prune())
        return removed

