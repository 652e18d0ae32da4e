"""Containers of one node: `docker create / run / exec / rm / ps / inspect / port` and
`docker network connect / disconnect` (`Containers`).

Owns the container noun: its sandbox (netns, UTS namespace, run directory
with /etc/hosts and /etc/resolv.conf), Docker's rules for network modes
(`--network container:X`, host, none) and for connecting, the endpoints it
asks netkit/endpoints.py to join or leave, and telling the resolver after
each committed change. Its processes are netkit/processes.py's; container
lifecycle verbs (start, stop, restart, ...) belong in this class, next to
`run` and `remove`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from typing import TYPE_CHECKING

from netkit import drivers, sandbox
from netkit.drivers.base import DriverContext
from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.ids import CONTAINER_NAME_RE, new_id, now, random_name
from netkit.kernel import netns as kns
from netkit.kernel import spawn
from netkit.kernel.journal import log
from netkit.model import Container, Endpoint, Network, Scope, State
from netkit.paths import container_netns
from netkit.refs import resolve
from netkit.specs import EndpointSpec

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.endpoints import Endpoints
    from netkit.fwsync import FirewallSync
    from netkit.kernel.journal import UndoJournal
    from netkit.model import Node
    from netkit.networks import Networks
    from netkit.paths import NodePaths
    from netkit.processes import Processes
    from netkit.resolver import ResolverClient
    from netkit.specs import ContainerSpec
    from netkit.store import Store, Tx

NETNS_SYSCTLS = {"ipv6/conf/default/disable_ipv6": "1"}   # containers: no IPv6 unless asked


class Containers:
    """The containers of one node, as Docker's container verbs see them."""

    def __init__(self, store: "Store", actions: "Actions", paths: "NodePaths", node: "Node",
                 networks: "Networks", endpoints: "Endpoints", processes: "Processes",
                 firewall: "FirewallSync", resolver: "ResolverClient") -> None:
        self.store = store
        self.actions = actions
        self.paths = paths
        self.node = node
        self.node_name = node.name
        self.networks = networks
        self.endpoints = endpoints
        self.processes = processes
        self.firewall = firewall
        self.resolver = resolver
        self._resolv_cache: tuple[tuple[str, int], str] | None = None

    # -- queries -------------------------------------------------------------------------------
    def lookup(self, tx: "Tx", ref: str) -> Container:
        """The container `ref` (name, id or unique id prefix) names in `tx`, with its live state."""
        c = tx.container(resolve("container", tx.container_refs(), ref))
        assert c is not None
        return self.processes.live(c)

    def ps(self, all: bool = False) -> list[Container]:
        out = [self.processes.live(c) for c in self.store.read().containers()]
        return out if all else [c for c in out if c.state is State.RUNNING]

    def get(self, ref: str) -> Container:
        return self.lookup(self.store.read(), ref)

    def inspect(self, refs: list[str]) -> list[dict]:
        from netkit.inspect import container_json
        tx = self.store.read()
        nets = {n.id: n for n in tx.networks()}
        return [container_json(self.get(ref), nets) for ref in refs]

    def ports(self, container: str) -> list:
        return list(self.get(container).ports)

    # -- the sandbox: create, remove -----------------------------------------------------------
    def create(self, spec: "ContainerSpec") -> Container:
        self._validate_spec(spec)
        with self.actions() as (tx, ctx):
            name = (spec.name or random_name(tx)).lstrip("/")
            for cid, cname in tx.container_refs():
                if cname == name:
                    raise AlreadyExists(f'Conflict. The container name "/{name}" is already in use by '
                                        f'container "{cid}". You have to remove (or rename) that '
                                        'container to be able to reuse that name.')
            mode, net, shared = self._parse_mode(tx, spec)
            reqs = self.endpoints.port_requests(spec)
            if reqs and shared is not None:
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            extra_nets = [(self.networks.lookup(tx, es.network), es) for es in spec.extra_networks]
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
                    eps.append(self.endpoints.join(tx, ctx, n, ctr, es, eps))
                self.endpoints.egress(tx, ctx, ctr, eps)   # overlays only: egress via netkit_gwbridge
                gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=False)
                gw_net = tx.network(gw_ep.network_id) if gw_ep is not None else None
                if reqs and gw_net is not None and not drivers.get(gw_net.driver).maps_ports:
                    log.warning("%s driver does not support port mappings", gw_net.driver)  # ignored, as Docker
                elif reqs and gw_ep is not None:     # no ports on internal-only containers, as Docker
                    ports = self.endpoints.publish_ports(tx, ctx, ctr, gw_ep, reqs)
            if shared is None:
                # the run dir (journaled above) holds them: no undo of their own
                self._write_files(ctx.kernel.journal, tx, ctr, eps,
                                  {n.id: n for n in [net, *(n for n, _ in extra_nets)] if n})
            if eps and (ports or any(ep.network_name == "bridge" for ep in eps)):
                self.firewall.sync(tx, ctx)         # ports, or the predefined bridge's first use
        self.resolver.after_change(ctr.id)
        return dataclasses.replace(ctr, endpoints=tuple(eps), ports=tuple(ports))

    def remove(self, ref: str, *, force: bool = False) -> Container:
        with self.actions() as (tx, ctx):
            ctr = self.lookup(tx, ref)
            if ctr.state is State.RUNNING and ctr.pid and not force:
                raise Conflict(f'cannot remove container "/{ctr.name}": container is running: stop the '
                               'container before removing or force remove')
            own_netns = ctr.netns if not ctr.shares_netns_of and ctr.network_mode != "host" else None
            ctx = DriverContext(ctx.node, ctx.kernel, sandbox_removed=own_netns is not None)
            for ep in ctr.endpoints:
                net = tx.network(ep.network_id)
                assert net is not None
                self.endpoints.leave(tx, ctx, net, ep, ctr)
            tx.delete_container(ctr.id)
            if ctr.ports or any(ep.network_name == "bridge" for ep in ctr.endpoints):
                self.firewall.sync(tx, ctx)
            spawn.kill(ctr.pid, ctr.options.get("pid_start"))            # type: ignore[arg-type]
            if own_netns:
                for pid in spawn.netns_pids(own_netns):
                    spawn.kill(pid)
                ctx.kernel.delete_netns(own_netns)
            d = self.paths.container_dir(ctr.id)
            kns.remove_bind(os.path.join(d, "uts"))
            _rmtree(d)
        self.resolver.after_change(ctr.id)
        return ctr

    # -- processes: run, exec (start, stop, restart and the other lifecycle verbs go here) -----
    def run(self, spec: "ContainerSpec") -> tuple[Container, int | None]:
        """Create the sandbox, then start the command (foreground or -d)."""
        if not spec.command and not spec.detach and spec.auto_remove:
            raise InvalidArgument("no command given")
        ctr = self.create(spec)
        if not spec.command:
            return ctr, None
        box = self.processes.box(ctr)
        d = self.paths.container_dir(ctr.id)
        if spec.detach:
            try:
                pid = spawn.spawn_detached(box, list(spec.command), log_path=os.path.join(d, "log"),
                                           exit_path=os.path.join(d, "exit"), env=self.processes.env(ctr))
            except BaseException:
                self.remove(ctr.id, force=True)
                raise
            start = spawn.start_time(pid)
            self.processes.set_state(ctr.id, State.RUNNING, pid=pid, pid_start=start)
            return dataclasses.replace(ctr, pid=pid), None

        def started(pid: int) -> None:
            self.processes.set_state(ctr.id, State.RUNNING, pid=pid, pid_start=spawn.start_time(pid))

        code = spawn.run_foreground(box, list(spec.command), self.processes.env(ctr), on_start=started)
        self.processes.set_state(ctr.id, State.EXITED, exit_code=code)
        if spec.auto_remove:
            self.remove(ctr.id, force=True)
        return dataclasses.replace(ctr, state=State.EXITED, exit_code=code), code

    def exec(self, container: str, command: list[str]) -> int:
        ctr = self.get(container)
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        if not command:
            raise InvalidArgument("no command given")
        return spawn.run_foreground(self.processes.box(ctr), list(command), self.processes.env(ctr))

    def exec_output(self, container: str, command: list[str], *, stderr: bool = False,
                    timeout: float | None = None) -> tuple[int, str]:
        ctr = self.get(container)
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        out: list[bytes] = []
        code = spawn.run_foreground(self.processes.box(ctr), list(command), self.processes.env(ctr),
                                    capture=out, capture_stderr=stderr, timeout=timeout)
        return code, b"".join(out).decode(errors="replace")

    # -- networks of a live container: connect, disconnect -------------------------------------
    def connect(self, network: str, container: str, *, aliases: tuple[str, ...] = (),
                ipv4: str | None = None, ipv6: str | None = None,
                links: tuple[str, ...] = ()) -> Endpoint:
        with self.actions() as (tx, ctx):
            net = self.networks.lookup(tx, network)
            ctr = self.lookup(tx, container)
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
            ep = self.endpoints.join(tx, ctx, net, ctr, EndpointSpec(net.name, tuple(aliases), ipv4, ipv6,
                                                                     links=tuple(links)), eps)
            eps.append(ep)
            gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=True)
            self.endpoints.retarget_ports(tx, ctx, ctr, gw_ep)
            self._write_files(None, tx, ctr, eps)
        self.resolver.after_change(ctr.id)
        return ep

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        with self.actions() as (tx, ctx):
            net = self.networks.lookup(tx, network)
            ctr = self.lookup(tx, container)
            ep = next((e for e in ctr.endpoints if e.network_id == net.id), None)
            if ep is None:
                raise NotFound(f"container {ctr.id[:12]} is not connected to network {net.name}")
            self.endpoints.leave(tx, ctx, net, ep, ctr)
            tx.delete_endpoint(ep.id)
            eps = [e for e in ctr.endpoints if e.id != ep.id]
            if ctr.netns:
                gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=True)
                self.endpoints.retarget_ports(tx, ctx, ctr, gw_ep)
            self._write_files(None, tx, ctr, eps)
        self.resolver.after_change(ctr.id)

    # -- Docker's rules and the sandbox's files ------------------------------------------------
    def _validate_spec(self, spec: "ContainerSpec") -> None:
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

    def _parse_mode(self, tx: "Tx", spec: "ContainerSpec") -> tuple[str, Network | None, Container | None]:
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
            other = self.lookup(tx, target)
            if other.state is not State.RUNNING:
                raise Conflict(f"cannot join network namespace of a non running container: {other.name}")
            if other.shares_netns_of:
                other = self.lookup(tx, other.shares_netns_of)
            return "container:" + other.id, None, other
        net = self.networks.lookup(tx, mode)
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

    def node_resolv(self) -> str:
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

    def _write_files(self, journal: "UndoJournal | None", tx: "Tx", ctr: Container,
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
            "resolv.conf": sandbox.resolv_conf(self.node_resolv(), embedded=embedded, dns=ctr.dns,
                                               fallback_public=not self.node.simulated),
        }
        for name, text in files.items():
            path = os.path.join(d, name)
            if journal is not None:
                with open(path, "w") as f:
                    f.write(text)
            else:
                sandbox.write_file(path, text)

    def _link_hosts(self, tx: "Tx", ctr: Container, eps: list[Endpoint],
                    nets: dict[str, Network]) -> list[tuple[str, str]]:
        """--link on the default bridge: "<ip>\t<alias> <hostname> <name>" lines (legacy links)."""
        out = []
        for ep in eps:
            if nets[ep.network_id].name != "bridge":
                continue
            for link in ep.links:
                target, _, alias = link.partition(":")
                other = self.lookup(tx, target)
                oep = next((e for e in other.endpoints if e.network_id == ep.network_id), None)
                if oep is None or not oep.ipv4:
                    raise InvalidArgument(f"Cannot link to /{other.name}, as it does not belong to "
                                          "the default network")
                names = " ".join(dict.fromkeys(n for n in (alias or other.name, other.hostname, other.name)))
                out.append((oep.ipv4_address, names))
        return out


def _rmtree(path: str) -> None:
    # a killed container's shim may write its exit file while the directory is being
    # removed (rmtree then fails on the last rmdir): remove again until it stays gone
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.01)
