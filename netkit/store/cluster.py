"""The cluster store: state every node of a swarm shares (ARCHITECTURE.md §6).

What lives here, and nowhere else: the cluster's members (node, role,
VTEP address), its swarm-scoped networks with their VNIs, the IPAM
addresses held in those networks (cluster-wide, so two nodes never hand
out one address) and the endpoints each node publishes (what the other
nodes need to program VXLAN peers and, later, to answer DNS queries).

A node's membership is the file `<node state root>/swarm.json` naming the
cluster (`read_cluster_id`). `ClusterStore` is the interface;
`SqliteClusterStore` keeps it in one shared SQLite file
`NETKIT_ROOT/cluster/<cluster-id>.db` (WAL, one BEGIN IMMEDIATE per write),
which is enough for nodes simulated on one machine. A networked store
(etcd, as Docker's classic overlay used) fits behind the same interface:
`transaction()` is a compare-and-swap round, `version()` its revision.

Every committed write transaction bumps `version()`, so a watcher (the
node agent, netkit/agent/README.md) can wait on one integer to know that
something changed (`wait_change`: a watch on etcd, polling on SQLite).
`keep_alive(node, ttl)` / `alive()` are the nodes' liveness: a lease on
etcd, a heartbeat row with an expiry here. `EtcdClusterStore`
(netkit/store/etcd.py, imported only when a cluster uses etcd) is the
networked backend.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol

from netkit.errors import InternalError, NetkitError
from netkit.model import IPAMConfig, Network, Scope
from netkit.store.sqlite import AddressRows

BUSY_TIMEOUT_MS = 120_000
POLL_INTERVAL = 0.05                 # s: SQLite's wait_change polls its version this often
MANAGER, WORKER = "manager", "worker"
SWARM_FILE = "swarm.json"            # in a node's state root: the cluster it is a member of

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    node TEXT PRIMARY KEY, role TEXT NOT NULL, vtep TEXT NOT NULL, joined TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL, created TEXT NOT NULL,
    internal INTEGER NOT NULL, attachable INTEGER NOT NULL, ipv4 INTEGER NOT NULL,
    ipv6 INTEGER NOT NULL, options TEXT NOT NULL, labels TEXT NOT NULL, ipam TEXT NOT NULL,
    vni INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS addresses (
    network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    family INTEGER NOT NULL, addr TEXT NOT NULL, owner TEXT NOT NULL,
    PRIMARY KEY (network_id, family, addr)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    node TEXT NOT NULL, container_id TEXT NOT NULL, container_name TEXT NOT NULL,
    ipv4 TEXT, ipv6 TEXT, mac TEXT NOT NULL, vtep TEXT NOT NULL, names TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS endpoints_by_network ON endpoints(network_id);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
"""
# swarm objects (netkit/services/model.py): services, tasks, secrets, configs, node attributes.
# A file made before they existed gets the table on first use (OBJECTS_TABLE).
OBJECTS_TABLE = ("CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, id TEXT NOT NULL, "
                 "value TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID")
ALIVE_TABLE = "CREATE TABLE IF NOT EXISTS alive (node TEXT PRIMARY KEY, expires REAL NOT NULL)"


@dataclass(frozen=True, slots=True)
class Member:
    node: str
    role: str                  # "manager" or "worker"
    vtep: str                  # the node's LAN address: VXLAN tunnels end there
    joined: str = ""


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    """An endpoint of a swarm network, as its node publishes it to the others."""

    id: str
    network_id: str
    node: str
    container_id: str
    container_name: str
    ipv4: str | None           # "10.0.9.2/24"
    ipv6: str | None
    mac: str
    vtep: str
    names: tuple[str, ...] = ()   # DNS names on this network: name, aliases, short id


class ClusterTx(Protocol):
    """Reads and writes of one cluster transaction."""

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def members(self) -> list[Member]: ...
    def member(self, node: str) -> Member | None: ...
    def add_member(self, m: Member) -> None: ...
    def remove_member(self, node: str) -> None: ...
    def networks(self) -> list[Network]: ...
    def network(self, network_id: str) -> Network | None: ...
    def insert_network(self, net: Network, vni: int) -> None: ...
    def delete_network(self, network_id: str) -> None: ...
    def vnis(self) -> dict[str, int]: ...
    def all_subnets(self) -> list[str]: ...
    def taken_from(self, network_id: str, family: int, start_key: str) -> Iterator[str]: ...
    def address_owner(self, network_id: str, family: int, key: str) -> str | None: ...
    def hold_address(self, network_id: str, family: int, key: str, owner: str) -> None: ...
    def release_address(self, network_id: str, family: int, key: str) -> None: ...
    def endpoints(self, *, network_id: str | None = None,
                  node: str | None = None) -> list[ClusterEndpoint]: ...
    def publish_endpoint(self, ep: ClusterEndpoint) -> None: ...
    def withdraw_endpoint(self, endpoint_id: str) -> None: ...
    # swarm objects (services, tasks, secrets, configs, node attributes: netkit/services):
    # JSON objects of a kind, keyed by id; `objects` lists a kind in id order
    def objects(self, kind: str) -> list[tuple[str, dict]]: ...
    def get_object(self, kind: str, object_id: str) -> dict | None: ...
    def put_object(self, kind: str, object_id: str, value: dict) -> None: ...
    def delete_object(self, kind: str, object_id: str) -> None: ...


class ClusterStore(Protocol):
    """State shared by the nodes of one swarm.

    `transaction()` is atomic and serialised against every other writer of
    the cluster (all nodes); `read()` gives a consistent view for reading.
    `version()` increases with every committed write: equal versions mean
    nothing changed. Implementations: SqliteClusterStore (one machine) and
    EtcdClusterStore (netkit/store/etcd.py). Calls that cannot reach the
    store raise ClusterUnavailable (etcd: within the store's timeout).
    """

    cluster_id: str
    url: str                        # "sqlite" or "etcd://host:port,..."

    def transaction(self) -> AbstractContextManager[ClusterTx]: ...
    def begin(self) -> ClusterTx: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def read(self) -> ClusterTx: ...
    def version(self) -> int: ...

    def wait_change(self, version: int, timeout: float) -> int:
        """Block until version() != `version` or `timeout` s passed; the version then."""

    def health(self) -> list[tuple[str, bool, str]]:
        """(endpoint, healthy, detail) for each of the store's endpoints."""

    def keep_alive(self, node: str, ttl: float) -> None:
        """`node` is alive for the next `ttl` s (a lease or heartbeat; refreshed by each call)."""

    def alive(self) -> set[str]:
        """The nodes whose keep_alive has not expired."""

    def close(self) -> None: ...
    def destroy(self) -> None: ...


def read_cluster_id(node_root: str) -> str | None:
    """The cluster the node whose state root is `node_root` is a member of (None: none)."""
    try:
        with open(os.path.join(node_root, SWARM_FILE)) as f:
            return json.load(f)["cluster"]
    except (OSError, ValueError, KeyError):
        return None


def cluster_path(root: str, cluster_id: str) -> str:
    return os.path.join(root, "cluster", f"{cluster_id}.db")


def _j(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class SqliteClusterStore:
    """The cluster store in one shared SQLite file (WAL, BEGIN IMMEDIATE)."""

    url = "sqlite"

    def __init__(self, root: str, cluster_id: str, *, create: bool = False) -> None:
        from netkit.errors import NotFound
        self.cluster_id = cluster_id
        self.path = cluster_path(root, cluster_id)
        if not create and not os.path.exists(self.path):
            raise NotFound(f"cluster {cluster_id} not found")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        from netkit.secure import private_db
        private_db(self.path)
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                      isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if create:
                self.db.execute("BEGIN IMMEDIATE")
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('version', '0')")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('cluster_id', ?)", (cluster_id,))
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise InternalError(f"cluster store: open {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator["SqliteClusterTx"]:
        """BEGIN IMMEDIATE ... bump version, COMMIT; ROLLBACK on any exception."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise InternalError(f"cluster store: begin: {exc}") from exc
        try:
            yield SqliteClusterTx(self.db)
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise InternalError(f"cluster store: commit: {exc}") from exc

    def begin(self) -> "SqliteClusterTx":
        """An open write transaction the caller ends with commit() or rollback()
        (the engine keeps one open for the length of one action)."""
        self.db.execute("BEGIN IMMEDIATE")
        return SqliteClusterTx(self.db)

    def commit(self) -> None:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def read(self) -> "SqliteClusterTx":
        return SqliteClusterTx(self.db)

    def version(self) -> int:
        return int(self.read().meta("version") or 0)

    def wait_change(self, version: int, timeout: float) -> int:
        """Poll version() (a local read) until it differs from `version` or `timeout` s passed."""
        deadline = time.monotonic() + timeout
        current = self.version()
        while current == version and time.monotonic() < deadline:
            time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
            current = self.version()
        return current

    def health(self) -> list[tuple[str, bool, str]]:
        try:
            self.db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            return [(self.path, False, str(exc))]
        return [(self.path, True, "healthy")]

    def _heartbeat(self, sql: str, args: tuple) -> list[tuple]:
        """One statement on the `alive` table (made on first use: older files lack it), in a
        transaction of its own unless one is open."""
        own = not self.db.in_transaction
        try:
            if own:
                self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(ALIVE_TABLE)
            rows = self.db.execute(sql, args).fetchall()
            if own:
                self.db.execute("COMMIT")
            return rows
        except sqlite3.Error as exc:
            if own and self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise InternalError(f"cluster store: {exc}") from exc

    def keep_alive(self, node: str, ttl: float) -> None:
        """A heartbeat row for `node` that expires `ttl` s from now (wall clock: one machine)."""
        self._heartbeat("INSERT OR REPLACE INTO alive (node, expires) VALUES (?, ?)",
                        (node, time.time() + ttl))

    def alive(self) -> set[str]:
        return {r[0] for r in self._heartbeat("SELECT node FROM alive WHERE expires > ?",
                                              (time.time(),))}

    def close(self) -> None:
        self.db.close()

    def destroy(self) -> None:
        """Close and delete the cluster's files (the last member left)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass


class SqliteClusterTx(AddressRows):
    """Row <-> model mapping of the cluster store. All its SQL lives here."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def q(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise InternalError(f"cluster store: {exc}") from exc

    def x(self, sql: str, args: tuple = ()) -> None:
        try:
            self.db.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise NetkitError(f"cluster store: {exc}") from exc
        except sqlite3.Error as exc:
            raise InternalError(f"cluster store: {exc}") from exc

    # -- meta and members ------------------------------------------------------
    def meta(self, key: str) -> str | None:
        rows = self.q("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.x("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def members(self) -> list[Member]:
        return [Member(*r) for r in self.q("SELECT node,role,vtep,joined FROM members ORDER BY node")]

    def member(self, node: str) -> Member | None:
        rows = self.q("SELECT node,role,vtep,joined FROM members WHERE node=?", (node,))
        return Member(*rows[0]) if rows else None

    def add_member(self, m: Member) -> None:
        self.x("INSERT INTO members (node,role,vtep,joined) VALUES (?,?,?,?)",
               (m.node, m.role, m.vtep, m.joined))

    def remove_member(self, node: str) -> None:
        self.x("DELETE FROM members WHERE node=?", (node,))

    # -- networks ----------------------------------------------------------------
    _NET = "id,name,driver,created,internal,attachable,ipv4,ipv6,options,labels,ipam"

    @staticmethod
    def _network(r: tuple) -> Network:
        return Network(id=r[0], name=r[1], driver=r[2], scope=Scope.SWARM, created=r[3],
                       internal=bool(r[4]), attachable=bool(r[5]), ipv4=bool(r[6]), ipv6=bool(r[7]),
                       options=json.loads(r[8]), labels=json.loads(r[9]),
                       ipam=tuple(IPAMConfig(c["subnet"], c.get("ip_range"), c.get("gateway"),
                                             c.get("aux") or {}) for c in json.loads(r[10])))

    def networks(self) -> list[Network]:
        return [self._network(r) for r in self.q(f"SELECT {self._NET} FROM networks ORDER BY name")]

    def network(self, network_id: str) -> Network | None:
        rows = self.q(f"SELECT {self._NET} FROM networks WHERE id=?", (network_id,))
        return self._network(rows[0]) if rows else None

    def insert_network(self, net: Network, vni: int) -> None:
        ipam = [{"subnet": c.subnet, "ip_range": c.ip_range, "gateway": c.gateway, "aux": c.aux}
                for c in net.ipam]
        self.x(f"INSERT INTO networks ({self._NET},vni) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (net.id, net.name, net.driver, net.created, int(net.internal), int(net.attachable),
                int(net.ipv4), int(net.ipv6), _j(net.options), _j(net.labels), _j(ipam), vni))

    def delete_network(self, network_id: str) -> None:
        self.x("DELETE FROM addresses WHERE network_id=?", (network_id,))
        self.x("DELETE FROM networks WHERE id=?", (network_id,))

    def vnis(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.q("SELECT id, vni FROM networks")}

    def all_subnets(self) -> list[str]:
        return [c.subnet for n in self.networks() for c in n.ipam]

    # addresses: AddressRows (the node store's table and keys, netkit/store/sqlite.py)

    # -- endpoints published by nodes ------------------------------------------
    _EP = "id,network_id,node,container_id,container_name,ipv4,ipv6,mac,vtep,names"

    def endpoints(self, *, network_id: str | None = None,
                  node: str | None = None) -> list[ClusterEndpoint]:
        sql, where, args = f"SELECT {self._EP} FROM endpoints", [], []
        if network_id:
            where.append("network_id=?")
            args.append(network_id)
        if node is not None:
            where.append("node=?")
            args.append(node)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [ClusterEndpoint(*r[:9], names=tuple(json.loads(r[9])))  # type: ignore[misc]  # 9 fields before names
                for r in self.q(sql + " ORDER BY network_id, node, container_name", tuple(args))]

    def publish_endpoint(self, ep: ClusterEndpoint) -> None:
        self.x(f"INSERT INTO endpoints ({self._EP}) VALUES (?,?,?,?,?,?,?,?,?,?)",
               (ep.id, ep.network_id, ep.node, ep.container_id, ep.container_name, ep.ipv4,
                ep.ipv6, ep.mac, ep.vtep, _j(list(ep.names))))

    def withdraw_endpoint(self, endpoint_id: str) -> None:
        self.x("DELETE FROM endpoints WHERE id=?", (endpoint_id,))

    # -- swarm objects -------------------------------------------------------------
    def _objects_sql(self, sql: str, args: tuple) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table: objects" not in str(exc):
                raise InternalError(f"cluster store: {exc}") from exc
            if sql.startswith("SELECT") and not self.db.in_transaction:
                return []                  # an older file, read outside a write: no objects yet
            self.x(OBJECTS_TABLE)
            return self.q(sql, args)

    def objects(self, kind: str) -> list[tuple[str, dict]]:
        return [(r[0], json.loads(r[1])) for r in
                self._objects_sql("SELECT id, value FROM objects WHERE kind=? ORDER BY id", (kind,))]

    def get_object(self, kind: str, object_id: str) -> dict | None:
        rows = self._objects_sql("SELECT value FROM objects WHERE kind=? AND id=?", (kind, object_id))
        return json.loads(rows[0][0]) if rows else None

    def put_object(self, kind: str, object_id: str, value: dict) -> None:
        self._objects_sql("INSERT OR REPLACE INTO objects (kind, id, value) VALUES (?, ?, ?)",
                          (kind, object_id, _j(value)))

    def delete_object(self, kind: str, object_id: str) -> None:
        self._objects_sql("DELETE FROM objects WHERE kind=? AND id=?", (kind, object_id))
