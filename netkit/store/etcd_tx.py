"""The cluster store's rows as etcd keys: the in-memory view of one transaction.

Key layout, relative to the cluster's prefix `/netkit/<cluster-id>/`:

    meta/<key>                          the value (meta/version, meta/cluster_id, ...)
    members/<node>                      {"role", "vtep", "joined"}
    networks/<network-id>               the network's fields and its "vni" (JSON)
    addresses/<network-id>/<family>/<key>   the holder ("owner"); <key> is netkit.ipam's
                                        fixed-width hex, so key order is address order
    endpoints/<endpoint-id>             the published endpoint (JSON)
    objects/<kind>/<id>                 a swarm object (service, task, secret, ...: JSON)
    lock                                the write lock (on its holder's lease)
    pending                             a commit too big for one etcd txn, while it is
                                        applied in parts (netkit/store/etcd.py)
    alive/<node>                        a node's liveness key (on the node's lease)

`EtcdClusterTx` is SqliteClusterTx over a snapshot of those keys (one etcd
range read at one revision): reads see the snapshot plus the transaction's
own buffered writes, writes are recorded in `ops` (key -> value, or None for
a delete) for the store to apply in one etcd txn (netkit/store/etcd.py).
Every method returns what SqliteClusterTx returns for the same rows, in the
same order, and refuses what SQLite's constraints refuse, with the same
message (tests/kernel/test_etcd_store.py runs one contract on both).
"""

from __future__ import annotations

import bisect
import json
from typing import Iterator

from netkit.errors import InternalError, NetkitError
from netkit.model import IPAMConfig, Network, Scope
from netkit.store.cluster import ClusterEndpoint, Member

META, MEMBERS, NETWORKS, ADDRESSES, ENDPOINTS = "meta/", "members/", "networks/", "addresses/", \
    "endpoints/"
OBJECTS = "objects/"
LOCK, ALIVE, PENDING = "lock", "alive/", "pending"
DATA = (META, MEMBERS, NETWORKS, ADDRESSES, ENDPOINTS, OBJECTS)   # the rows; not the lock or the leases


def _j(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _unique(what: str) -> NetkitError:
    return NetkitError(f"cluster store: UNIQUE constraint failed: {what}")


def _foreign_key() -> NetkitError:
    return NetkitError("cluster store: FOREIGN KEY constraint failed")


class EtcdClusterTx:
    """Reads and writes of one cluster transaction over a snapshot of the cluster's keys."""

    def __init__(self, data: dict[str, str], *, writable: bool = True) -> None:
        self.data = data                    # relative key -> value, the writes applied
        self.ops: dict[str, str | None] = {}
        self.writable = writable
        self._sorted: list[str] | None = None

    # -- keys ------------------------------------------------------------------------
    def _put(self, key: str, value: str) -> None:
        if not self.writable:
            raise InternalError("cluster store: write on a read-only view")
        if key not in self.data:
            self._sorted = None
        self.data[key] = value
        self.ops[key] = value

    def _delete(self, key: str) -> None:
        if not self.writable:
            raise InternalError("cluster store: write on a read-only view")
        if key in self.data:
            del self.data[key]
            self._sorted = None
            self.ops[key] = None

    def _keys(self, prefix: str, start: str = "") -> Iterator[str]:
        """Keys below `prefix` from `prefix + start` on, in key order."""
        if self._sorted is None:
            self._sorted = sorted(self.data)
        keys = self._sorted
        i = bisect.bisect_left(keys, prefix + start)
        while i < len(keys) and keys[i].startswith(prefix):
            yield keys[i]
            i += 1

    def _rows(self, prefix: str) -> list[tuple[str, str]]:
        return [(k[len(prefix):], self.data[k]) for k in self._keys(prefix)]

    # -- meta and members ------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        return self.data.get(META + key)

    def set_meta(self, key: str, value: str) -> None:
        self._put(META + key, value)

    @staticmethod
    def _member(node: str, value: str) -> Member:
        d = json.loads(value)
        return Member(node, d["role"], d["vtep"], d["joined"])

    def members(self) -> list[Member]:
        return [self._member(node, v) for node, v in self._rows(MEMBERS)]

    def member(self, node: str) -> Member | None:
        value = self.data.get(MEMBERS + node)
        return self._member(node, value) if value is not None else None

    def add_member(self, m: Member) -> None:
        if MEMBERS + m.node in self.data:
            raise _unique("members.node")
        self._put(MEMBERS + m.node, _j({"role": m.role, "vtep": m.vtep, "joined": m.joined}))

    def remove_member(self, node: str) -> None:
        self._delete(MEMBERS + node)

    # -- networks ----------------------------------------------------------------------
    @staticmethod
    def _network(network_id: str, value: str) -> Network:
        d = json.loads(value)
        return Network(id=network_id, name=d["name"], driver=d["driver"], scope=Scope.SWARM,
                       created=d["created"], internal=d["internal"], attachable=d["attachable"],
                       ipv4=d["ipv4"], ipv6=d["ipv6"], options=d["options"], labels=d["labels"],
                       ipam=tuple(IPAMConfig(c["subnet"], c.get("ip_range"), c.get("gateway"),
                                             c.get("aux") or {}) for c in d["ipam"]))

    def _network_rows(self) -> list[tuple[str, dict]]:
        return [(nid, json.loads(v)) for nid, v in self._rows(NETWORKS)]

    def networks(self) -> list[Network]:
        nets = [self._network(nid, v) for nid, v in self._rows(NETWORKS)]
        return sorted(nets, key=lambda n: n.name)

    def network(self, network_id: str) -> Network | None:
        value = self.data.get(NETWORKS + network_id)
        return self._network(network_id, value) if value is not None else None

    def insert_network(self, net: Network, vni: int) -> None:
        rows = self._network_rows()         # checked in SQLite's order: vni, name, id
        if any(d["vni"] == vni for _, d in rows):
            raise _unique("networks.vni")
        if any(d["name"] == net.name for _, d in rows):
            raise _unique("networks.name")
        if NETWORKS + net.id in self.data:
            raise _unique("networks.id")
        ipam = [{"subnet": c.subnet, "ip_range": c.ip_range, "gateway": c.gateway, "aux": c.aux}
                for c in net.ipam]
        self._put(NETWORKS + net.id, _j({
            "name": net.name, "driver": net.driver, "created": net.created,
            "internal": bool(net.internal), "attachable": bool(net.attachable),
            "ipv4": bool(net.ipv4), "ipv6": bool(net.ipv6), "options": net.options,
            "labels": net.labels, "ipam": ipam, "vni": vni}))

    def delete_network(self, network_id: str) -> None:
        if NETWORKS + network_id not in self.data:
            return
        if any(ep.network_id == network_id for ep in self.endpoints()):
            raise _foreign_key()
        for key in list(self._keys(f"{ADDRESSES}{network_id}/")):
            self._delete(key)
        self._delete(NETWORKS + network_id)

    def vnis(self) -> dict[str, int]:
        return {nid: d["vni"] for nid, d in self._network_rows()}

    def all_subnets(self) -> list[str]:
        return [c.subnet for n in self.networks() for c in n.ipam]

    # -- addresses -----------------------------------------------------------------------
    @staticmethod
    def _addr_prefix(network_id: str, family: int) -> str:
        return f"{ADDRESSES}{network_id}/{family}/"

    def taken_from(self, network_id: str, family: int, start_key: str) -> Iterator[str]:
        prefix = self._addr_prefix(network_id, family)
        for key in list(self._keys(prefix, start_key)):
            yield key[len(prefix):]

    def address_owner(self, network_id: str, family: int, key: str) -> str | None:
        return self.data.get(self._addr_prefix(network_id, family) + key)

    def hold_address(self, network_id: str, family: int, key: str, owner: str) -> None:
        full = self._addr_prefix(network_id, family) + key
        if full in self.data:
            raise _unique("addresses.network_id, addresses.family, addresses.addr")
        if NETWORKS + network_id not in self.data:
            raise _foreign_key()
        self._put(full, owner)

    def release_address(self, network_id: str, family: int, key: str) -> None:
        self._delete(self._addr_prefix(network_id, family) + key)

    # -- endpoints published by nodes ------------------------------------------------------
    _EP = ("network_id", "node", "container_id", "container_name", "ipv4", "ipv6", "mac", "vtep")

    def endpoints(self, *, network_id: str | None = None,
                  node: str | None = None) -> list[ClusterEndpoint]:
        out = []
        for eid, value in self._rows(ENDPOINTS):
            d = json.loads(value)
            if (network_id and d["network_id"] != network_id) or \
                    (node is not None and d["node"] != node):
                continue
            out.append(ClusterEndpoint(eid, *(d[f] for f in self._EP),  # type: ignore[misc]  # _EP: the 8 fields before names
                                       names=tuple(d["names"])))
        return sorted(out, key=lambda e: (e.network_id, e.node, e.container_name))

    def publish_endpoint(self, ep: ClusterEndpoint) -> None:
        if ENDPOINTS + ep.id in self.data:
            raise _unique("endpoints.id")
        if NETWORKS + ep.network_id not in self.data:
            raise _foreign_key()
        d = {f: getattr(ep, f) for f in self._EP}
        d["names"] = list(ep.names)
        self._put(ENDPOINTS + ep.id, _j(d))

    def withdraw_endpoint(self, endpoint_id: str) -> None:
        self._delete(ENDPOINTS + endpoint_id)

    # -- swarm objects ---------------------------------------------------------------------
    def objects(self, kind: str) -> list[tuple[str, dict]]:
        return [(oid, json.loads(value)) for oid, value in self._rows(f"{OBJECTS}{kind}/")]

    def get_object(self, kind: str, object_id: str) -> dict | None:
        value = self.data.get(f"{OBJECTS}{kind}/{object_id}")
        return json.loads(value) if value is not None else None

    def put_object(self, kind: str, object_id: str, value: dict) -> None:
        self._put(f"{OBJECTS}{kind}/{object_id}", _j(value))

    def delete_object(self, kind: str, object_id: str) -> None:
        self._delete(f"{OBJECTS}{kind}/{object_id}")
