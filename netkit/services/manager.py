"""The service API on a manager: `docker service create / ls / inspect / update / scale /
rollback / rm / ps / logs` (`Services`, behind the Engine's service_* methods).

Every call checks first (Docker's one-line errors; nothing is written when
one fails), then writes in ONE short cluster transaction: the Service, its
VIPs (cluster IPAM, owner "vip:<id>") and their endpoints (node "": every
node's resolver answers the service's name with its VIP), and its tasks
already assigned by the reconciler's own pass (netkit/services/reconcile.py),
so the nodes' runners start them at once; then the members' agents are
poked. The acting manager's reconciler keeps them so afterwards.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.services import model, reconcile, scheduler
from netkit.services.model import DNSRR, GLOBAL, INGRESS_MODE, VIP, Service, ServiceSpec

if TYPE_CHECKING:
    from netkit.agent.logs import LogEntry
    from netkit.engine import Engine
    from netkit.store.cluster import ClusterStore

NOT_MANAGER = ('This node is not a swarm manager. Use "netkit swarm init" or "netkit swarm join" '
               'to connect this node to swarm and try again.')
REPLICAS_GLOBAL = "replicas can only be used with replicated or replicated-job mode"
SCALE_GLOBAL = "scale can only be used with replicated or replicated-job mode"
DNSRR_INGRESS = "port published with ingress mode can't be used with dnsrr mode"
NOT_SWARM_NETWORK = ("The network {} cannot be used with services. Only networks scoped to the "
                     "swarm can be used, such as those created with the overlay driver.")
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def no_such(ref: str) -> NotFound:
    return NotFound(f"no such service: {ref}")


def find(c: Any, ref: str) -> Service:
    """A service by full id, name or unique id prefix (Docker's order)."""
    svcs = model.services(c)
    for match in (lambda s: s.id == ref, lambda s: s.name == ref):
        found = [s for s in svcs if match(s)]
        if found:
            return found[0]
    found = [s for s in svcs if ref and s.id.startswith(ref.lower())]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InvalidArgument(f"service {ref} is ambiguous ({len(found)} matches found)")
    raise no_such(ref)


def vip_endpoint_id(network_id: str, service_id: str) -> str:
    return f"vip-{network_id[:12]}-{service_id}"


class Services:
    """The service calls of one manager node's engine."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    # -- access ---------------------------------------------------------------------
    def store(self) -> "ClusterStore":
        """The cluster store, on a manager only (Docker's words off swarm and on a worker)."""
        return self._access()[0]

    def read(self) -> Any:
        """A read of the cluster store, on a manager only (the same read that checked it)."""
        return self._access()[1]

    def _access(self) -> "tuple[ClusterStore, Any]":
        from netkit.store.cluster import MANAGER
        from netkit.swarm import WORKER_VIEW
        store = self.engine.cluster.store()
        if store is None:
            raise Conflict(NOT_MANAGER)
        view = store.read()
        me = view.member(self.engine.node_name)
        if me is None:
            raise Conflict(NOT_MANAGER)
        if me.role != MANAGER:
            raise Forbidden(WORKER_VIEW)
        return store, view

    def poke(self, store: "ClusterStore") -> None:
        """The members' agents look at the cluster now (this node's too: it may reconcile)."""
        from netkit.agent import client
        from netkit.cluster import leased
        if not leased(store):
            self.engine.cluster.poke_members(store)
        client.poke(self.engine.paths.run)
        self.engine.cluster.ensure_agent()

    # -- checks -----------------------------------------------------------------------
    def checked(self, c: Any, spec: ServiceSpec, current: Service | None = None) -> ServiceSpec:
        """`spec` with its networks resolved to ids, or Docker's error for what is wrong."""
        if not _NAME.match(spec.name):
            raise InvalidArgument(f"invalid name {spec.name!r}: name must be valid as a DNS name "
                                  "component")
        if spec.mode not in (model.REPLICATED, GLOBAL):
            raise InvalidArgument(f"invalid mode {spec.mode!r}: use replicated or global")
        if spec.mode == GLOBAL and spec.replicas != 1:
            raise InvalidArgument(REPLICAS_GLOBAL)
        if spec.replicas < 0:
            raise InvalidArgument(f"invalid replicas value {spec.replicas}: must be >= 0")
        if not spec.command:
            raise InvalidArgument('"netkit service create" requires a command (it stands in for '
                                  "the image)")
        scheduler.parse_constraints(spec.constraints)
        if spec.endpoint_mode not in (VIP, DNSRR):
            raise InvalidArgument(f"invalid endpoint mode {spec.endpoint_mode!r}: use vip or dnsrr")
        if spec.endpoint_mode == DNSRR and any(p.mode == INGRESS_MODE for p in spec.ports):
            raise InvalidArgument(DNSRR_INGRESS)
        if spec.restart.condition not in ("none", "on-failure", "any"):
            raise InvalidArgument(f"invalid restart condition {spec.restart.condition!r}: use "
                                  "none, on-failure or any")
        for upd in (spec.update, spec.rollback):
            if upd.order not in ("stop-first", "start-first"):
                raise InvalidArgument(f"invalid update order {upd.order!r}: use stop-first or "
                                      "start-first")
            if upd.failure_action not in ("pause", "continue", "rollback"):
                raise InvalidArgument(f"invalid failure action {upd.failure_action!r}: use pause, "
                                      "continue or rollback")
        self.check_ports(c, spec, current)
        self.check_files(c, spec)
        return replace(spec, networks=tuple(self.network_id(c, ref) for ref in spec.networks))

    def network_id(self, c: Any, ref: str) -> str:
        from netkit.refs import resolve
        nets = c.networks()
        try:
            network_id = resolve("network", [(n.id, n.name) for n in nets], ref)
        except NotFound:
            local = self.engine.store.read().networks()
            if any(ref in (n.id, n.name) for n in local):
                raise InvalidArgument(NOT_SWARM_NETWORK.format(ref)) from None
            raise
        net = next(n for n in nets if n.id == network_id)
        if getattr(net, "ingress", False) or net.options.get("com.netkit.ingress") == "true":
            raise InvalidArgument("Service cannot be explicitly attached to the ingress network "
                                  f'"{net.name}"')
        return network_id

    @staticmethod
    def check_ports(c: Any, spec: ServiceSpec, current: Service | None) -> None:
        """swarmkit's checkPortConflicts: an ingress port is the whole swarm's; a host-mode
        port clashes with another service's ingress port of that number."""
        for p in spec.ports:
            if not (0 < p.published < 65536 and 0 < p.target < 65536) or \
                    p.protocol not in ("tcp", "udp", "sctp") or p.mode not in (INGRESS_MODE,
                                                                              model.HOST_MODE):
                raise InvalidArgument(f"invalid published port {p.published}:{p.target}/"
                                      f"{p.protocol} (mode {p.mode})")
        for other in model.services(c):
            if current is not None and other.id == current.id:
                continue
            for p in spec.ports:
                for q in other.spec.ports:
                    if (p.published, p.protocol) != (q.published, q.protocol):
                        continue
                    if q.mode == INGRESS_MODE:
                        raise InvalidArgument(f"port '{p.published}' is already in use by service "
                                              f"'{other.name}' ({other.id}) as an ingress port")
                    if p.mode == INGRESS_MODE:
                        raise InvalidArgument(f"port '{p.published}' is already in use by service "
                                              f"'{other.name}' ({other.id}) as a host-published "
                                              "port")

    @staticmethod
    def check_files(c: Any, spec: ServiceSpec) -> None:
        for kind, refs in ((model.SECRET, spec.secrets), (model.CONFIG, spec.configs)):
            names = {v.get("name") for _, v in c.objects(kind)}
            missing = [r.source for r in refs if r.source not in names]
            if missing:
                raise NotFound(f"{kind} not found: {', '.join(missing)}")

    # -- VIPs -------------------------------------------------------------------------
    def sync_vips(self, c: Any, svc: Service, old: Service | None) -> Service:
        """One VIP per network in vip mode, from the cluster IPAM, published as an endpoint
        of node "" named by the service; released and withdrawn where no longer wanted."""
        from netkit.ipam import allocate
        from netkit.store.cluster import ClusterEndpoint
        want = set(svc.spec.networks) if svc.spec.endpoint_mode == VIP else set()
        vips = dict(old.vips) if old else {}
        for network_id in sorted(set(vips) - want):
            self.engine.cluster.release_addresses(c, network_id, vips.pop(network_id))
            c.withdraw_endpoint(vip_endpoint_id(network_id, svc.id))
        for network_id in sorted(want - set(vips)):
            net = c.network(network_id)
            addr = allocate(c, net, 4, None, f"vip:{svc.id}", hints=False)
            if addr is None:
                continue
            vips[network_id] = addr
            c.publish_endpoint(ClusterEndpoint(
                id=vip_endpoint_id(network_id, svc.id), network_id=network_id, node="",
                container_id=svc.id, container_name=svc.name, ipv4=addr, ipv6=None, mac="",
                vtep="", names=(svc.name,)))
        return replace(svc, vips=vips)

    # -- the calls ----------------------------------------------------------------------
    def create(self, spec: ServiceSpec) -> Service:
        from netkit.planning import unused_name
        store = self.store()
        with store.transaction() as c:
            if not spec.name:
                spec = replace(spec, name=unused_name({s.name for s in model.services(c)}))
            if any(s.name == spec.name for s in model.services(c)):
                raise AlreadyExists("rpc error: code = AlreadyExists desc = name conflicts with an "
                                    f"existing object: service {spec.name} already exists")
            spec = self.checked(c, spec)
            stamp = reconcile.iso(time.time())
            svc = Service(id=model.new_object_id(), spec=spec, created=stamp, updated=stamp)
            svc = self.sync_vips(c, svc, None)
            model.put_service(c, svc)
            reconcile.reconcile_service(c, store.cluster_id, svc, time.time(), self.down(store, c))
        self.poke(store)
        return svc

    def down(self, store: "ClusterStore", c: Any) -> set[str]:
        """Members down now (etcd: lease expired; SQLite: agent not running): new tasks
        avoid them (their own tasks are the reconciler's, after its grace)."""
        return self.engine.cluster.down(store, c) | reconcile.agents_down(self.engine, store, c)

    def services(self) -> list[Service]:
        return sorted(model.services(self.read()), key=lambda s: s.name)

    def service(self, ref: str) -> Service:
        return find(self.read(), ref)

    def update(self, ref: str, spec: ServiceSpec, *, force: bool = False) -> Service:
        store = self.store()
        with store.transaction() as c:
            old = find(c, ref)
            if spec.name != old.name:
                raise InvalidArgument("renaming services is not supported")
            if spec.mode != old.spec.mode:
                raise InvalidArgument("service mode change is not allowed")
            spec = self.checked(c, spec, old)
            if force:
                spec = replace(spec, force_update=old.spec.force_update + 1)
            now = time.time()
            svc = replace(old, spec=spec, previous=old.spec, version=old.version + 1,
                          updated=reconcile.iso(now))
            if force or reconcile.spec_key(spec) != reconcile.spec_key(old.spec):
                svc = replace(svc, update_status={"state": reconcile.UPDATING,
                                                  "started": reconcile.iso(now),
                                                  "message": "update in progress"})
            svc = self.sync_vips(c, svc, old)
            model.put_service(c, svc)
            reconcile.reconcile_service(c, store.cluster_id, svc, now, self.down(store, c))
        self.poke(store)
        return svc

    def scale(self, scales: dict[str, int]) -> None:
        """`docker service scale SVC=N...`: each checked first, then all in one transaction."""
        store = self.store()
        with store.transaction() as c:
            todo = []
            for ref, n in scales.items():
                svc = find(c, ref)
                if svc.spec.mode == GLOBAL:
                    raise InvalidArgument(SCALE_GLOBAL)
                if n < 0:
                    raise InvalidArgument(f"invalid replicas value for service {ref}: {n}")
                todo.append(replace(svc, spec=replace(svc.spec, replicas=n), previous=svc.spec,
                                    version=svc.version + 1, updated=reconcile.iso(time.time())))
            for svc in todo:
                model.put_service(c, svc)
            down = self.down(store, c)
            for svc in todo:
                reconcile.reconcile_service(c, store.cluster_id, svc, time.time(), down)
        self.poke(store)

    def rollback(self, ref: str) -> Service:
        store = self.store()
        with store.transaction() as c:
            old = find(c, ref)
            if old.previous is None:
                raise Conflict(f"service {old.id} does not have a previous spec")
            now = time.time()
            svc = reconcile.rollback_of(old, now, "manually requested rollback")
            svc = self.sync_vips(c, svc, old)
            model.put_service(c, svc)
            reconcile.reconcile_service(c, store.cluster_id, svc, now, self.down(store, c))
        self.poke(store)
        return svc

    def remove(self, ref: str) -> Service:
        """Tasks desired remove (the runners remove their containers), VIPs released,
        endpoints withdrawn, the service object gone."""
        store = self.store()
        with store.transaction() as c:
            svc = find(c, ref)
            members = {m.node for m in c.members()}
            for t in model.tasks(c, service_id=svc.id):
                reconcile.drop_task(c, t, members)
            self.sync_vips(c, replace(svc, spec=replace(svc.spec, networks=())), svc)
            c.delete_object(model.SERVICE, svc.id)
        self.poke(store)
        return svc

    def tasks(self, ref: str | None = None) -> list[model.Task]:
        c = self.read()
        if ref is None:
            return model.tasks(c)
        return model.tasks(c, service_id=find(c, ref).id)

    def logs(self, ref: str, *, no_trunc: bool = False) -> "list[LogEntry]":
        """The task containers' logs, read through each node's engine on this machine, each
        line prefixed with Docker's `NAME.SLOT.TASKID@NODE | `; oldest first."""
        from netkit.agent.logs import LogEntry
        from netkit.errors import NetkitError
        tasks = [t for t in self.tasks(ref) if t.node]
        found: list[tuple[str, LogEntry]] = []
        engines: dict[str, "Engine"] = {}
        try:
            for t in sorted(tasks, key=lambda t: (str(t.slot), t.created)):
                if t.node not in engines:
                    engines[t.node] = self.engine if t.node == self.engine.node_name else \
                        type(self.engine)(t.node, root=self.engine.root, run=self.engine.run_root)
                try:
                    entries = engines[t.node].logs(t.container_id or t.container_name)
                except NetkitError:
                    continue
                ctx = f"{t.name}.{t.id if no_trunc else t.id[:12]}@{t.node}"
                found += [(ctx, e) for e in entries]
        finally:
            for node, eng in engines.items():
                if eng is not self.engine:
                    eng.close()
        width = max((len(ctx) for ctx, _ in found), default=0)
        out = [LogEntry(e.stream, f"{ctx.ljust(width)}    | {e.text}", e.time) for ctx, e in found]
        return sorted(out, key=lambda e: e.time)
