"""Service VIPs: each member node load-balances its own containers' connections to them.

A vip-mode service has one virtual address per network (`Service.vips`,
allocated by the manager from the cluster IPAM and published as a cluster
endpoint of node "" so every node's resolver answers the service's name
with it). Connections to a VIP never leave the client's netns as such:
in every local container that has an endpoint on a network with VIPs,
`step` (a NODE_STEP of netkit/services/tick.py, run by the node agent's
cluster sync) programs one nftables table (netkit/kernel/vipnat.py) that
DNATs VIP:any port, tcp and udp, round robin (nftables `numgen inc`) over
the addresses, on that network, of the service's tasks that are RUNNING
with desired state running. This kernel has no IPVS, which is what Docker
uses in each container's netns; the nftables table does the same job.

A task whose desired state left running is out of the rotation at the
next step on every node; connections already made stay on it (their NAT is
in conntrack). The step notes the cluster version its rules reflect
(netkit/services/drain.py): once both this and the routing mesh applied a
task's retirement, the node acknowledges it, and the task's runner stops
the container only when every member that is up has (or after
`drain.DRAIN_MAX`).
A VIP without backends refuses connections at once. Tasks of members that
are down are left out (their overlay peers are withdrawn too).

Only what changed is programmed: the node keeps, per local container, the
script it applied there and the netns it applied it in (a container that
got a new netns is programmed again). The first step after the agent
started rewrites every local container's table, or removes it where none is
wanted (the agent may have missed changes while it was down).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable, Mapping

from netkit.services.model import RUNNING, VIP, Service, Task, services, tasks

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.store.cluster import ClusterStore

log = logging.getLogger("netkit.agent")

# node -> container id -> (netns inode, script applied; None: no table)
_programmed: dict[str, dict[str, tuple[int, str | None]]] = {}

_backends: dict[str, frozenset[str]] = {}      # node -> the backend addresses of its last step

VipTable = dict[str, dict[str, tuple[str, ...]]]     # network id -> {VIP: backend addresses}


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


def _key(ip: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ip.split("."))


def in_rotation(t: Task, down: "set[str] | frozenset[str]" = frozenset()) -> bool:
    """Does task `t` take new connections? Running, meant to run, on a member that is up."""
    return t.state == RUNNING and t.desired == RUNNING and t.node not in down


def vip_table(svcs: Iterable[Service], all_tasks: Iterable[Task],
              down: "set[str] | frozenset[str]" = frozenset()) -> VipTable:
    """Every VIP of the vip-mode services, per network, with its backends in address order
    (pure)."""
    by_service: dict[str, list[Task]] = {}
    for t in all_tasks:
        if in_rotation(t, down):
            by_service.setdefault(t.service_id, []).append(t)
    out: VipTable = {}
    for s in svcs:
        if s.spec.endpoint_mode != VIP:
            continue
        for network_id, vip in s.vips.items():
            addrs = {_ip(t.addresses[network_id]) for t in by_service.get(s.id, ())
                     if t.addresses.get(network_id)}
            out.setdefault(network_id, {})[_ip(vip)] = tuple(sorted(addrs, key=_key))
    return out


def container_vips(table: VipTable, network_ids: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The (VIP, backends) a container on `network_ids` must have, in VIP order (pure)."""
    out = {vip: b for n in network_ids for vip, b in table.get(n, {}).items()}
    return sorted(out.items(), key=lambda v: _key(v[0]))


def program(node: str, containers: Iterable, table: VipTable, *, first: bool,
            failed: "list[str] | None" = None) -> int:
    """Make each local container's table match `table`; returns the number of tables
    (re)written or removed. Only containers whose VIPs, backends or netns changed are
    touched (`first`: all of them, once); the names of those that failed (retried at the
    next step) are added to `failed`."""
    from netkit.errors import NetkitError
    from netkit.kernel import vipnat
    have = _programmed.setdefault(node, {})
    seen: set[str] = set()
    changes = 0
    for ctr in containers:
        if not ctr.netns or not ctr.endpoints:
            continue
        ino = vipnat.netns_id(ctr.netns)
        if ino is None:
            continue
        seen.add(ctr.id)
        want = container_vips(table, (ep.network_id for ep in ctr.endpoints))
        script = vipnat.render(want) if want else None
        prev = have.get(ctr.id)
        if prev == (ino, script) or (script is None and not first
                                     and (prev is None or prev[1] is None)):
            have[ctr.id] = (ino, script)
            continue
        try:
            if script is None:
                vipnat.remove(ctr.netns)
            else:
                vipnat.install(ctr.netns, script)
        except NetkitError as exc:               # the container went meanwhile, or the kernel
            log.warning("services: VIPs of container %s: %s", ctr.name, exc)
            have.pop(ctr.id, None)               # retried at the next step
            if failed is not None:
                failed.append(ctr.name)
            continue
        have[ctr.id] = (ino, script)
        changes += 1
    for gone in set(have) - seen:
        del have[gone]
    return changes


def step(engine: "Engine", cluster: "ClusterStore", down: "set[str] | frozenset[str]"
         ) -> float | None:
    """The node step: program this node's containers for the cluster's VIPs."""
    from netkit.services import drain, tick
    c = cluster.read()
    version = drain.version_of(c)                # read first: the rules reflect at least it
    every = tasks(c)
    table = vip_table(services(c), every, down)
    node = engine.node_name
    first = node not in _programmed
    if not table and not first and not any(s for _, s in _programmed[node].values()):
        drain.applied(cluster.cluster_id, node, "lb", version, drain.pending(every))
        return None                              # no VIP anywhere and none programmed here
    if _grew(node, table):
        _peers_first(engine)
    failed: list[str] = []
    program(node, engine.store.read().containers(), table, first=first, failed=failed)
    if not failed:                               # else not applied: no ack (retried next step)
        drain.applied(cluster.cluster_id, node, "lb", version, drain.pending(every))
    return tick.IDLE if table or failed else None


def _grew(node: str, table: VipTable) -> bool:
    """Has `table` a backend address that `node`'s previous step did not have? (Noted.)"""
    now = frozenset(a for vips in table.values() for backends in vips.values() for a in backends)
    grew = not now <= _backends.get(node, frozenset())
    _backends[node] = now
    return grew


def _peers_first(engine: "Engine") -> None:
    """Program the node's VXLAN peers as the cluster is now, before new backends go into the
    rotation. The agent's sync programmed them from an earlier read than the step's: a task
    that became RUNNING in between may have an endpoint this node has no peer entry for yet,
    and a client's first ARP for it would go unanswered (the kernel asks again after 1 s)."""
    from netkit.errors import NetkitError
    try:
        engine.cluster.sync_node()
    except NetkitError as exc:                   # the store went away: the next sync does it
        log.warning("services: peers before VIP backends: %s", exc)


def forget(node: str) -> None:
    """Drop what is known of `node`'s tables: its next step programs all of them again."""
    _programmed.pop(node, None)
    _backends.pop(node, None)


def programmed(node: str) -> Mapping[str, tuple[int, str | None]]:
    """What `node`'s steps in this process applied, per container id (read-only view)."""
    return dict(_programmed.get(node, {}))


__all__ = ["container_vips", "forget", "in_rotation", "program", "programmed", "step",
           "vip_table"]
