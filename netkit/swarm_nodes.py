"""A swarm's nodes as its managers see and change them: `docker node ls / inspect / promote /
demote / update` (`SwarmNodes`).

The members of a cluster are its simulated nodes (netkit/swarm.py joins and
leaves them); a member's hostname is its node's name and its id is
`model.node_id(cluster id, name)`, so it exists without a write. What
`node update` sets (availability, labels) is an object of kind "node"
keyed by the node's name (`model.NodeAttrs`); the role is the member's row
in the cluster store, so a promotion is seen at once by everything that
asks for it (the join listener of the node's agent, the managers-only
checks, the acting manager of netkit/services/tick.py).

Every verb here is a manager's: off swarm it is refused with Docker's
NOT_MANAGER, on a worker with WORKER_VIEW. Nodes are named by hostname, id
or unique id prefix (Docker's lookup order), `self` is the node acting.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Mapping

from netkit.errors import Conflict, InvalidArgument, NotFound
from netkit.ids import now
from netkit.refs import resolve as by_ref
from netkit.services.model import ACTIVE, DRAIN, NODE, PAUSE, NodeAttrs, node_attrs, node_id
from netkit.store.cluster import MANAGER, WORKER

if TYPE_CHECKING:
    from netkit.store.cluster import ClusterStore, ClusterTx, Member
    from netkit.swarm import Swarm

LAST_MANAGER_DEMOTE = "attempting to demote the last manager of the swarm"
LEADER, REACHABLE, UNREACHABLE = "Leader", "Reachable", "Unreachable"
AVAILABILITIES = (ACTIVE, PAUSE, DRAIN)


@dataclass(frozen=True, slots=True)
class SwarmNode:
    """One row of `docker node ls` (and what `node inspect` shows)."""

    id: str
    hostname: str
    role: str                       # manager | worker
    status: str                     # Ready | Down
    availability: str               # active | pause | drain
    manager_status: str             # Leader | Reachable | Unreachable | "" (a worker)
    addr: str                       # the node's LAN address
    current: bool = False           # the node acting (`*` in node ls)
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""
    updated: str = ""
    version: int = 0


class SwarmNodes:
    """The node verbs of one member's engine (a manager's)."""

    def __init__(self, swarm: "Swarm") -> None:
        self.swarm = swarm
        self.node_name = swarm.node_name

    # -- reading ---------------------------------------------------------------------
    def _rows(self, store: "ClusterStore", c: "ClusterTx") -> list[SwarmNode]:
        from netkit.cluster import down_members
        from netkit.services.tick import acting_manager
        from netkit.swarm import DOWN, READY
        down = self.swarm.down(store, c)
        leader = acting_manager(c, down_members(store, c))
        out = []
        for m in c.members():
            attrs = node_attrs(c, m.node)
            status = DOWN if m.node in down else READY
            manager = ("" if m.role != MANAGER else LEADER if m.node == leader
                       else UNREACHABLE if status == DOWN else REACHABLE)
            out.append(SwarmNode(node_id(store.cluster_id, m.node), m.node, m.role, status,
                                 attrs.availability, manager, m.vtep, m.node == self.node_name,
                                 dict(attrs.labels), m.joined, attrs.updated or m.joined,
                                 attrs.version))
        return out

    def ls(self) -> list[SwarmNode]:
        """`docker node ls`: the members, by hostname."""
        store = self.swarm.manager_store()
        return sorted(self._rows(store, store.read()), key=lambda n: n.hostname)

    def inspect(self, refs: Iterable[str]) -> list[dict]:
        """`docker node inspect NODE...`: Docker's JSON of each (NotFound for the first
        missing one)."""
        store = self.swarm.manager_store()
        c = store.read()
        rows = {n.hostname: n for n in self._rows(store, c)}
        return [self._json(rows[resolve(store.cluster_id, c, ref, self.node_name).node])
                for ref in refs]

    def _json(self, n: SwarmNode) -> dict:
        from netkit.agent.join import JOIN_PORT
        out = {"ID": n.id, "Version": {"Index": n.version}, "CreatedAt": n.created,
               "UpdatedAt": n.updated,
               "Spec": {"Labels": dict(n.labels), "Role": n.role, "Availability": n.availability},
               "Description": {"Hostname": n.hostname,
                               "Platform": {"Architecture": platform.machine(), "OS": "linux"}},
               "Status": {"State": n.status.lower(), "Addr": n.addr}}
        if n.role == MANAGER:
            status: dict = {"Leader": True} if n.manager_status == LEADER else {}
            status.update(Reachability="unreachable" if n.manager_status == UNREACHABLE
                          else "reachable", Addr=f"{n.addr}:{JOIN_PORT}")
            out["ManagerStatus"] = status
        return out

    # -- changing ----------------------------------------------------------------------
    def set_role(self, ref: str, role: str) -> bool:
        """`docker node promote / demote`: False when the node has that role already;
        demoting the last manager is refused (Docker's words)."""
        store = self.swarm.manager_store()
        with store.transaction() as c:
            m = resolve(store.cluster_id, c, ref, self.node_name)
            if m.role == role:
                return False
            if role == WORKER and sum(x.role == MANAGER for x in c.members()) <= 1:
                raise Conflict(LAST_MANAGER_DEMOTE)
            c.remove_member(m.node)
            c.add_member(replace(m, role=role))
            _touch(c, m.node, node_attrs(c, m.node))
        self._changed(store)
        return True

    def update(self, ref: str, *, availability: str | None = None,
               label_add: Mapping[str, str] | None = None, label_rm: Iterable[str] = ()) -> str:
        """`docker node update --availability --label-add --label-rm NODE`; the node's id."""
        if availability is not None and availability.lower() not in AVAILABILITIES:
            raise InvalidArgument(f"invalid availability {availability!r}: must be one of "
                                  "active, pause or drain")
        store = self.swarm.manager_store()
        with store.transaction() as c:
            m = resolve(store.cluster_id, c, ref, self.node_name)
            attrs = node_attrs(c, m.node)
            labels = {**attrs.labels, **(label_add or {})}
            for key in label_rm:
                if key not in labels:
                    raise NotFound(f"key {key} doesn't exist in node's labels")
                del labels[key]
            _touch(c, m.node, replace(attrs, labels=labels,
                                      availability=(availability or attrs.availability).lower()))
        self._changed(store)
        return node_id(store.cluster_id, m.node)

    def _changed(self, store: "ClusterStore") -> None:
        """After a write: the members' agents look now (SQLite: a poke; etcd: they watch)."""
        from netkit.cluster import leased
        cluster = self.swarm.cluster
        if not leased(store):
            cluster.poke_members(store)
        cluster.ensure_agent(poke=True)


def _touch(c: "ClusterTx", node: str, attrs: NodeAttrs) -> None:
    """Write a node's attributes as a new version of its spec (Version.Index, UpdatedAt)."""
    c.put_object(NODE, node, replace(attrs, version=attrs.version + 1, updated=now()).to_dict())


def resolve(cluster_id: str, c: "ClusterTx", ref: str, current: str) -> "Member":
    """The member `ref` names: `self`, an id, a hostname, else a unique id prefix (Docker's
    order); NotFound / InvalidArgument (ambiguous) in Docker's words."""
    members = {node_id(cluster_id, m.node): m for m in c.members()}
    return members[by_ref("node", ((i, m.node) for i, m in members.items()),
                          current if ref == "self" else ref, note="")]
