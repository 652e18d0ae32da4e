"""Containers of one node: the sandbox and its networks (`Containers`).

Owns the container noun: `docker create` (the sandbox: netns, UTS and mount
namespaces, run directory with /etc/hosts, /etc/resolv.conf and
/etc/hostname, and the networks it will join), `docker rm`, `ps`, `inspect`,
`port`, `rename`, and `docker network connect / disconnect`. A container
joins its networks when it starts and leaves them when it stops
(`attach` / `detach`, used by netkit/runtime.py): Docker's rule, so a
created or stopped container holds no address and has no name in DNS, and
keeps what it joins (`Container.netconfig`: networks, aliases, links,
static addresses) for its next start. Docker's rules themselves are
netkit/planning.py's pure planners; this class applies their plans inside
one action and tells the resolver after each commit.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import TYPE_CHECKING

from netkit import drivers, planning, sandbox
from netkit.drivers.base import DriverContext
from netkit.errors import AlreadyExists, Conflict, InvalidArgument, NetkitError, NotFound
from netkit.ids import CONTAINER_NAME_RE, new_id, now
from netkit.kernel import netns as kns
from netkit.kernel.journal import log
from netkit.lifecycle import RestartPolicy, parse_signal
from netkit.model import Container, Endpoint, EndpointConfig, Network, State
from netkit.specs import ContainerSpec, EndpointSpec

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
    from netkit.store import Store, Tx

NETNS_SYSCTLS = {"ipv6/conf/default/disable_ipv6": "1"}   # containers: no IPv6 unless asked
LIVE = (State.RUNNING, State.RESTARTING)


def check_spec(spec: ContainerSpec) -> None:
    """Everything about `spec` that needs no store: Docker's messages, nothing made yet."""
    planning.check_container_spec(spec)
    RestartPolicy.parse(spec.restart)
    if spec.stop_signal:
        parse_signal(spec.stop_signal)
    if spec.stop_timeout is not None and spec.stop_timeout < -1:
        raise InvalidArgument(f"invalid stop timeout: {spec.stop_timeout}")
    from netkit.processes import check_log_options
    check_log_options(dict(spec.log_opts))
    from netkit.specs import check_privileges
    check_privileges(spec)
    for _, target, _ in spec.configs:
        if not target.startswith("/") or os.path.normpath(target) == "/":
            raise InvalidArgument(f"invalid config target {target!r}: an absolute file path")


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
        """The container `ref` (name, id or unique id prefix) names in `tx`."""
        return planning.find_container(tx, ref)

    def ps(self, all: bool = False) -> list[Container]:
        self.processes.heal()
        out = self.store.read().containers()
        return out if all else [c for c in out if c.state in LIVE]

    def get(self, ref: str) -> Container:
        self.processes.heal()
        return self.lookup(self.store.read(), ref)

    def inspect(self, refs: list[str]) -> list[dict]:
        from netkit.inspect import container_json
        tx = self.store.read()
        nets = {n.id: n for n in tx.networks()}
        out = []
        for ref in refs:
            ctr = self.get(ref)
            info = container_json(ctr, nets, self.paths.container_dir(ctr.id))
            info["LogPath"] = os.path.join(self.paths.container_dir(ctr.id), "log.json")
            out.append(info)
        return out

    def ports(self, container: str) -> list:
        from netkit.ports import host_bindings
        return host_bindings(self.get(container))

    # -- create: the sandbox -------------------------------------------------------------------
    def create(self, spec: ContainerSpec) -> Container:
        """`docker create`: the sandbox and the networks it will join; nothing runs, no address."""
        check_spec(spec)
        with self.actions() as (tx, ctx):
            ctr = self.make(tx, ctx, spec)
        return ctr

    def make(self, tx: "Tx", ctx: DriverContext, spec: ContainerSpec) -> Container:
        """The sandbox of a new container, in the caller's action."""
        plan = planning.plan_run(spec, tx, container_id=new_id(), node=self.node_name)
        options: dict[str, object] = {"env": dict(spec.env), "labels": dict(spec.labels),
                                      "restart": RestartPolicy.parse(spec.restart).to_json()}
        if spec.stop_signal:
            options["stop_signal"] = spec.stop_signal
        if spec.stop_timeout is not None:
            options["stop_timeout"] = spec.stop_timeout
        if spec.log_opts:
            options["log_opts"] = dict(spec.log_opts)
        if spec.privileges():
            options["privileges"] = spec.privileges()
        if spec.extra_hosts:
            options["extra_hosts"] = [list(h) for h in spec.extra_hosts]
        if spec.domainname:
            options["domainname"] = spec.domainname
        if spec.publish or spec.expose:
            options["ports"] = {"publish": list(spec.publish), "publish_all": spec.publish_all,
                                "expose": list(spec.expose)}
        ctr = Container(id=plan.container_id, name=plan.name, hostname=plan.hostname, created=now(),
                        network_mode=plan.mode, netns=plan.netns, command=tuple(spec.command),
                        state=State.CREATED, auto_remove=spec.auto_remove, dns=tuple(spec.dns),
                        options=options,
                        netconfig=tuple(EndpointConfig(p.network_id, p.aliases, p.static_ipv4,
                                                       p.static_ipv6, p.mac, p.links)
                                        for p in plan.endpoints))
        d = self.paths.container_dir(ctr.id)
        os.makedirs(d, exist_ok=True)
        ctx.kernel.journal.push(f"remove {d}", lambda: _rmtree(d))
        if plan.own_netns:
            uts = self.processes.new_uts(ctr.id)
            ctx.kernel.create_netns(plan.netns, NETNS_SYSCTLS,     # type: ignore[arg-type]
                                    uts=(uts, plan.hostname))
            if spec.domainname:
                from netkit.kernel import secretfs
                secretfs.set_domainname(uts, spec.domainname)
        tx.insert_container(ctr)
        if plan.shared is None:
            self.write_files(ctx.kernel.journal, tx, ctr, [], {n.id: n for n in plan.networks})
        self.processes.make_mount_namespace(ctx.kernel, ctr)
        if spec.secrets:
            self._mount_secrets(ctr, spec, d)
        if spec.configs:
            self._mount_configs(ctr, spec, d)
        return ctr

    def _mount_secrets(self, ctr: Container, spec: ContainerSpec, d: str) -> None:
        """Compose's file secrets: copies in the container's dir, read-only on /run/secrets."""
        from netkit.kernel import secretfs
        path = self._own_mnt(ctr, "secrets")
        secretfs.write(os.path.join(d, "secrets"), spec.secrets)
        secretfs.mount(path, os.path.join(d, "secrets"))

    def _mount_configs(self, ctr: Container, spec: ContainerSpec, d: str) -> None:
        """Swarm configs: copies in the container's dir, each read-only at its target."""
        from netkit.kernel import secretfs
        path = self._own_mnt(ctr, "configs")
        secretfs.mount_files(path, secretfs.write_files(os.path.join(d, "configs"), spec.configs))

    def _own_mnt(self, ctr: Container, what: str) -> str:
        """The container's own mount namespace, for its `what` (secrets, configs)."""
        path = self.processes.mnt_path(ctr)
        if path is None:
            raise InvalidArgument(f"{what} need a mount namespace of the container's own "
                                  "(not host networking on the host)")
        return path

    # -- its networks: joined at start, left at stop ------------------------------------------
    def attach(self, tx: "Tx", ctx: DriverContext, ctr: Container) -> Container:
        """Join every configured network: addresses, interfaces, routes, published ports,
        files. The container with its endpoints and ports."""
        if "external" in ctr.options:       # netkit/attached.py: its owner attaches it
            raise Conflict(f"container {ctr.name} is a network namespace attached by its "
                           "owner: it joins networks through Engine.attach only")
        nets: dict[str, Network] = {}
        joins = []
        for cfg in ctr.netconfig:
            net = planning.find_network(tx, cfg.network_id)
            nets[net.id] = net
            joins.append((net, EndpointSpec(net.id, cfg.aliases, cfg.ipv4, cfg.ipv6, cfg.mac,
                                            cfg.links)))
        eps: list[Endpoint] = []
        for p in planning.plan_endpoints(ctr.name, joins):
            eps.append(self.endpoints.join(tx, ctx, nets[p.network_id], ctr, p))
        ports: list = []
        if eps:
            # overlays only: egress via netkit_gwbridge, and -p through it (docker_gwbridge's)
            egress_ep = self.endpoints.egress(tx, ctx, ctr, eps)
            gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=False)
            reqs = self._port_requests(ctr)
            if egress_ep is not None:
                gw_ep = egress_ep
            gw_net = tx.network(gw_ep.network_id) if gw_ep is not None else None
            if reqs and gw_net is not None and not drivers.get(gw_net.driver).maps_ports:
                log.warning("%s driver does not support port mappings", gw_net.driver)  # as Docker
            elif reqs and gw_ep is not None:     # no ports on internal-only containers, as Docker
                ports = self.endpoints.publish_ports(tx, ctx, ctr, gw_ep, reqs)
        if not ctr.shares_netns_of:
            self.write_files(ctx.kernel.journal, tx, ctr, eps, nets)
        if eps and (ports or any(ep.network_name == "bridge" for ep in eps)):
            self.firewall.sync(tx, ctx)         # ports, or the predefined bridge's first use
        return dataclasses.replace(ctr, endpoints=tuple(tx.endpoints(container_id=ctr.id)),
                                   ports=tuple(ports))

    @staticmethod
    def _port_requests(ctr: Container) -> list:
        return planning.stored_port_requests(ctr)

    def detach(self, tx: "Tx", ctx: DriverContext, ctr: Container, *,
               sandbox_removed: bool = False) -> None:
        """Leave every network (stop, rm): addresses back to the pools, ports unbound."""
        ctx = DriverContext(ctx.node, ctx.kernel, sandbox_removed=sandbox_removed)
        eps = tx.endpoints(container_id=ctr.id)
        for ep in eps:
            net = tx.network(ep.network_id)
            assert net is not None
            self.endpoints.leave(tx, ctx, net, ep, ctr)
            tx.delete_endpoint(ep.id)
        had_ports = bool(tx.ports(ctr.id))
        tx.delete_ports(ctr.id)
        if had_ports or any(ep.network_name == "bridge" for ep in eps):
            self.firewall.sync(tx, ctx)
        if eps and not ctr.shares_netns_of and not sandbox_removed:
            self.write_files(ctx.kernel.journal, tx, ctr, [])

    # -- rm, rename ----------------------------------------------------------------------------
    def remove(self, ref: str, *, force: bool = False) -> Container:
        """`docker rm [-f]`: (kill,) leave every network, delete the sandbox."""
        ctr = self.get(ref)
        if ctr.state in LIVE and (self.processes.supervised(ctr) or ctr.state is State.RESTARTING):
            if not force:
                raise Conflict(f'cannot remove container "/{ctr.name}": container is running: stop the '
                               'container before removing or force remove')
            self.processes.stop(ctr, timeout=0, leave=False)
        try:
            with self.actions() as (tx, ctx):
                try:
                    ctr = self.lookup(tx, ctr.id)
                except NotFound:
                    return ctr                    # --rm: the agent removed it meanwhile
                own_netns = ctr.netns if not ctr.shares_netns_of and ctr.network_mode != "host" else None
                # a caller's namespace (netkit/attached.py) outlives netkit's name for it:
                # its interfaces are removed one by one
                caller_owned = "external" in ctr.options
                self.detach(tx, ctx, ctr, sandbox_removed=own_netns is not None and not caller_owned)
                tx.delete_container(ctr.id)
                # the sandbox goes when the action commits (removals cannot be undone)
                journal = ctx.kernel.journal
                journal.defer(f"remove the mount namespace of {ctr.name}",
                              lambda: self.processes.remove_mount_namespace(ctr))
                if own_netns:
                    ctx.kernel.delete_netns(own_netns)
                journal.defer(f"remove {self.paths.container_dir(ctr.id)}",
                              lambda: _remove_run_dir(self.paths, ctr.id))
        except BaseException:
            try:                                  # the agent left telling the resolver to us
                self.resolver.after_change(ctr.id)
            except NetkitError:
                pass
            raise
        self.resolver.after_change(ctr.id)
        return ctr

    def rename(self, ref: str, new_name: str) -> Container:
        """`docker rename`: its names in DNS follow."""
        name = new_name.lstrip("/")
        if not CONTAINER_NAME_RE.match(name):
            raise InvalidArgument(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                  "are allowed")
        with self.actions() as (tx, ctx):
            ctr = self.lookup(tx, ref)
            if ctr.name == name:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            planning.container_name(tx, name)       # Docker's conflict when another has it
            tx.update_container(ctr.id, name=name)
        self.resolver.after_change(ctr.id)
        return dataclasses.replace(ctr, name=name)

    # -- networks of a container: connect, disconnect ------------------------------------------
    def connect(self, network: str, container: str, *, aliases: tuple[str, ...] = (),
                ipv4: str | None = None, ipv6: str | None = None,
                links: tuple[str, ...] = ()) -> Endpoint:
        """Live on a running container; a created or stopped one joins it at its next start."""
        with self.actions() as (tx, ctx):
            plan = planning.plan_connect(tx, network, container, aliases=aliases, ipv4=ipv4,
                                         ipv6=ipv6, links=links)
            ctr, net, p = plan.container, plan.network, plan.endpoint
            if any(cfg.network_id == net.id for cfg in ctr.netconfig):
                raise AlreadyExists(f"endpoint with name {ctr.name} already exists in network {net.name}")
            tx.set_netconfig(ctr.id, (*ctr.netconfig, EndpointConfig(
                net.id, p.aliases, p.static_ipv4, p.static_ipv6, p.mac, p.links)))
            if ctr.state not in LIVE:
                return p.endpoint("", ctr.id, mac=p.mac or "", ipv4=None, ipv6=None)
            eps = list(ctr.endpoints)
            ep = self.endpoints.join(tx, ctx, net, ctr, p)
            eps.append(ep)
            gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=True)
            self.endpoints.retarget_ports(tx, ctx, ctr, gw_ep)
            self.write_files(ctx.kernel.journal, tx, ctr, eps)
        self.resolver.after_change(ctr.id)
        return ep

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        with self.actions() as (tx, ctx):
            net = planning.find_network(tx, network)
            ctr = self.lookup(tx, container)
            planning.check_disconnect(net, ctr)
            cfgs = tuple(c for c in ctr.netconfig if c.network_id != net.id)
            if ctr.state not in LIVE or not ctr.endpoints:
                if len(cfgs) == len(ctr.netconfig):
                    raise NotFound(f"container {ctr.id[:12]} is not connected to network {net.name}")
                tx.set_netconfig(ctr.id, cfgs)
                return
            plan = planning.plan_disconnect(tx, network, container)
            self.endpoints.leave(tx, ctx, net, plan.endpoint, ctr)
            tx.delete_endpoint(plan.endpoint.id)
            tx.set_netconfig(ctr.id, cfgs)
            eps = list(plan.remaining)
            if plan.reroute:
                gw_ep = self.endpoints.route(tx, ctx, ctr, eps, replace=True)
                self.endpoints.retarget_ports(tx, ctx, ctr, gw_ep)
            self.write_files(ctx.kernel.journal, tx, ctr, eps)
        self.resolver.after_change(ctr.id)

    # -- the sandbox's files ------------------------------------------------------------------
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

    def write_files(self, journal: "UndoJournal", tx: "Tx", ctr: Container,
                    eps: list[Endpoint], nets: dict[str, Network] | None = None) -> None:
        """The container's /etc/hosts, /etc/resolv.conf and /etc/hostname.

        Written in place (the container's mount namespace binds these very
        inodes), each change journaled: a failed action puts the old text back.
        """
        d = self.paths.container_dir(ctr.id)
        if nets is None:
            nets = {ep.network_id: tx.network(ep.network_id) for ep in eps}    # type: ignore[misc]
        embedded = any(n.user_defined and drivers.get(n.driver).has_dns for n in nets.values())
        addrs = [a.split("/")[0] for ep in eps for a in (ep.ipv4, ep.ipv6) if a]
        hosts: list[tuple[str, str]] = ctr.options.get("extra_hosts") or []
        extra = [(ip, name) for name, ip in hosts]
        extra += planning.link_hosts(tx, eps, nets)
        domain = ctr.options.get("domainname")
        files = {
            "hosts": sandbox.hosts_file(f"{ctr.hostname}.{domain}" if domain else ctr.hostname, addrs, ipv6=any(ep.ipv6 for ep in eps), extra=extra),
            "resolv.conf": sandbox.resolv_conf(self.node_resolv(), embedded=embedded, dns=ctr.dns,
                                               fallback_public=not self.node.simulated),
            "hostname": ctr.hostname + "\n",
        }
        for name, text in files.items():
            _rewrite(journal, os.path.join(d, name), text)


def _rewrite(journal: "UndoJournal", path: str, text: str) -> None:
    """Replace the text of `path` in place (same inode); the old text comes back on undo."""
    try:
        with open(path) as f:
            old: str | None = f.read()
    except FileNotFoundError:
        old = None
    if old == text:
        return
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write(text)
    if old is None:
        journal.push(f"remove {path}", lambda: _unlink(path))
    else:
        journal.push(f"restore {path}", lambda: _rewrite_quiet(path, old))


def _rewrite_quiet(path: str, text: str) -> None:
    try:
        with open(path, "r+") as f:
            f.truncate()
            f.write(text)
    except FileNotFoundError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_run_dir(paths: "NodePaths", cid: str) -> None:
    """A container's run directory, its UTS namespace file unmounted first."""
    kns.remove_bind(paths.ns_file(cid, "uts"))
    _rmtree(paths.container_dir(cid))


def _rmtree(path: str) -> None:
    # a dying process may still write into the directory while it is removed (rmtree
    # then fails on the last rmdir): remove again until it stays gone
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.01)
