"""Netlink handles per namespace, with every change journaled.

A `KernelSession` lives for one Engine action. `session.netns(name)` gives
a `NetnsHandle` whose methods change the kernel and push their own undo
onto the action's journal. The node's own namespace is `session.host`.

Each handle speaks rtnetlink over a socket created inside the target netns
by the worker thread (see netns.py): the hot path (veth, bridge, address,
route, link state, bridge port flags) through netkit's own small client
(rtnl.py: no pyroute2 import, one round-trip per change), everything else
(macvlan, vlan, vxlan, FDB, neighbours) through a pyroute2 `IPRoute` opened
on first use over another socket of the same netns. Nothing outside this
package sees either: drivers and the agent call the handle's methods, each
counted by the action's FaultPlan, its errors translated (errors.py) and,
when it makes something, its undo journaled. pyroute2's own `netns=` forks a helper per handle and its
sockets are thread-local, so a handle opened on one thread would silently
talk to another netns from the next; handing it a socket avoids both.
"""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from netkit.errors import KernelError, NotFound
from netkit.kernel import mntns
from netkit.kernel import netns as ns
from netkit.kernel.errors import is_missing, netlink_errors
from netkit.kernel.journal import UndoJournal
from netkit.kernel.rtnl import Rtnl

if TYPE_CHECKING:
    from pyroute2 import IPRoute

IFA_F_NODAD = 0x02
NUD_PERMANENT = 0x80    # neighbour / FDB entry state: static
NTF_SELF = 0x02         # FDB entry of the device itself (a VXLAN peer), not of its bridge
TAG = "netkit"          # IFLA_IFALIAS of every link netkit makes on a host


def open_rtnl(netns: str | None) -> Rtnl:
    if netns is None:
        return Rtnl()
    return Rtnl(ns.socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0))


def open_ipr(netns: str | None) -> "IPRoute":
    """A pyroute2 handle inside `netns` (imports pyroute2: not on the hot path)."""
    from pyroute2 import IPRoute
    if netns is None:
        return IPRoute()
    sock = ns.socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    return IPRoute(fileno=sock.detach())


class FaultPlan:
    """Test hook: make the Nth kernel call of an action fail (CNI debugPostIPAMError).

    With `hang=True` the Nth call blocks instead, so a test can kill -9 the
    process half-way through an action. The CLI takes it from the
    environment: NETKIT_TEST_FAULT=fail:N or hang:N.
    """

    def __init__(self, fail_at: int, hang: bool = False) -> None:
        self.fail_at = fail_at
        self.hang = hang
        self.calls = 0

    @classmethod
    def from_env(cls) -> "FaultPlan | None":
        import os
        spec = os.environ.get("NETKIT_TEST_FAULT")
        if not spec:
            return None
        mode, _, n = spec.partition(":")
        return cls(int(n), hang=mode == "hang")

    def tick(self, op: str) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.hang:
                import time
                time.sleep(3600)
            raise KernelError(f"injected fault at kernel call {self.calls}: {op}")


class NetnsHandle:
    def __init__(self, session: "KernelSession", name: str | None, rt: Rtnl) -> None:
        self.session = session
        self.name = name
        self.rt = rt
        self._ipr: "IPRoute | None" = None
        self._doomed: set[int] = set()     # links this action deletes when it commits

    @property
    def ipr(self) -> "IPRoute":
        """pyroute2 for the less common requests (opened on first use; kernel/ only)."""
        if self._ipr is None:
            self._ipr = open_ipr(self.name)
        return self._ipr

    @property
    def journal(self) -> UndoJournal:
        return self.session.journal

    def _op(self, op: str, target: str) -> Any:
        self.session.tick(f"{op} {target}")
        return netlink_errors(op, target, self.name)

    def _removed(self, op: str, target: str, fn: Callable[[], Any]) -> bool:
        """Run a counted delete; False if the object was already gone (CNI DEL semantics)."""
        self.session.tick(f"{op} {target}")
        try:
            fn()
        except Exception as exc:
            if is_missing(exc):
                return False
            with netlink_errors(op, target, self.name):
                raise
        return True

    def _index(self, target: str | int) -> int:
        if isinstance(target, int):
            return target
        index = self.link_index(target)
        if index is None:
            raise NotFound(f"link {target} not found in netns {self.name or 'host'}")
        return index

    # -- queries (not journaled, not counted; links the action deletes are gone) -------
    def link_index(self, ifname: str) -> int | None:
        info = self.link_info(ifname)
        return None if info is None else info["index"]

    def has_link(self, ifname: str) -> bool:
        return self.link_index(ifname) is not None

    def links(self) -> list[dict[str, Any]]:
        return [l for l in self.rt.link_dump() if l["index"] not in self._doomed]

    def addresses(self, family: int = socket.AF_INET) -> list[tuple[str, str, int]]:
        return self.rt.addr_dump(family)

    def routes(self, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        return self.rt.route_dump(family)

    # -- changes (each journals its undo) -------------------------------------
    def add_bridge(self, name: str, *, mac: str, mtu: int | None = None,
                   netfilter: bool = False) -> int:
        """A bridge; `netfilter`: its bridged IPv4/IPv6 traffic goes through the node's
        nftables (br_netfilter, per bridge), as Docker's bridges need for NAT between
        two ports of one bridge. Off for LAN and overlay bridges: it costs every frame."""
        data = None
        if netfilter:
            from netkit.kernel.rtnl import IFLA_BR_NF_CALL_IP6TABLES, IFLA_BR_NF_CALL_IPTABLES, attr
            data = [attr(IFLA_BR_NF_CALL_IPTABLES, b"\x01"), attr(IFLA_BR_NF_CALL_IP6TABLES, b"\x01")]
        with self._op("create bridge", name):
            self.rt.link_add(name, "bridge", address=mac, mtu=mtu, data=data)
        self.journal.push(f"delete bridge {name}", lambda: self._delete_link_now(name))
        index = self.link_index(name)
        assert index is not None
        return index

    def add_veth(self, name: str, peer: str, peer_netns: str, *, peer_mac: str | None = None,
                 mtu: int | None = None, master: int | None = None) -> None:
        """A veth pair: `name` here (up, a port of `master` if given), `peer` inside `peer_netns`.

        Master and state ride on the create request: one netlink round-trip, not three.
        """
        fd = ns.open_fd(peer_netns)
        try:
            with self._op("create veth", name):
                self.rt.veth_add(name, peer, fd, up=master is not None, master=master, mtu=mtu,
                                 peer_address=peer_mac)
        finally:
            import os
            os.close(fd)
        self.journal.push(f"delete veth {name}", lambda: self._delete_link_now(name))

    def set_link(self, target: str | int, *, state: str | None = None, master: int | None = None,
                 ifalias: str | None = None, mtu: int | None = None, address: str | None = None) -> None:
        """RTM_NEWLINK on an existing link, by name or index: state, master, ifalias, mtu, MAC."""
        key = {"index": target} if isinstance(target, int) else {"ifname": target}
        with self._op("configure link", str(target)):
            self.rt.link_set(**key, up=None if state is None else state == "up", master=master,
                             ifalias=ifalias, mtu=mtu, address=address)

    def up(self, target: str | int) -> None:
        self.set_link(target, state="up")

    def set_hairpin(self, ifname: str) -> None:
        """Hairpin on a bridge port: a container may reach its own published port via the host."""
        with self._op("set hairpin", ifname):
            self.rt.brport(self._index(ifname), hairpin=True)

    def set_port_learning(self, target: str | int, learning: bool) -> None:
        """Whether bridge port `target` learns source MACs from its traffic."""
        with self._op("configure bridge port", str(target)):
            self.rt.brport(self._index(target), learning=learning)

    def add_addr(self, index: int, address: str, prefixlen: int, label: str = "") -> None:
        flags = IFA_F_NODAD if ":" in address else 0     # usable at once, as Docker does
        with self._op("add address", f"{address}/{prefixlen}"):
            self.rt.addr(True, index, address, prefixlen, flags)
        self.journal.push(f"delete address {address}",
                          lambda: self._quiet(lambda: self.rt.addr(False, index, address, prefixlen)))

    @staticmethod
    def _dst(dst: str, family: int) -> tuple[str | None, int]:
        if dst == "default":
            return None, 0
        ip, _, plen = dst.partition("/")
        return ip, int(plen or (32 if family == socket.AF_INET else 128))

    def add_route(self, *, gateway: str, dst: str = "default", oif: int | None = None,
                  family: int = socket.AF_INET) -> None:
        d, dlen = self._dst(dst, family)
        with self._op("add route", f"{dst} via {gateway}"):
            self.rt.route(True, family=family, dst=d, dst_len=dlen, gateway=gateway, oif=oif)
        self.journal.push(f"delete route {dst}", lambda: self._quiet(
            lambda: self.rt.route(False, family=family, dst=d, dst_len=dlen, gateway=gateway, oif=oif)))

    def del_route(self, *, dst: str = "default", family: int = socket.AF_INET) -> None:
        """Delete the gateway routes to `dst` (none is fine); the undo adds them back."""
        d, dlen = self._dst(dst, family)
        for r in self.rt.route_dump(family):
            if r["dst"] != d or r["dst_len"] != dlen or not r["gateway"]:
                continue
            gw, oif = r["gateway"], r["oif"]
            if not self._removed("delete route", f"{dst} via {gw}", lambda: self.rt.route(
                    False, family=family, dst=d, dst_len=dlen, gateway=gw, oif=oif)):
                continue
            self.journal.push(f"add route {dst} via {gw}", functools.partial(self._quiet, functools.partial(
                self.rt.route, True, family=family, dst=d, dst_len=dlen, gateway=gw, oif=oif)))

    def delete_link(self, target: str | int, missing_ok: bool = True) -> None:
        """Delete a link; succeeds if it is already gone (CNI DEL semantics).

        In an action (`session.defer_removals`) a deletion cannot be undone, so the
        link goes when the action commits; until then the action's queries no
        longer show it. Outside one it goes at once.
        """
        if not self.session.defer_removals:
            self._delete_link_now(target, missing_ok)
            return
        self.session.tick(f"delete link {target}")
        if isinstance(target, int):
            index = target if any(l["index"] == target for l in self.links()) else None
        else:
            index = self.link_index(target)
        if index is None:
            if not missing_ok:
                raise NotFound(f"delete link {target} in netns {self.name or 'host'}: no such device")
            return
        self._doomed.add(index)
        self.journal.defer(f"delete link {target} in netns {self.name or 'host'}",
                           lambda: self._quiet(lambda: self.rt.link_del(index=index)))

    def _delete_link_now(self, target: str | int, missing_ok: bool = True) -> None:
        key = {"index": target} if isinstance(target, int) else {"ifname": target}
        if not self._removed("delete link", str(target), lambda: self.rt.link_del(**key)) \
                and not missing_ok:
            raise NotFound(f"delete link {target} in netns {self.name or 'host'}: no such device")

    def sysctl_if_present(self, key: str, value: str) -> bool:
        """Write a sysctl that exists only with some module loaded (e.g. br_netfilter)."""
        try:
            ns.write_sysctl(self.name, key, value)
            return True
        except FileNotFoundError:
            return False

    def sysctl(self, key: str, value: str, *, undo: str | None = None) -> None:
        self.session.tick(f"sysctl {key}")
        try:
            ns.write_sysctl(self.name, key, value)
        except FileNotFoundError:
            raise NotFound(f"sysctl {key} not found in netns {self.name or 'host'}") from None
        if undo is not None:
            self.journal.push(f"sysctl {key}={undo}",
                              lambda: self._quiet(lambda: ns.write_sysctl(self.name, key, undo)))

    # -- macvlan / vlan (added for the macvlan driver) --------------------------
    def link_info(self, ifname: str) -> dict[str, Any] | None:
        """One link described as `links()` does (+ `link`: its lower device's index), or None."""
        try:
            info = self.rt.link_get(ifname)
        except OSError as exc:
            if is_missing(exc):
                return None
            raise
        return None if info["index"] in self._doomed else info

    def add_device(self, name: str, kind: str, *, mtu: int | None = None) -> int:
        """A stand-alone link of `kind` (dummy, bridge...) with kernel defaults (down).

        Unlike add_bridge no MAC is set: a bridge given an address runs its port
        state selection, which turns the carrier of a port-less bridge off.
        A kind the kernel lacks raises Unsupported (EOPNOTSUPP).
        """
        return self._make_link(kind, name, mtu=mtu or None)

    def _make_link(self, kind: str, name: str, **kw: Any) -> int:
        """Link `name` of `kind` through pyroute2 (None options left out), journaled; its index."""
        with self._op(f"create {kind}", name):
            self.ipr.link("add", ifname=name, kind=kind,
                          **{k: v for k, v in kw.items() if v is not None})
        self.journal.push(f"delete {kind} {name}", lambda: self._delete_link_now(name))
        return self._index(name)

    def add_macvlan(self, name: str, parent: int, *, mode: str, netns: str | None = None,
                    mac: str | None = None, mtu: int | None = None) -> None:
        """A macvlan child of `parent` (a link index in this netns), made directly inside
        `netns` under its final name (IFLA_NET_NS_FD: no move or rename round-trips).

        The kernel resolves the parent index in the requesting (this) namespace and
        creates the device in the target one. The undo deletes it where it was made.
        """
        kw: dict[str, Any] = {"ifname": name, "kind": "macvlan", "link": parent,
                              "macvlan_mode": mode}
        if mac:
            kw["address"] = mac
        if mtu:
            kw["mtu"] = mtu
        fd = ns.open_fd(netns) if netns is not None and netns != self.name else None
        try:
            if fd is not None:
                kw["net_ns_fd"] = fd
            with self._op("create macvlan", name):
                self.ipr.link("add", **kw)
        finally:
            if fd is not None:
                import os
                os.close(fd)
        where = self if fd is None else self.session.netns(netns)
        self.journal.push(f"delete macvlan {name}", lambda: where._delete_link_now(name))

    def add_vlan(self, name: str, parent: int, vid: int) -> int:
        """An 802.1q subinterface `name` of link `parent` with VLAN id `vid` (down).

        A kernel without 802.1q support answers EOPNOTSUPP, raised as Unsupported.
        """
        return self._make_link("vlan", name, link=parent, vlan_id=vid)

    # -- VXLAN, FDB and neighbours (overlay driver, agent peers) ------------------------
    def add_vxlan(self, name: str, vni: int, *, local: str, link: int, port: int = 4789,
                  mtu: int | None = None) -> int:
        """A VXLAN device (down) with id `vni`, source `local`, over link `link`. No source
        learning, ARP answered from the neighbour table (proxy): peers are programmed."""
        return self._make_link("vxlan", name, vxlan_id=vni, vxlan_port=port, vxlan_local=local,
                               vxlan_link=link, vxlan_learning=0, vxlan_proxy=1, mtu=mtu)

    def fdb_entries(self, target: str | int) -> list[tuple[str, str]]:
        """(MAC, dst) of the static entries with a remote dst in link `target`'s own FDB."""
        index = self._index(target)
        return [(m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST"))
                for m in self.ipr.fdb("dump", ifindex=index)
                if m["ifindex"] == index and m.get_attr("NDA_DST") and m["flags"] & NTF_SELF
                and m["state"] & NUD_PERMANENT]

    def neighbours(self, target: str | int) -> list[tuple[str, str]]:
        """(IP, MAC) of the permanent neighbour entries of link `target`."""
        index = self._index(target)
        return [(m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR"))
                for m in self.ipr.get_neighbours(ifindex=index)
                if m["ifindex"] == index and m["state"] & NUD_PERMANENT]

    def _fdb(self, cmd: str, index: int, mac: str, dst: str) -> None:
        self.ipr.fdb(cmd, ifindex=index, lladdr=mac, dst=dst,
                     **({} if cmd == "del" else {"state": NUD_PERMANENT, "flags": NTF_SELF}))

    def _neigh(self, cmd: str, index: int, ip: str, mac: str) -> None:
        self.ipr.neigh(cmd, dst=ip, lladdr=mac, ifindex=index,
                       **({} if cmd == "del" else {"state": NUD_PERMANENT}))

    def add_fdb(self, dev: str, mac: str, dst: str) -> None:
        """`bridge fdb append <mac> dev <dev> dst <dst> self permanent`."""
        self._entry("fdb entry", dev, f"{mac} dst {dst}", "append",
                    lambda cmd, index: self._fdb(cmd, index, mac, dst))

    def del_fdb(self, dev: str, mac: str, dst: str) -> None:
        self._entry("fdb entry", dev, f"{mac} dst {dst}", "append",
                    lambda cmd, index: self._fdb(cmd, index, mac, dst), delete=True)

    def set_neighbour(self, dev: str, ip: str, mac: str) -> None:
        """`ip neigh replace <ip> lladdr <mac> dev <dev> nud permanent`."""
        self._entry("neighbour", dev, ip, "replace",
                    lambda cmd, index: self._neigh(cmd, index, ip, mac))

    def del_neighbour(self, dev: str, ip: str, mac: str) -> None:
        self._entry("neighbour", dev, ip, "replace",
                    lambda cmd, index: self._neigh(cmd, index, ip, mac), delete=True)

    def _entry(self, what: str, dev: str, key: str, add: str,
               do: Callable[[str, int], None], delete: bool = False) -> None:
        """Add (`do(add, index)`) or delete (`do("del", index)`) one FDB or neighbour entry of
        link `dev`, journaling the inverse. Deleting what is gone already (entry or device)
        does nothing."""
        target = f"{key} dev {dev}"
        if not delete:
            index = self._index(dev)
            with self._op(f"add {what}", target):
                do(add, index)
            self.journal.push(f"delete {what} {target}",
                              lambda: self._quiet(lambda: do("del", index)))
            return
        found = self.link_index(dev)
        if found is not None and self._removed(f"delete {what}", target, lambda: do("del", found)):
            self.journal.push(f"add {what} {target}", lambda: do(add, found))

    @staticmethod
    def _quiet(fn: Callable[[], Any]) -> None:
        """Run an undo/cleanup step; an object already gone is not an error."""
        try:
            fn()
        except FileNotFoundError:
            pass
        except Exception as exc:
            code = getattr(exc, "code", None) or getattr(exc, "errno", None)
            if not is_missing(exc) and code not in (99, 3):  # EADDRNOTAVAIL, ESRCH: already gone
                raise

    def close(self) -> None:
        self.rt.close()
        if self._ipr is not None:
            self._ipr.close()


def _kind(msg: Any) -> str | None:
    info = msg.get("IFLA_LINKINFO") or msg.get("linkinfo")
    if info is None:
        return None
    return info.get("IFLA_INFO_KIND") or info.get("kind")


class KernelSession:
    """All kernel access of one action: handles per netns + the undo journal.

    `host` is the node's own namespace (None = the real machine's root).
    Handles to `host_netns` may be shared across actions (`cache`); handles
    to containers are closed at the end of the action.
    """

    def __init__(self, host_netns: str | None, journal: UndoJournal | None = None,
                 cache: dict[str | None, Rtnl] | None = None,
                 faults: FaultPlan | None = None, *, defer_removals: bool = False) -> None:
        self.host_netns = host_netns
        self.journal = journal if journal is not None else UndoJournal()
        self.faults = faults
        # an action's session: deleting a link or a netns waits for the commit (journal.defer)
        self.defer_removals = defer_removals
        self._cache = cache if cache is not None else {}
        self._owned: dict[str | None, NetnsHandle] = {}

    def tick(self, op: str) -> None:
        if self.faults is not None:
            self.faults.tick(op)

    @property
    def host(self) -> NetnsHandle:
        return self.netns(self.host_netns, shared=True)

    def netns(self, name: str | None, shared: bool = False) -> NetnsHandle:
        handle = self._owned.get(name)
        if handle is None:
            if shared:
                rt = self._cache.get(name)
                if rt is None:
                    rt = self._cache[name] = open_rtnl(name)
            else:
                rt = open_rtnl(name)
            handle = self._owned[name] = NetnsHandle(self, name, rt)
        return handle

    def create_netns(self, name: str, sysctls: dict[str, str] | None = None, *,
                     lo_up: bool = True, uts: tuple[str, str] | None = None) -> NetnsHandle:
        """A new netns (lo up, + a UTS namespace if asked), with its handle ready."""
        self.tick(f"create netns {name}")
        sock = ns.create_netns(name, sysctls, lo_up=lo_up, netlink=True, uts=uts)
        self.journal.push(f"delete netns {name}", lambda: self._delete_netns_now(name))
        if uts is not None:
            self.journal.push(f"remove {uts[0]}", lambda: ns.remove_bind(uts[0]))
        assert sock is not None
        handle = self._owned[name] = NetnsHandle(self, name, Rtnl(sock))
        return handle

    def create_mntns(self, path: str, *, template: str, netns: str | None,
                     binds: Iterable[tuple[str, str]] = (), layer: str | None = None) -> None:
        """A container's persisted mount namespace (mntns.create); its removal journaled."""
        self.tick(f"create mount namespace {path}")
        mntns.create(path, template=template, netns=netns, binds=binds, layer=layer,
                     journal=self.journal)

    def delete_netns(self, name: str) -> None:
        """Delete netns `name` (gone already is fine); in an action, when it commits."""
        if not self.defer_removals:
            self._delete_netns_now(name)
            return
        self.tick(f"delete netns {name}")
        if ns.exists(name):
            self.journal.defer(f"delete netns {name}", lambda: self._delete_netns_now(name))

    def _delete_netns_now(self, name: str) -> None:
        handle = self._owned.pop(name, None)
        if handle is not None and name not in self._cache:
            handle.close()
        ns.delete_netns(name)

    def close(self) -> None:
        for name, handle in self._owned.items():
            if self._cache.get(name) is not handle.rt:
                handle.close()
            elif handle._ipr is not None:
                handle._ipr.close()
        self._owned.clear()

    def __iter__(self) -> Iterator[NetnsHandle]:
        return iter(self._owned.values())
