"""Simulated hosts and LANs (ARCHITECTURE.md §6), managed from the real host.

A LAN is a bridge `lan0` in its own netns `nkl-<lan>`; with `--gateway` the
bridge carries that address and plays the LAN's router. A node is a netns
`nkn-<node>` with its own UTS namespace, /etc files and state sub-root;
with `--lan` its `eth0` is a veth whose peer `n-<node>` is a port of the
LAN bridge. Nothing here touches the real host's interfaces: a LAN has no
uplink, so packets of simulated hosts cannot leave the machine.
`NodeRegistry` owns the node and LAN nouns; a node's own engine hands these
verbs to the registry of the real host.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Callable

from netkit import sandbox
from netkit.drivers.bridge import random_mac
from netkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from netkit.ids import NODE_NAME_RE, now
from netkit.kernel import netns as kns
from netkit.kernel import spawn
from netkit.kernel.session import TAG
from netkit.model import Lan, Node, Scope
from netkit.paths import NodePaths, lan_netns, node_netns, roots_file

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.engine import Engine
    from netkit.store import Store

LAN_BRIDGE = "lan0"
NODE_SYSCTLS = {"ipv6/conf/default/disable_ipv6": "1", "ipv4/ip_forward": "1"}
# br_netfilter off by default in simulated hosts and LANs: only netkit's bridge networks
# turn it on, per bridge (overlay and LAN frames would otherwise each cross nftables and
# conntrack; measured: overlay throughput 76% of raw VXLAN with it, 95% without)
BR_NETFILTER_OFF = ("bridge/bridge-nf-call-iptables", "bridge/bridge-nf-call-ip6tables",
                    "bridge/bridge-nf-call-arptables")


def _cidr(value: str, what: str) -> "object":
    import netaddr
    try:
        return netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidArgument(f"invalid {what}: invalid CIDR address: {value}") from None


class NodeRegistry:
    """The registry of simulated nodes and LANs: it lives on the real host.

    `store` and `actions` are the real host's (a node's engine passes the
    host's store and a runner of its own for it); `open_engine(name)` makes
    the engine of a node (to reset it before it is removed).
    """

    def __init__(self, store: "Store", actions: "Actions", root: str, run_root: str,
                 open_engine: "Callable[[str], Engine]") -> None:
        self.store = store
        self.actions = actions
        self.root = root
        self.run_root = run_root
        self.open_engine = open_engine

    # -- LANs -------------------------------------------------------------------
    def create_lan(self, name: str, subnet: str, gateway: str | None = None) -> Lan:
        """A simulated LAN switch (+ router address)."""
        import netaddr
        if not NODE_NAME_RE.match(name):
            raise InvalidArgument(f"invalid LAN name {name!r}: use 1-13 of [a-z0-9-]")
        net = _cidr(subnet, "subnet")
        if str(net.cidr) != str(net):
            raise InvalidArgument(f"invalid subnet {subnet}: it should be {net.cidr}")
        if gateway is not None:
            try:
                gw = netaddr.IPAddress(gateway)
            except (netaddr.AddrFormatError, ValueError):
                raise InvalidArgument(f"invalid gateway address: {gateway}") from None
            if gw not in net or gw in (net.network, net.broadcast):
                raise InvalidArgument(f"invalid gateway {gateway}: parent subnet {subnet} doesn't contain this address")
        lan = Lan(name=name, subnet=str(net), gateway=gateway, netns=lan_netns(name))
        with self.actions() as (tx, ctx):
            if tx.lan(name):
                raise AlreadyExists(f"lan with name {name} already exists")
            h = ctx.kernel.create_netns(lan.netns, {"ipv6/conf/default/disable_ipv6": "1"})
            for key in BR_NETFILTER_OFF:
                h.sysctl_if_present(key, "0")
            index = h.add_bridge(LAN_BRIDGE, mac=random_mac())
            if gateway:
                h.add_addr(index, gateway, net.prefixlen)
            h.set_link(index, state="up", ifalias=TAG)
            tx.insert_lan(lan)
        return lan

    def lans(self) -> list[Lan]:
        return self.store.read().lans()

    def remove_lan(self, name: str) -> None:
        with self.actions() as (tx, ctx):
            lan = tx.lan(name)
            if lan is None:
                raise NotFound(f"lan {name} not found")
            users = [n.name for n in tx.nodes() if n.lan == name]
            if users:
                raise Conflict(f"lan {name} has nodes attached: {', '.join(users)}")
            tx.delete_lan(name)
            ctx.kernel.delete_netns(lan.netns)

    # -- nodes ------------------------------------------------------------------
    def create_node(self, name: str, *, lan: str | None = None, ip: str | None = None,
                    gateway: str | None = None, dns: tuple[str, ...] = (),
                    state_dir: str | None = None, run_dir: str | None = None) -> Node:
        """A simulated host, optionally plugged into a LAN; `state_dir` / `run_dir`: its
        state / runtime files in directories of its own (new or empty) instead of under
        NETKIT_ROOT / NETKIT_RUN (netkit/paths.py)."""
        import netaddr
        from netkit import ipam
        if not NODE_NAME_RE.match(name):
            raise InvalidArgument(f"invalid node name {name!r}: use 1-13 of [a-z0-9-]")
        for server in dns:
            try:
                ipam.ip_to_int(server)
            except Exception:
                raise InvalidArgument(f"{server} is not an ip address") from None
        if (ip or gateway) and not lan:
            raise InvalidArgument("--ip and --gateway need --lan")
        own = _own_roots(state_dir, run_dir)
        with self.actions() as (tx, ctx):
            if tx.node(name):
                raise AlreadyExists(f"node with name {name} already exists")
            paths = NodePaths.of(name, self.root, self.run_root)
            if own is not None:
                paths = NodePaths(own.root or paths.root, own.run or paths.run)
                _record_roots(ctx, self.root, name, paths)
            the_lan = None
            addr = None
            if lan:
                the_lan = tx.lan(lan)
                if the_lan is None:
                    raise NotFound(f"lan {lan} not found")
                if not ip:
                    raise InvalidArgument("--lan needs --ip CIDR for the node's eth0")
                subnet = netaddr.IPNetwork(the_lan.subnet)
                addr = _cidr(ip if "/" in ip else f"{ip}/{subnet.prefixlen}", "ip")
                if addr.ip not in subnet or addr.ip in (subnet.network, subnet.broadcast):
                    raise InvalidArgument(f"ip {ip} is not in the LAN's subnet {the_lan.subnet}")
                if the_lan.gateway and str(addr.ip) == the_lan.gateway:
                    raise Conflict(f"ip {addr.ip} is the LAN's gateway")
                for other in tx.nodes():
                    if other.lan == lan and other.ip and other.ip.split("/")[0] == str(addr.ip):
                        raise Conflict(f"ip {addr.ip} is already used by node {other.name}")
                gateway = gateway or the_lan.gateway
                if gateway and netaddr.IPAddress(gateway) not in subnet:
                    raise InvalidArgument(f"no matching subnet for gateway {gateway}")
            node = Node(name=name, netns=node_netns(name), lan=lan, ip=str(addr) if addr else None,
                        gateway=gateway if lan else None, dns=tuple(dns), created=now())
            os.makedirs(paths.run, exist_ok=True)
            ctx.kernel.journal.push(f"remove {paths.run}", lambda: shutil.rmtree(paths.run, True))
            h = ctx.kernel.create_netns(node.netns, NODE_SYSCTLS,
                                        uts=(os.path.join(paths.run, "uts"), name))
            for key in BR_NETFILTER_OFF:
                h.sysctl_if_present(key, "0")
            sandbox.write_file(os.path.join(paths.run, "hosts"),
                               sandbox.hosts_file(name, [str(addr.ip)] if addr else [], ipv6=False))
            sandbox.write_file(os.path.join(paths.run, "resolv.conf"),
                               "".join(f"nameserver {s}\n" for s in dns) or "# no nameservers\n")
            if the_lan is not None and addr is not None:
                peer = f"n-{name}"
                lh = ctx.kernel.netns(the_lan.netns)
                lh.add_veth(peer, "eth0", node.netns, peer_mac=random_mac())
                lh.set_link(peer, master=lh.link_index(LAN_BRIDGE), state="up", ifalias=TAG)
                index = h.link_index("eth0")
                assert index is not None
                h.add_addr(index, str(addr.ip), addr.prefixlen)
                h.set_link(index, state="up")
                if gateway:
                    h.add_route(gateway=gateway)
            tx.insert_node(node)
        from netkit.agent import client as agent
        agent.ensure_running(paths.run, node=name, root=self.root, run=self.run_root,
                             netns=node.netns)      # the node's agent, from its first moment
        return node

    def nodes(self) -> list[Node]:
        return self.store.read().nodes()

    def agents(self) -> dict[str, str]:
        """Each simulated node's agent (`netkit node ls` AGENT): "running (pid N)" when it
        answers, else "stopped"."""
        from netkit.agent import client as agent
        out = {}
        for node in self.store.read().nodes():
            st = agent.status(NodePaths.of(node.name, self.root, self.run_root).run)
            out[node.name] = f"running (pid {st['pid']})" if st["running"] else "stopped"
        return out

    def remove_node(self, name: str, *, force: bool = False) -> None:
        """Refused while the node has containers or user networks (unless `force`)."""
        node = self.store.read().node(name)
        if node is None:
            raise NotFound(f"node {name} not found")
        inner = self.open_engine(name)
        failure: BaseException | None = None
        try:
            # the swarm's networks (ingress, overlays) are the cluster's: the node leaves them
            busy = [c.name for c in inner.containers(all=True)] + \
                   [n.name for n in inner.networks() if not n.predefined and n.scope is not Scope.SWARM]
            swarm = {} if force else inner.swarm_info()   # it leaves its swarm (system reset)
            if swarm.get("role") == "manager" and swarm.get("managers") == 1 \
                    and swarm.get("nodes", 1) > 1:
                from netkit.swarm import LAST_MANAGER
                raise Conflict(LAST_MANAGER)
            if busy and not force:
                raise Conflict(f"node {name} is in use ({', '.join(busy)}): use -f to remove it anyway")
            inner.system_reset()
        except Conflict:
            raise
        except Exception as exc:          # -f: clean up by force below, then report
            if not force:
                raise
            failure = exc
        finally:
            inner.close()
        paths = NodePaths.of(name, self.root, self.run_root)
        with self.actions() as (tx, ctx):
            tx.delete_node(name)
            _force_clean(name, paths)
            for pid in spawn.netns_pids(node.netns or ""):
                spawn.kill(pid)
            if node.lan:
                lan = tx.lan(node.lan)
                if lan is not None:
                    ctx.kernel.netns(lan.netns).delete_link(f"n-{name}")
            ctx.kernel.delete_netns(node.netns or "")
            ctx.kernel.journal.defer(f"remove the directories of node {name}", lambda: (
                kns.remove_bind(os.path.join(paths.run, "uts")),
                shutil.rmtree(paths.run, ignore_errors=True),
                shutil.rmtree(paths.root, ignore_errors=True),
                _unlink(roots_file(self.root, name))))
        if failure is not None:
            raise failure

    def node_exec(self, name: str, command: list[str], capture: list[bytes] | None = None) -> int:
        """Run a command on the simulated host itself."""
        node = self.store.read().node(name)
        if node is None:
            raise NotFound(f"node {name} not found")
        if not command:
            raise InvalidArgument("no command given")
        paths = NodePaths.of(name, self.root, self.run_root)
        box = spawn.Sandbox(netns=node.netns, uts=os.path.join(paths.run, "uts"),
                            binds=((os.path.join(paths.run, "hosts"), "/etc/hosts"),
                                   (os.path.join(paths.run, "resolv.conf"), "/etc/resolv.conf")))
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
               "HOSTNAME": name}
        return spawn.run_foreground(box, list(command), env, capture=capture)


def _own_roots(state_dir: str | None, run_dir: str | None) -> NodePaths | None:
    """The node's own roots ("" = the shared one), checked: absolute, new or empty."""
    if not state_dir and not run_dir:
        return None
    for what, d in (("--state-dir", state_dir), ("--run-dir", run_dir)):
        if not d:
            continue
        if not os.path.isabs(d):
            raise InvalidArgument(f"invalid {what} {d}: it must be an absolute path")
        if os.path.exists(d) and (not os.path.isdir(d) or os.listdir(d)):
            raise Conflict(f"{what} {d} is not an empty directory")
    if state_dir and run_dir and os.path.realpath(state_dir) == os.path.realpath(run_dir):
        raise InvalidArgument("--state-dir and --run-dir must be different directories")
    return NodePaths(os.path.realpath(state_dir) if state_dir else "",
                     os.path.realpath(run_dir) if run_dir else "")


def _record_roots(ctx, root: str, name: str, paths: NodePaths) -> None:
    """Make the node's own roots and record them in the host's registry (journaled)."""
    import json
    os.makedirs(os.path.join(root, "nodes"), exist_ok=True)
    for d in (paths.root, paths.run):
        if not os.path.exists(d):
            os.makedirs(d, mode=0o700)
            ctx.kernel.journal.push(f"remove {d}", lambda d=d: shutil.rmtree(d, True))
    path = roots_file(root, name)
    sandbox.write_file(path, json.dumps({"state": paths.root, "run": paths.run}) + "\n")
    ctx.kernel.journal.push(f"remove {path}", lambda: _unlink(path))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _force_clean(node: str, paths: NodePaths) -> None:
    """What a failed reset may leave of a node: its agent, its containers' namespaces,
    their UTS and mount binds and processes, its ingress sandbox and its resolver. Found by
    name, so nothing else is touched."""
    from netkit.agent import client as agent
    from netkit.kernel import mntns
    from netkit.kernel.ingress import sandbox_netns
    from netkit.paths import container_netns_prefix
    agent.stop(paths.run)
    kns.delete_netns(sandbox_netns(node))        # its links' node sides go with the node's netns
    prefix = container_netns_prefix(node)
    for ns_name in kns.list_netns():
        if ns_name.startswith(prefix):
            for pid in spawn.netns_pids(ns_name):
                spawn.kill(pid)
            kns.delete_netns(ns_name)
    for cid in paths.container_ids():
        kns.remove_bind(paths.ns_file(cid, "uts"))
        mntns.remove(paths.ns_file(cid, "mnt"))
    mntns.remove(os.path.join(paths.run, "mnt.template"))
    mntns.release_mount_point(paths.ns_dir)
    mntns.release_mount_point(paths.run)
    try:
        with open(os.path.join(paths.run, "dns", "resolver.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"netkit.dns" in f.read():
                spawn.kill(pid)
    except (OSError, ValueError):
        pass
