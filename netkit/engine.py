"""netkit's public library API: one method per user action (ARCHITECTURE.md §4).

Every action validates first, then runs in one store transaction
(BEGIN IMMEDIATE) with one kernel undo journal: on any exception the
journal is replayed newest-first and the store rolled back, so a failed
action leaves nothing behind. The CLI is a thin layer over this class.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from netkit import drivers, sandbox
from netkit.drivers.base import DriverContext
from netkit.errors import (AlreadyExists, Conflict, Exhausted, Forbidden, InternalError,
                           InvalidArgument, NetkitError, NotFound)
from netkit.kernel import netns as kns
from netkit.kernel import spawn
from netkit.kernel.journal import UndoJournal, log
from netkit.kernel.session import FaultPlan, KernelSession
from netkit.dnssync import DnsMixin
from netkit.capture.engine import CaptureMixin
from netkit.fwsync import FirewallMixin
from netkit.nodes import NodesMixin
from netkit.system import SystemMixin
from netkit.swarm import SwarmMixin, mac_from_ip
from netkit.model import Container, Endpoint, Lan, Network, Node, Scope, State
from netkit.paths import NodePaths, container_netns, default_root, default_run
from netkit.refs import resolve
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec
from netkit.store import Store, Tx

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,12}$")
NETNS_SYSCTLS = {"ipv6/conf/default/disable_ipv6": "1"}   # containers: no IPv6 unless asked


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_hex(32)


class Engine(SwarmMixin, DnsMixin, FirewallMixin, CaptureMixin, SystemMixin, NodesMixin):
    """Docker's networking verbs on one node ("" / None = the real machine)."""

    def __init__(self, node: str | None = None, *, root: str | None = None,
                 run: str | None = None) -> None:
        self.root = root or default_root()
        self.run_root = run or default_run()
        self.node_name = node or ""
        self.faults: FaultPlan | None = FaultPlan.from_env()   # test hook: fail the Nth kernel call
        self._ipr_cache: dict[str | None, Any] = {}
        self._host_store: Store | None = None
        self._resolv_cache: tuple[tuple[str, int], str] | None = None
        if self.node_name:
            found = self.host_store.read().node(self.node_name)
            if found is None:
                raise NotFound(f"node {self.node_name} not found")
            self.node = found
        else:
            self.node = Node(name="")
        self.paths = NodePaths.of(self.node_name, self.root, self.run_root)
        self.store = Store(self.paths.db)
        self._ensure_predefined()

    @classmethod
    def from_env(cls, node: str | None = None, *, host: bool = False) -> "Engine":
        """The engine of `node`, else $NETKIT_NODE, else the real host (`host=True`: always the host)."""
        if host:
            return cls(None)
        return cls(node or os.environ.get("NETKIT_NODE") or None)

    @property
    def host_store(self) -> Store:
        """The real host's store: it keeps the registry of simulated nodes and LANs."""
        if self._host_store is None:
            if not self.node_name and getattr(self, "store", None) is not None:
                return self.store
            self._host_store = Store(NodePaths.of("", self.root, self.run_root).db)
        return self._host_store

    def close(self) -> None:
        if getattr(self, "_host_engine", None) is not None:
            self._host_engine.close()
        for ipr in self._ipr_cache.values():
            ipr.close()
        self._ipr_cache.clear()
        if getattr(self, "_cluster_store", None) is not None:    # swarm: netkit/swarm.py
            self._cluster_store.close()
        self.store.close()
        if self._host_store is not None:
            self._host_store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the transaction ------------------------------------------------------
    @contextmanager
    def _action(self) -> Iterator[tuple[Tx, DriverContext]]:
        journal = UndoJournal()
        kernel = KernelSession(self.node.netns, journal, cache=self._ipr_cache, faults=self.faults)
        if self.faults is not None:
            self.faults.calls = 0
        try:
            with self.store.transaction() as tx:
                self._swarm_begin(tx)            # swarm: mirror the cluster's networks
                yield tx, DriverContext(self.node, kernel)
                self._swarm_commit()             # swarm: commit the cluster transaction, if any
        except BaseException as exc:
            self._swarm_abort()
            for failure in journal.rollback():
                exc.add_note(f"rollback: {failure}")
            kernel.close()
            if isinstance(exc, (NetkitError, KeyboardInterrupt, SystemExit)):
                raise
            raise InternalError(f"{type(exc).__name__}: {exc}") from exc
        journal.discard()
        kernel.close()
        self._swarm_after()                      # swarm: program the members after a cluster change

    def _file(self, journal: UndoJournal, path: str, text: str) -> None:
        sandbox.write_file(path, text)
        journal.push(f"remove {path}", lambda: _unlink(path))

    # -- predefined networks --------------------------------------------------
    def _ensure_predefined(self) -> None:
        names = {name for _, name in self.store.read().network_refs()}
        if {"bridge", "host", "none"} <= names:
            return
        from netkit import ipam
        with self._action() as (tx, ctx):
            names = {name for _, name in tx.network_refs()}
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                if name in names:
                    continue
                cfgs: tuple = ()
                opts: dict[str, str] = {}
                if name == "bridge":
                    taken = tx.all_subnets() + self._onlink_routes(ctx)
                    cfgs = ipam.build_ipam((), (), (), {}, taken=taken)
                    opts = {"com.docker.network.bridge.default_bridge": "true",
                            "com.docker.network.bridge.enable_icc": "true",
                            "com.docker.network.bridge.enable_ip_masquerade": "true",
                            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                            "com.docker.network.bridge.name": "netkit0",
                            "com.docker.network.driver.mtu": "1500"}
                net = Network(id=new_id(), name=name, driver=driver, created=now(), ipam=cfgs,
                              options=opts)
                tx.insert_network(net)
                self._reserve(tx, net)

    def _onlink_routes(self, ctx: DriverContext) -> list[str]:
        """On-link (scope link) IPv4 routes of the node: pools overlapping them are skipped."""
        out = []
        for r in ctx.kernel.host.routes():
            if r["scope"] == 253 and r["dst"] and r["dst_len"]:
                out.append(f"{r['dst']}/{r['dst_len']}")
        return out

    # -- networks ---------------------------------------------------------------
    def create_network(self, spec: NetworkSpec) -> Network:
        """`docker network create`. On failure nothing is left in the kernel or the store."""
        from netkit import ipam
        if spec.name in ("bridge", "host", "none"):
            raise Forbidden(f"operation is not permitted on predefined {spec.name} network ")
        if not NAME_RE.match(spec.name or ""):
            raise InvalidArgument(f"invalid network name {spec.name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        driver = drivers.get(spec.driver)
        if driver.scope is Scope.SWARM:
            return self._create_overlay(spec)                   # swarm scope: netkit/swarm.py
        driver.validate(spec)                                   # nothing made yet
        with self._action() as (tx, ctx):
            if any(name == spec.name for _, name in tx.network_refs()):
                raise AlreadyExists(f"network with name {spec.name} already exists")
            # macvlan: a given subnet is the parent's LAN, so the node's on-link route is no conflict
            onlink = [] if driver.onlink_subnets and spec.subnets else self._onlink_routes(ctx)
            taken = tx.all_subnets() + onlink
            cfgs = ipam.build_ipam(spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses,
                                   ipv4=spec.ipv4, ipv6=spec.ipv6, taken=taken,
                                   skip_gateway=not driver.allocates_gateway,
                                   v6_seed=f"{self.node_name}:{spec.name}",
                                   one_subnet_per_family=driver.one_subnet_per_family)
            net = Network(id=new_id(), name=spec.name, driver=driver.name, scope=driver.scope,
                          created=now(), ipam=cfgs,
                          internal=spec.internal or driver.forces_internal(spec),
                          attachable=spec.attachable, ipv4=any(c.family == 4 for c in cfgs),
                          ipv6=any(c.family == 6 for c in cfgs), options=dict(spec.options),
                          labels=dict(spec.labels))
            driver.check_network(net, tx.networks())    # cross-network rules (bridge name, passthru)
            tx.insert_network(net)
            self._reserve(tx, net)
            driver.create_network(ctx, net)
            self._sync_firewall(tx, ctx)
        return net

    def _reserve(self, tx: Tx, net: Network) -> None:
        from netkit import ipam
        for cfg in net.ipam:
            for value, owner in ipam.reserved(cfg).items():
                tx.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)

    def networks(self) -> list[Network]:
        """`docker network ls` (unsorted; the CLI sorts and filters)."""
        self._swarm_refresh()
        return self.store.read().networks()

    def network(self, ref: str) -> Network:
        self._swarm_refresh()
        return self._network(self.store.read(), ref)

    def _network(self, tx: Tx, ref: str) -> Network:
        net = tx.network(resolve("network", tx.network_refs(), ref))
        assert net is not None
        return net

    def network_members(self, net: Network) -> list[tuple[Endpoint, str]]:
        tx = self.store.read()
        names = dict(tx.container_refs())
        return [(ep, names.get(ep.container_id, "")) for ep in tx.endpoints(network_id=net.id)]

    def inspect_networks(self, refs: list[str]) -> list[dict]:
        """`docker network inspect`."""
        from netkit.inspect import network_json
        return [network_json(net, self.network_members(net)) for net in map(self.network, refs)]

    def remove_network(self, ref: str) -> Network:
        """`docker network rm`: refused for predefined networks and while endpoints are attached."""
        with self._action() as (tx, ctx):
            net = self._network(tx, ref)
            if net.predefined:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            if net.scope is Scope.SWARM:
                self._swarm_remove_network(net)       # managers only; no endpoint on any node
            eps = tx.endpoints(network_id=net.id)
            if eps:
                names = dict(tx.container_refs())
                active = ", ".join(f'(name:"{names.get(e.container_id, "")}" id:"{e.container_id[:12]}")'
                                   for e in eps)
                raise Conflict(f"error while removing network: network {net.name} has active "
                               f"endpoints {active}")
            tx.delete_network(net.id)
            driver = drivers.get(net.driver)
            driver.delete_network(ctx, net)
            driver.release_network(ctx, net, tx.networks())    # shared parents (macvlan VLAN links)
            self._sync_firewall(tx, ctx)
        return net

    def prune_networks(self) -> list[str]:
        """`docker network prune -f`: every user network without endpoints."""
        removed = []
        for net in sorted(self.networks(), key=lambda n: n.name):
            if net.predefined or self.store.read().count_endpoints(net.id):
                continue
            try:
                self.remove_network(net.id)
            except Conflict:
                continue          # a container joined meanwhile
            removed.append(net.name)
        return removed

    # -- endpoints: planning (pure + store), joining (driver) -------------------
    def _allocate(self, tx: Tx, net: Network, family: int, static: str | None,
                  owner: str) -> str | None:
        """An address for `owner` in `net` ("a.b.c.d/len"), static or lowest free."""
        if net.scope is Scope.SWARM:
            return self._swarm_allocate(net, family, static, owner)   # cluster-wide IPAM
        return allocate(tx, net, family, static, owner, hints=True)

    def _release(self, tx: Tx, net: Network, ep: Endpoint) -> None:
        from netkit import ipam
        if net.scope is Scope.SWARM:
            return self._swarm_release(net, ep)
        for addr in (ep.ipv4, ep.ipv6):
            if not addr:
                continue
            family, value = ipam.ip_to_int(addr.split("/")[0])
            key = ipam.to_key(value, family)
            tx.release_address(net.id, family, key)
            for seq, cfg in enumerate(net.ipam):
                if cfg.family == family:
                    hint = tx.pool_hint(net.id, seq)
                    if hint is None or key < hint:
                        tx.set_pool_hint(net.id, seq, key)
                    break

    def _plan_endpoint(self, tx: Tx, net: Network, ctr: Container, es: EndpointSpec,
                       ifname: str) -> Endpoint:
        from netkit import ipam
        if es.aliases and not net.user_defined:
            raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        if (es.ipv4 or es.ipv6) and not net.user_defined:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if es.links and net.name != "bridge" and not net.user_defined:
            raise InvalidArgument(f"links are not supported on network {net.name}")
        ep_id = new_id()
        ipv4 = self._allocate(tx, net, 4, es.ipv4, ep_id) if net.ipv4 or es.ipv4 else None
        ipv6 = self._allocate(tx, net, 6, es.ipv6, ep_id) if net.ipv6 or es.ipv6 else None
        mac = ipam.validate_mac(es.mac) if es.mac else ipam.random_mac()
        if net.scope is Scope.SWARM and not es.mac and ipv4:
            mac = mac_from_ip(ipv4)           # Docker's overlay: peers' ARP caches stay right
        return Endpoint(id=ep_id, network_id=net.id, container_id=ctr.id, ifname=ifname, mac=mac,
                        ipv4=ipv4, ipv6=ipv6, aliases=tuple(dict.fromkeys(es.aliases)),
                        links=tuple(es.links), static_ipv4=bool(es.ipv4), static_ipv6=bool(es.ipv6),
                        network_name=net.name)

    def _join(self, tx: Tx, ctx: DriverContext, net: Network, ctr: Container,
              es: EndpointSpec, existing: list[Endpoint]) -> Endpoint:
        driver = drivers.get(net.driver)
        if driver.network_mode is not None:                    # host, none
            raise InvalidArgument(f"container cannot be connected to network {net.name}")
        prefix = net.options.get("com.docker.network.container_iface_prefix", "eth")
        used = {e.ifname for e in existing}
        ifname = next(f"{prefix}{i}" for i in range(len(used) + 1) if f"{prefix}{i}" not in used)
        ep = self._plan_endpoint(tx, net, ctr, es, ifname)
        result = driver.join(ctx, net, ep, ctr)
        ep = Endpoint(**{**_fields(ep), "host_ifname": result.host_ifname, "mac": result.mac})
        tx.insert_endpoint(ep)
        if net.scope is Scope.SWARM:
            self._swarm_publish(net, ep, ctr)
        return ep

    def _gateway_endpoint(self, eps: list[Endpoint], nets: dict[str, Network]) -> Endpoint | None:
        """The endpoint that gives the default route (and carries published ports), as
        Docker's Endpoint.Less orders them: non-internal, dual-stack, then network name."""
        def rank(ep: Endpoint) -> tuple:
            n = nets[ep.network_id]
            return (n.internal, not (ep.ipv4 and ep.ipv6), n.name)

        for ep in sorted(eps, key=rank):
            n = nets[ep.network_id]
            if not n.internal and n.scope is not Scope.SWARM and (n.gateway_v4 or n.gateway_v6):
                return ep
        return None

    def _route(self, tx: Tx, ctx: DriverContext, ctr: Container, eps: list[Endpoint],
               replace: bool) -> Endpoint | None:
        """Default route via the gateway endpoint; returns that endpoint."""
        import socket as _s
        from netkit.drivers.bridge import default_route
        nets = {ep.network_id: tx.network(ep.network_id) for ep in eps}
        gw_ep = self._gateway_endpoint(eps, nets)                       # type: ignore[arg-type]
        gw4 = gw6 = None
        if gw_ep is not None:
            n = nets[gw_ep.network_id]
            gw4 = n.gateway_v4 if gw_ep.ipv4 else None                  # type: ignore[union-attr]
            gw6 = n.gateway_v6 if gw_ep.ipv6 else None                  # type: ignore[union-attr]
        if replace:
            default_route(ctx, ctr, gw4, gw6)
        else:
            sb = ctx.kernel.netns(ctr.netns)
            for gw, fam in ((gw4, _s.AF_INET), (gw6, _s.AF_INET6)):
                if gw:
                    sb.add_route(gateway=gw, family=fam)
        return gw_ep

    # -- published ports ----------------------------------------------------------------
    def _port_requests(self, spec: ContainerSpec) -> list:
        from netkit.ports import PortRequest, parse_expose, parse_publish
        reqs = [r for p in spec.publish for r in parse_publish(p)]
        if spec.publish_all:
            for e in spec.expose:
                for port, proto in parse_expose(e):
                    if not any(r.container_port == port and r.proto == proto for r in reqs):
                        reqs.append(PortRequest(proto, "0.0.0.0", 0, port))
        else:
            for e in spec.expose:
                parse_expose(e)                                            # validate only
        return reqs

    def _publish(self, tx: Tx, ctx: DriverContext, ctr: Container, gw_ep: Endpoint,
                 reqs: list) -> list:
        """Bind each requested host port (Docker's messages when taken) for the gateway endpoint."""
        from netkit.model import PortMapping
        out = []
        for req in reqs:
            port = req.host_port or self._free_port(tx, req.proto, req.host_ip)
            holder = tx.port_holder(req.proto, req.host_ip, port)
            if holder is not None:
                raise Conflict(f"Bind for {req.host_ip}:{port} failed: port is already allocated")
            self._probe_port(req.proto, req.host_ip, port)
            pm = PortMapping(req.proto, req.host_ip, port, req.container_port,
                             gw_ep.ipv4_address or "", gw_ep.network_id)
            tx.insert_port(ctr.id, pm)
            out.append(pm)
        if out and gw_ep.host_ifname:
            ctx.kernel.host.set_hairpin(gw_ep.host_ifname)
        return out

    def _probe_port(self, proto: str, host_ip: str, port: int, quiet: bool = False) -> bool:
        """Is host_ip:port/proto free on the node? (a process may hold it outside netkit)"""
        import errno
        import socket as _s
        kind = _s.SOCK_STREAM if proto == "tcp" else _s.SOCK_DGRAM
        sock = kns.socket_in(self.node.netns, _s.AF_INET, kind)
        try:
            sock.bind((host_ip, port))
            return True
        except OSError as exc:
            if quiet:
                return False
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"failed to bind host port {host_ip}:{port}/{proto}: address already in use") from None
            raise InvalidArgument(f"failed to bind host port {host_ip}:{port}/{proto}: {exc.strerror.lower()}") from None
        finally:
            sock.close()

    def _free_port(self, tx: Tx, proto: str, host_ip: str) -> int:
        """The lowest free port of the node's ephemeral range (ip_local_port_range)."""
        try:
            lo, hi = map(int, kns.read_sysctl(self.node.netns, "ipv4/ip_local_port_range").split())
        except (OSError, ValueError):
            lo, hi = 49153, 65535
        held = {pm.host_port for _, pm in tx.ports() if pm.proto == proto}
        for port in range(lo, hi + 1):
            if port not in held and self._probe_port(proto, host_ip, port, quiet=True):
                return port
        raise Exhausted(f"no free host port for {proto} in {lo}-{hi}")

    def _retarget_ports(self, tx: Tx, ctx: DriverContext, ctr: Container,
                        gw_ep: Endpoint | None) -> None:
        """Published ports follow the gateway endpoint (Docker reprograms them on connect/disconnect)."""
        if not ctr.ports:
            return
        tx.delete_ports(ctr.id)
        if gw_ep is not None and gw_ep.ipv4_address:
            from netkit.model import PortMapping
            for pm in ctr.ports:
                tx.insert_port(ctr.id, PortMapping(pm.proto, pm.host_ip, pm.host_port, pm.container_port,
                                                   gw_ep.ipv4_address, gw_ep.network_id))
            if gw_ep.host_ifname:
                ctx.kernel.host.set_hairpin(gw_ep.host_ifname)
        self._sync_firewall(tx, ctx)

    def port(self, container: str) -> list:
        """`docker port`: the container's published ports."""
        return list(self.container(container).ports)

    # -- containers ---------------------------------------------------------------
    def _container(self, tx: Tx, ref: str) -> Container:
        c = tx.container(resolve("container", tx.container_refs(), ref))
        assert c is not None
        return self._live(c)

    def _live(self, c: Container) -> Container:
        """The container with its process state read from the kernel (pid alive / exit file)."""
        if c.state is not State.RUNNING or not c.pid:
            return c
        if spawn.pid_alive(c.pid, c.options.get("pid_start")):       # type: ignore[arg-type]
            return c
        code = c.exit_code
        exit_file = os.path.join(self.paths.container_dir(c.id), "exit")
        # the shim writes the exit file right after reaping the command: give it a moment,
        # so a dead process is never reported as exited without its code
        for _ in range(50):
            try:
                with open(exit_file) as f:
                    code = int(f.read().strip() or 0)
                break
            except (OSError, ValueError):
                if not os.path.isdir(os.path.dirname(exit_file)):
                    break
                time.sleep(0.01)
        return Container(**{**_fields(c), "state": State.EXITED, "exit_code": code})

    def containers(self, all: bool = False) -> list[Container]:
        """`docker ps [-a]`."""
        out = [self._live(c) for c in self.store.read().containers()]
        return out if all else [c for c in out if c.state is State.RUNNING]

    def container(self, ref: str) -> Container:
        return self._container(self.store.read(), ref)

    def inspect_containers(self, refs: list[str]) -> list[dict]:
        """`docker inspect` for containers."""
        from netkit.inspect import container_json
        tx = self.store.read()
        nets = {n.id: n for n in tx.networks()}
        return [container_json(self.container(ref), nets) for ref in refs]

    def _parse_mode(self, tx: Tx, spec: ContainerSpec) -> tuple[str, Network | None, Container | None]:
        mode = spec.network or "bridge"
        if mode.startswith("container:"):
            target = mode.split(":", 1)[1]
            if not target:
                raise InvalidArgument("invalid network mode: invalid container format container:<name|id>")
            for flag, value, what in (("-h", spec.hostname, "hostname"), ("--mac-address", spec.mac, "mac-address"),
                                      ("--dns", spec.dns, "dns"), ("--link", spec.links, "links"),
                                      ("--ip", spec.ipv4 or spec.ipv6, "ip"),
                                      ("--network-alias", spec.aliases, "network-alias")):
                if value:
                    raise InvalidArgument(f"conflicting options: {what} and the network mode")
            if spec.extra_networks:
                raise InvalidArgument("container sharing network namespace with another container "
                                      "or host cannot be connected to any other network")
            if spec.name and target.lstrip("/") == spec.name:
                raise InvalidArgument("cannot join own network namespace")
            other = self._container(tx, target)
            if other.state is not State.RUNNING:
                raise Conflict(f"cannot join network namespace of a non running container: {other.name}")
            if other.shares_netns_of:
                other = self._container(tx, other.shares_netns_of)
            return "container:" + other.id, None, other
        net = self._network(tx, mode)
        kind = drivers.get(net.driver).network_mode           # the host / none networks
        if kind is not None:
            if spec.ipv4 or spec.ipv6:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if spec.aliases:
                raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
            if spec.mac and kind == "host":
                raise InvalidArgument("conflicting options: mac-address and the network mode")
            if spec.links and kind == "host":
                raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                                      "This would result in undefined behavior")
            if spec.extra_networks:
                raise InvalidArgument("container cannot be connected to multiple networks with one of "
                                      "the networks in private (none) mode" if kind == "none" else
                                      "container sharing network namespace with another container or "
                                      "host cannot be connected to any other network")
            return kind, net, None
        if net.scope is Scope.SWARM and not net.attachable:
            raise Forbidden(f"network {net.name} not manually attachable")
        return net.name, net, None

    def _node_resolv(self) -> str:
        """The node's resolv.conf text (re-read only when the file changes)."""
        path = "/etc/resolv.conf" if not self.node.simulated else os.path.join(self.paths.run, "resolv.conf")
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return ""
        if self._resolv_cache and self._resolv_cache[0] == (path, mtime):
            return self._resolv_cache[1]
        text = sandbox.host_resolv_text() if not self.node.simulated else open(path).read()
        self._resolv_cache = ((path, mtime), text)
        return text

    def _write_files(self, journal: UndoJournal | None, tx: Tx, ctr: Container,
                     eps: list[Endpoint], nets: dict[str, Network] | None = None) -> None:
        """The container's /etc/hosts and /etc/resolv.conf (rewritten on connect/disconnect).

        With a journal the files are new (run): written in place and journaled.
        Without, they are replaced atomically (connect/disconnect of a live container).
        """
        d = self.paths.container_dir(ctr.id)
        if nets is None:
            nets = {ep.network_id: tx.network(ep.network_id) for ep in eps}    # type: ignore[misc]
        embedded = any(n.user_defined and drivers.get(n.driver).has_dns for n in nets.values())
        addrs = [a.split("/")[0] for ep in eps for a in (ep.ipv4, ep.ipv6) if a]
        extra = self._link_hosts(tx, ctr, eps, nets)
        files = {
            "hosts": sandbox.hosts_file(ctr.hostname, addrs, ipv6=any(ep.ipv6 for ep in eps), extra=extra),
            "resolv.conf": sandbox.resolv_conf(self._node_resolv(), embedded=embedded, dns=ctr.dns,
                                               fallback_public=not self.node.simulated),
        }
        for name, text in files.items():
            path = os.path.join(d, name)
            if journal is not None:
                with open(path, "w") as f:
                    f.write(text)
            else:
                sandbox.write_file(path, text)

    def _link_hosts(self, tx: Tx, ctr: Container, eps: list[Endpoint],
                    nets: dict[str, Network]) -> list[tuple[str, str]]:
        """--link on the default bridge: "<ip>\t<alias> <hostname> <name>" lines (legacy links)."""
        out = []
        for ep in eps:
            if nets[ep.network_id].name != "bridge":
                continue
            for link in ep.links:
                target, _, alias = link.partition(":")
                other = self._container(tx, target)
                oep = next((e for e in other.endpoints if e.network_id == ep.network_id), None)
                if oep is None or not oep.ipv4:
                    raise InvalidArgument(f"Cannot link to /{other.name}, as it does not belong to "
                                          "the default network")
                names = " ".join(dict.fromkeys(n for n in (alias or other.name, other.hostname, other.name)))
                out.append((oep.ipv4_address, names))
        return out

    def _validate_spec(self, spec: ContainerSpec) -> None:
        from netkit import ipam
        if spec.name is not None and not CONTAINER_NAME_RE.match(spec.name.lstrip("/")):
            raise InvalidArgument(f'Invalid container name ({spec.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        if spec.hostname is not None and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$", spec.hostname):
            raise InvalidArgument(f"invalid hostname format: {spec.hostname}")
        if spec.mac:
            ipam.validate_mac(spec.mac)
        for server in spec.dns:
            try:
                ipam.ip_to_int(server)
            except Exception:
                raise InvalidArgument(f"{server} is not an ip address") from None
        if spec.links and not spec.network:
            pass

    def create_container(self, spec: ContainerSpec) -> Container:
        """`docker create`: the sandbox with its interfaces, addresses, routes and files."""
        self._validate_spec(spec)
        with self._action() as (tx, ctx):
            name = (spec.name or _random_name(tx)).lstrip("/")
            for cid, cname in tx.container_refs():
                if cname == name:
                    raise AlreadyExists(f'Conflict. The container name "/{name}" is already in use by '
                                        f'container "{cid}". You have to remove (or rename) that '
                                        'container to be able to reuse that name.')
            mode, net, shared = self._parse_mode(tx, spec)
            reqs = self._port_requests(spec)
            if reqs and shared is not None:
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            extra_nets = [(self._network(tx, es.network), es) for es in spec.extra_networks]
            cid = new_id()
            hostname = spec.hostname or (shared.hostname if shared else cid[:12])
            netns_name = None
            if shared is not None:
                netns_name = shared.netns
            elif mode != "host":
                netns_name = container_netns(self.node_name, cid)
            ctr = Container(id=cid, name=name, hostname=hostname, created=now(), network_mode=mode,
                            netns=netns_name, command=tuple(spec.command), state=State.RUNNING,
                            auto_remove=spec.auto_remove, dns=tuple(spec.dns),
                            options={"env": dict(spec.env), "labels": dict(spec.labels)})
            d = self.paths.container_dir(cid)
            os.makedirs(d, exist_ok=True)
            ctx.kernel.journal.push(f"remove {d}", lambda: _rmtree(d))
            if shared is None and mode != "host":
                ctx.kernel.create_netns(netns_name, NETNS_SYSCTLS,     # type: ignore[arg-type]
                                        uts=(os.path.join(d, "uts"), hostname))
            tx.insert_container(ctr)
            eps: list[Endpoint] = []
            ports: list = []
            if net is not None and mode not in ("host", "none"):
                first = EndpointSpec(net.name, aliases=tuple(spec.aliases), ipv4=spec.ipv4,
                                     ipv6=spec.ipv6, mac=spec.mac, links=tuple(spec.links))
                for n, es in [(net, first), *extra_nets]:
                    if any(e.network_id == n.id for e in eps):
                        raise AlreadyExists(f"endpoint with name {name} already exists in network {n.name}")
                    eps.append(self._join(tx, ctx, n, ctr, es, eps))
                self._swarm_gateway(tx, ctx, ctr, eps)    # overlays only: egress via netkit_gwbridge
                gw_ep = self._route(tx, ctx, ctr, eps, replace=False)
                gw_net = tx.network(gw_ep.network_id) if gw_ep is not None else None
                if reqs and gw_net is not None and not drivers.get(gw_net.driver).maps_ports:
                    log.warning("%s driver does not support port mappings", gw_net.driver)  # ignored, as Docker
                elif reqs and gw_ep is not None:     # no ports on internal-only containers, as Docker
                    ports = self._publish(tx, ctx, ctr, gw_ep, reqs)
            if shared is None:
                # the run dir (journaled above) holds them: no undo of their own
                self._write_files(ctx.kernel.journal, tx, ctr, eps,
                                  {n.id: n for n in [net, *(n for n, _ in extra_nets)] if n})
            if eps and (ports or any(ep.network_name == "bridge" for ep in eps)):
                self._sync_firewall(tx, ctx)         # ports, or the predefined bridge's first use
        self._after_change(ctr.id)
        return Container(**{**_fields(ctr), "endpoints": tuple(eps), "ports": tuple(ports)})

    def _box(self, ctr: Container) -> spawn.Sandbox:
        """Where a container's processes run: its netns + UTS + files (or those it shares)."""
        owner = ctr.shares_netns_of or ctr.id
        if ctr.network_mode == "host":
            if not self.node.simulated:
                return spawn.Sandbox(netns=None)
            return spawn.Sandbox(netns=self.node.netns, uts=os.path.join(self.paths.run, "uts"),
                                 binds=self._node_binds())
        d = self.paths.container_dir(owner)
        return spawn.Sandbox(netns=ctr.netns, uts=os.path.join(d, "uts"),
                             binds=((os.path.join(d, "hosts"), "/etc/hosts"),
                                    (os.path.join(d, "resolv.conf"), "/etc/resolv.conf")))

    def _node_binds(self) -> tuple[tuple[str, str], ...]:
        return ((os.path.join(self.paths.run, "hosts"), "/etc/hosts"),
                (os.path.join(self.paths.run, "resolv.conf"), "/etc/resolv.conf"))

    def _env(self, ctr: Container) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
               "HOSTNAME": ctr.hostname, "HOME": "/root"}
        if "TERM" in os.environ:
            env["TERM"] = os.environ["TERM"]
        env.update(ctr.options.get("env") or {})                          # type: ignore[arg-type]
        return env

    def _set_state(self, cid: str, state: State, **kw: Any) -> None:
        with self.store.transaction() as tx:
            tx.set_container_state(cid, state, **kw)

    def run(self, spec: ContainerSpec) -> tuple[Container, int | None]:
        """`docker run`: create the sandbox, then start the command (foreground or -d)."""
        if not spec.command and not spec.detach and spec.auto_remove:
            raise InvalidArgument("no command given")
        ctr = self.create_container(spec)
        if not spec.command:
            return ctr, None
        box = self._box(ctr)
        d = self.paths.container_dir(ctr.id)
        if spec.detach:
            try:
                pid = spawn.spawn_detached(box, list(spec.command), log_path=os.path.join(d, "log"),
                                           exit_path=os.path.join(d, "exit"), env=self._env(ctr))
            except BaseException:
                self.remove_container(ctr.id, force=True)
                raise
            start = spawn.start_time(pid)
            self._set_state(ctr.id, State.RUNNING, pid=pid, pid_start=start)
            return Container(**{**_fields(ctr), "pid": pid}), None

        def started(pid: int) -> None:
            self._set_state(ctr.id, State.RUNNING, pid=pid, pid_start=spawn.start_time(pid))

        code = spawn.run_foreground(box, list(spec.command), self._env(ctr), on_start=started)
        self._set_state(ctr.id, State.EXITED, exit_code=code)
        if spec.auto_remove:
            self.remove_container(ctr.id, force=True)
        return Container(**{**_fields(ctr), "state": State.EXITED, "exit_code": code}), code

    def exec(self, container: str, command: list[str]) -> int:
        """`docker exec`: run a command inside a running container; returns its exit code."""
        ctr = self.container(container)
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        if not command:
            raise InvalidArgument("no command given")
        return spawn.run_foreground(self._box(ctr), list(command), self._env(ctr))

    def exec_output(self, container: str, command: list[str], *, stderr: bool = False,
                    timeout: float | None = None) -> tuple[int, str]:
        """`exec` with the command's output captured: (exit code, stdout [+ stderr]).

        With `timeout` the command is killed when it runs longer (exit code 137).
        """
        ctr = self.container(container)
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        out: list[bytes] = []
        code = spawn.run_foreground(self._box(ctr), list(command), self._env(ctr), capture=out,
                                    capture_stderr=stderr, timeout=timeout)
        return code, b"".join(out).decode(errors="replace")

    def remove_container(self, ref: str, *, force: bool = False) -> Container:
        """`docker rm [-f]`: kill, leave every network, delete the sandbox."""
        with self._action() as (tx, ctx):
            ctr = self._container(tx, ref)
            if ctr.state is State.RUNNING and ctr.pid and not force:
                raise Conflict(f'cannot remove container "/{ctr.name}": container is running: stop the '
                               'container before removing or force remove')
            own_netns = ctr.netns if not ctr.shares_netns_of and ctr.network_mode != "host" else None
            ctx = DriverContext(ctx.node, ctx.kernel, sandbox_removed=own_netns is not None)
            for ep in ctr.endpoints:
                net = tx.network(ep.network_id)
                assert net is not None
                drivers.get(net.driver).leave(ctx, net, ep, ctr)
                self._release(tx, net, ep)
            tx.delete_container(ctr.id)
            if ctr.ports or any(ep.network_name == "bridge" for ep in ctr.endpoints):
                self._sync_firewall(tx, ctx)
            spawn.kill(ctr.pid, ctr.options.get("pid_start"))            # type: ignore[arg-type]
            if own_netns:
                for pid in spawn.netns_pids(own_netns):
                    spawn.kill(pid)
                ctx.kernel.delete_netns(own_netns)
            d = self.paths.container_dir(ctr.id)
            kns.remove_bind(os.path.join(d, "uts"))
            _rmtree(d)
        self._after_change(ctr.id)
        return ctr

    # -- connect / disconnect ---------------------------------------------------------
    def connect(self, network: str, container: str, *, aliases: tuple[str, ...] = (),
                ipv4: str | None = None, ipv6: str | None = None,
                links: tuple[str, ...] = ()) -> Endpoint:
        """`docker network connect`: live, on a running or created container."""
        with self._action() as (tx, ctx):
            net = self._network(tx, network)
            ctr = self._container(tx, container)
            mode = drivers.get(net.driver).network_mode
            if mode == "host":
                raise Forbidden("cannot connect container to host network - container must be "
                                "created in host network mode")
            if ctr.shares_netns_of or ctr.network_mode == "host":
                raise Forbidden("container sharing network namespace with another container or host "
                                "cannot be connected to any other network")
            if ctr.network_mode == "none" or mode == "none":
                raise Forbidden("container cannot be connected to multiple networks with one of the "
                                "networks in private (none) mode")
            if net.scope is Scope.SWARM and not net.attachable:
                raise Forbidden(f"network {net.name} not manually attachable")
            if any(e.network_id == net.id for e in ctr.endpoints):
                raise AlreadyExists(f"endpoint with name {ctr.name} already exists in network {net.name}")
            eps = list(ctr.endpoints)
            ep = self._join(tx, ctx, net, ctr, EndpointSpec(net.name, tuple(aliases), ipv4, ipv6,
                                                            links=tuple(links)), eps)
            eps.append(ep)
            self._retarget_ports(tx, ctx, ctr, self._route(tx, ctx, ctr, eps, replace=True))
            self._write_files(None, tx, ctr, eps)
        self._after_change(ctr.id)
        return ep

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        """`docker network disconnect`."""
        with self._action() as (tx, ctx):
            net = self._network(tx, network)
            ctr = self._container(tx, container)
            ep = next((e for e in ctr.endpoints if e.network_id == net.id), None)
            if ep is None:
                raise NotFound(f"container {ctr.id[:12]} is not connected to network {net.name}")
            drivers.get(net.driver).leave(ctx, net, ep, ctr)
            self._release(tx, net, ep)
            tx.delete_endpoint(ep.id)
            eps = [e for e in ctr.endpoints if e.id != ep.id]
            if ctr.netns:
                self._retarget_ports(tx, ctx, ctr, self._route(tx, ctx, ctr, eps, replace=True))
            self._write_files(None, tx, ctr, eps)
        self._after_change(ctr.id)



def allocate(rows: Any, net: Network, family: int, static: str | None, owner: str, *,
             hints: bool) -> str | None:
    """Hold an address for `owner` in `net` in `rows` (a node or cluster store
    transaction, see store.sqlite.AddressRows): the static one, or the lowest free.
    With `hints` the pool's first-free hint is read and moved (node stores keep one)."""
    from netkit import ipam
    if static:
        cfg, value = ipam.check_static(net.ipam, static)
        if cfg.family != family:
            raise InvalidArgument(f"invalid IPv{family} address: {static}")
        key = ipam.to_key(value, family)
        if rows.address_owner(net.id, family, key) is not None:
            raise Conflict("failed to set up container networking: Address already in use")
        rows.hold_address(net.id, family, key, owner)
        return f"{ipam.int_to_ip(value, family)}/{cfg.subnet.split('/')[1]}"
    cfg = net.config(family)
    if cfg is None:
        return None
    seq = net.ipam.index(cfg)
    pool = ipam.pool_of(cfg)
    hint = None
    if hints and (hint_key := rows.pool_hint(net.id, seq)):
        hint = ipam.from_key(hint_key)
    value = ipam.first_free(
        pool, lambda start: map(ipam.from_key, rows.taken_from(net.id, family, ipam.to_key(start, family))),
        hint, label=f"{net.name} ({net.id})")
    key = ipam.to_key(value, family)
    rows.hold_address(net.id, family, key, owner)
    if hints:
        rows.set_pool_hint(net.id, seq, ipam.to_key(value + 1, family) if value < pool.last else key)
    return f"{ipam.int_to_ip(value, family)}/{cfg.subnet.split('/')[1]}"


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmtree(path: str) -> None:
    # a killed container's shim may write its exit file while the directory is being
    # removed (rmtree then fails on the last rmdir): remove again until it stays gone
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.01)


_ADJ = ("admiring", "brave", "calm", "eager", "festive", "gifted", "happy", "jolly", "keen",
        "lucid", "modest", "nifty", "quirky", "serene", "trusting", "vibrant", "wizardly", "zen")
_NOUN = ("turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "cerf", "kahn",
         "metcalfe", "postel", "perlman", "baran", "davies", "kleinrock", "pouzin", "clark")


def _random_name(tx: Tx) -> str:
    taken = {name for _, name in tx.container_refs()}
    while True:
        name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}"
        if name not in taken:
            return name
        name = f"{name}{secrets.randbelow(100)}"
        if name not in taken:
            return name
