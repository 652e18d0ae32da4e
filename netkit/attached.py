"""Network namespaces the caller owns, attached to netkit networks (`AttachedSandboxes`).

A runtime that makes its own network namespace (containerd, CRI-O, Podman's
CNI backend: netkit/cni/ is that plugin) asks netkit to wire it: `attach`
gives the namespace one interface on a netkit network (address from the
network's IPAM, the driver's join, a default route when it has none, its
names in the embedded DNS) and `detach` takes that interface away again.

The sandbox is recorded as a container without a command whose
``options["external"]`` says whose it is: ``{"netns": the path given,
"sandbox": the caller's key (CNI_CONTAINERID), "ino": the namespace's
inode}``. netkit names the namespace for itself with a bind under
/run/netns (as ``ip netns attach``), so that the drivers, the kernel
sessions and the resolver (which listens on 127.0.0.11 inside every
sandbox) find it as they find their own; dropping that name never frees
the namespace while its owner holds it. Unlike a container netkit made,
nothing here ever kills a process, deletes the namespace or makes a mount
or UTS namespace: detach removes only what attach made (the interface, its
addresses and routes go with it, the records, the bind and the run dir).
The record is ``running`` in netkit's lifecycle from the first attach to
the last detach (its names resolve and it holds its addresses); it has no
pid, so `ps` and `inspect` show it as Docker's ``created`` (`Container.status`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Sequence

from netkit import planning
from netkit.errors import Conflict, Forbidden, InvalidArgument, NotFound
from netkit.ids import CONTAINER_NAME_RE, new_id, now
from netkit.kernel import netns as kns
from netkit.model import Container, Endpoint, EndpointConfig, State
from netkit.paths import NETNS_PREFIX, container_netns
from netkit.specs import EndpointSpec

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.containers import Containers
    from netkit.drivers.base import DriverContext
    from netkit.endpoints import Endpoints
    from netkit.model import Network, Node
    from netkit.paths import NodePaths
    from netkit.resolver import ResolverClient
    from netkit.store import Store, Tx

HEX64 = re.compile(r"^[0-9a-f]{64}$")
IFNAME = re.compile(r"^[^/\s:]{1,15}$")


def netns_file(netns: str | int) -> str:
    """The namespace file `netns` names: a PID (its /proc/PID/ns/net), a path, or a name
    under /run/netns (as ``ip netns``)."""
    if isinstance(netns, int) or (isinstance(netns, str) and netns.isdigit()):
        return f"/proc/{int(netns)}/ns/net"
    if not netns:
        raise InvalidArgument("no network namespace given")
    return netns if netns.startswith("/") else kns.netns_path(netns)


def netns_identity(path: str) -> tuple[int, int]:
    """(device, inode) of the network namespace at `path`; refused unless it is one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"network namespace {path} not found") from None
    except OSError as exc:
        raise InvalidArgument(f"network namespace {path}: {exc.strerror}") from None
    if st.st_dev != os.stat("/proc/self/ns/net").st_dev:      # nsfs: one superblock
        raise InvalidArgument(f"{path} is not a network namespace")
    return st.st_dev, st.st_ino


def external(ctr: Container) -> dict | None:
    """What an attached sandbox records of its owner's namespace (None: netkit made it)."""
    ext = ctr.options.get("external")
    return ext if isinstance(ext, dict) else None


class AttachedSandboxes:
    """The caller-owned network namespaces attached to one node's networks."""

    def __init__(self, store: "Store", actions: "Actions", paths: "NodePaths", node: "Node",
                 endpoints: "Endpoints", containers: "Containers",
                 resolver: "ResolverClient") -> None:
        self.store = store
        self.actions = actions
        self.paths = paths
        self.node = node
        self.endpoints = endpoints
        self.containers = containers
        self.resolver = resolver

    # -- lookups -------------------------------------------------------------------------
    def find(self, tx: "Tx", *, sandbox: str | None = None,
             ident: tuple[int, int] | None = None, path: str | None = None) -> Container | None:
        """The attached sandbox with the caller's key `sandbox`, else with namespace `ident`
        (or, when the namespace is gone, the path it was attached by)."""
        found = [c for c in tx.containers() if external(c) is not None]
        for ctr in found:
            ext = external(ctr)
            assert ext is not None
            if sandbox is not None:
                if ext.get("sandbox") == sandbox:
                    return ctr
            elif ident is not None:
                if tuple(ext.get("ino") or ()) == ident:
                    return ctr
            elif path is not None and ext.get("netns") == path:
                return ctr
        return None

    def lookup(self, netns: str | int | None, *, sandbox: str | None = None) -> Container | None:
        """The attached sandbox of the caller's key `sandbox`, else of namespace `netns`."""
        tx = self.store.read()
        if sandbox:
            return self.find(tx, sandbox=sandbox)
        if netns in (None, ""):
            return None
        path = netns_file(netns)
        if not os.path.exists(path):
            return self.find(tx, path=path)
        return self.find(tx, ident=netns_identity(path))

    def _refuse_netkit_owned(self, ident: tuple[int, int], path: str) -> None:
        """Never the node's own namespace, the real host's, or one netkit made (a node, a LAN,
        a container): their interfaces are not the caller's to be given."""
        own = [kns.netns_path(self.node.netns) if self.node.netns else "/proc/1/ns/net",
               "/proc/1/ns/net"]
        own += [kns.netns_path(n) for n in kns.list_netns() if n.startswith(NETNS_PREFIX)]
        for other in own:
            try:
                st = os.stat(other)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == ident:
                raise Forbidden(f"network namespace {path} belongs to netkit or to the host: "
                                "only a namespace the caller made can be attached")

    # -- attach ---------------------------------------------------------------------------
    def attach(self, netns: str | int, network: str, *, ifname: str = "eth0",
               name: str | None = None, aliases: Sequence[str] = (), ip: str | None = None,
               ip6: str | None = None, mac: str | None = None,
               sandbox: str | None = None) -> tuple[Container, Endpoint]:
        """Give the namespace `netns` the interface `ifname` on `network`; see Engine.attach."""
        if isinstance(aliases, str):
            raise InvalidArgument("aliases must be a sequence of names, not a string")
        if not IFNAME.match(ifname):
            raise InvalidArgument(f"invalid interface name: {ifname!r}")
        if name is not None and not CONTAINER_NAME_RE.match(name.lstrip("/")):
            raise InvalidArgument(f"Invalid container name ({name}), only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        path = netns_file(netns)
        ident = netns_identity(path)
        with self.actions() as (tx, ctx):
            net = planning.find_network(tx, network)
            ctr = self.find(tx, sandbox=sandbox) if sandbox else None
            ctr = ctr or self.find(tx, ident=ident)
            if ctr is None:
                self._refuse_netkit_owned(ident, path)
                ctr = self._record(tx, ctx, path, ident, name, sandbox)
            elif tuple(external(ctr).get("ino") or ()) != ident:             # type: ignore[union-attr]
                raise Conflict(f"sandbox {sandbox} is attached to another network namespace")
            elif ctr.state is not State.RUNNING:       # `netkit stop` left it: live again
                tx.set_container_state(ctr.id, State.RUNNING)
            if any(ep.network_id == net.id for ep in ctr.endpoints):
                raise Conflict(f"endpoint with name {ctr.name} already exists in network {net.name}")
            box = ctx.kernel.netns(ctr.netns)
            if box.link_index(ifname) is not None:
                raise Conflict(f"interface {ifname} already exists in network namespace {path}")
            plan = planning.plan_endpoint(net, EndpointSpec(net.id, tuple(aliases), ip, ip6, mac),
                                          ctr.endpoints)
            plan = dataclasses.replace(plan, ifname=ifname)
            ep = self.endpoints.join(tx, ctx, net, ctr, plan)
            self._default_route(ctx, ctr, net, ep)
            tx.set_netconfig(ctr.id, (*ctr.netconfig, EndpointConfig(
                net.id, plan.aliases, plan.static_ipv4, plan.static_ipv6, plan.mac)))
            eps = [*ctr.endpoints, ep]
            self.containers.write_files(ctx.kernel.journal, tx, ctr, eps)
            if net.name == "bridge":
                self.containers.firewall.sync(tx, ctx)     # the predefined bridge's first use
            # last (the kernel gives lo 127.0.0.1 when it first comes up, for good): the
            # resolver listens on 127.0.0.11 there
            if not any(link["ifname"] == "lo" and link.get("state") == "up" for link in box.links()):
                box.up("lo")
            ctr = tx.container(ctr.id) or ctr
        self.resolver.after_change(ctr.id)
        return ctr, ep

    def _record(self, tx: "Tx", ctx: "DriverContext", path: str, ident: tuple[int, int],
                name: str | None, sandbox: str | None) -> Container:
        """The store's record of a newly attached namespace, its name under /run/netns and
        its run dir (the sandbox's /etc/hosts and resolv.conf, for the caller to use)."""
        cid = sandbox if sandbox and HEX64.match(sandbox) and tx.container(sandbox) is None \
            else new_id()
        cname = planning.container_name(tx, name)
        bind = container_netns(self.node.name, cid)
        ctr = Container(id=cid, name=cname, hostname=cname[:63], created=now(),
                        network_mode="attached", netns=bind, state=State.RUNNING,
                        started_at=now(),
                        options={"external": {"netns": path, "sandbox": sandbox,
                                              "ino": list(ident)}})
        d = self.paths.container_dir(cid)
        os.makedirs(d, exist_ok=True)
        ctx.kernel.journal.push(f"remove {d}", lambda: _rmtree(d))
        kns.bind_netns(bind, path)
        ctx.kernel.journal.push(f"drop the name {bind}", lambda: kns.delete_netns(bind))
        tx.insert_container(ctr)
        return ctr

    def _default_route(self, ctx: "DriverContext", ctr: Container, net: "Network",
                       ep: Endpoint) -> None:
        """A default route via the network's gateway, unless the namespace has one (its
        owner's, or an earlier network's): the caller's routes are never replaced."""
        import socket
        box = ctx.kernel.netns(ctr.netns)
        for gw, have, family in ((net.gateway_v4, ep.ipv4, socket.AF_INET),
                                 (net.gateway_v6, ep.ipv6, socket.AF_INET6)):
            if gw and have and not any(r.get("dst") in (None, "default") and not r.get("dst_len")
                                       for r in box.routes(family)):
                box.add_route(gateway=gw, family=family)

    # -- detach ---------------------------------------------------------------------------
    def detach(self, netns: str | int | None, network: str, *,
               sandbox: str | None = None) -> bool:
        """Remove the interface netkit gave the namespace on `network`; see Engine.detach."""
        path = netns_file(netns) if netns not in (None, "") else None
        ident = None
        if path is not None and os.path.exists(path):
            ident = netns_identity(path)
        with self.actions() as (tx, ctx):
            ctr = self.find(tx, sandbox=sandbox) if sandbox else None
            if ctr is None and sandbox is None:
                ctr = self.find(tx, ident=ident) if ident else self.find(tx, path=path)
            if ctr is None:
                return False
            net = planning.find_network(tx, network)
            ep = next((e for e in ctr.endpoints if e.network_id == net.id), None)
            if ep is None:
                if not ctr.endpoints:       # `netkit stop` took them all: forget it now
                    self._forget(tx, ctx, ctr)
                return False
            self.endpoints.leave(tx, ctx, net, ep, ctr)
            tx.delete_endpoint(ep.id)
            tx.set_netconfig(ctr.id, tuple(c for c in ctr.netconfig if c.network_id != net.id))
            rest = [e for e in ctr.endpoints if e.id != ep.id]
            if rest:
                self.containers.write_files(ctx.kernel.journal, tx, ctr, rest)
            else:
                self._forget(tx, ctx, ctr)
            if net.name == "bridge":
                self.containers.firewall.sync(tx, ctx)
        self.resolver.after_change(ctr.id)
        return True

    def _forget(self, tx: "Tx", ctx: "DriverContext", ctr: Container) -> None:
        """The last network left: the record, netkit's name for the namespace and the run dir
        go when the action commits (the namespace itself stays its owner's)."""
        tx.delete_container(ctr.id)
        assert ctr.netns is not None
        ctx.kernel.delete_netns(ctr.netns)
        d = self.paths.container_dir(ctr.id)
        ctx.kernel.journal.defer(f"remove {d}", lambda: _rmtree(d))


def _rmtree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
