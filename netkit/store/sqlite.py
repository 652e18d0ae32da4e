"""SQLite store: one file per node, WAL, one BEGIN IMMEDIATE per action.

BEGIN IMMEDIATE takes the write lock up front, so concurrent CLI processes
acting on one node serialize for the whole action (IPAM included): no two
containers ever get the same address. Rows map to model dataclasses here
and nowhere else.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Union

from netkit.errors import InternalError, NetkitError
from netkit.model import Container, Endpoint, EndpointConfig, IPAMConfig, Lan, Network, Node, PortMapping, Scope, State
from netkit.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 120_000
Row = Union[sqlite3.Row, tuple[Any, ...]]
_INHERITED: list[object] = []    # a forked child's copies of the parent's connections: kept, never closed


@contextmanager
def _sqlite_errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise InternalError(f"state store: {what}: {exc}") from exc


class Store:
    """One node's SQLite store.

    `per_thread=True` (the Engine's): each thread gets a connection of its
    own, opened on first use, so threads sharing one Engine serialize on
    BEGIN IMMEDIATE as separate processes do; else one connection serves
    every thread (the resolver daemon's, whose `PRAGMA data_version` must
    come from one connection). Either way a child process after fork()
    opens connections of its own: the parent's are left untouched (closing
    an inherited SQLite connection could disturb the parent's locks).
    """

    def __init__(self, path: str, *, per_thread: bool = False) -> None:
        self.path = path
        self.per_thread = per_thread
        from netkit.secure import private_db, private_dir
        private_dir(os.path.dirname(path))            # 0700, not a symlink, ours
        private_db(path)                              # 0600 (its WAL and -shm follow its mode)
        self._reset()
        self._closed = False
        self._migrate()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._conns: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        self._conns_lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        """The calling thread's connection (opened on first use)."""
        if self._pid != os.getpid():                  # a forked child: the parent's are not ours
            _INHERITED.append((self._shared, self._conns))
            self._reset()
        if self._closed:
            raise InternalError(f"state store {self.path} is closed")
        conn = self._shared if not self.per_thread else getattr(self._local, "db", None)
        if conn is None:
            conn = self._connect()
        return conn

    def _connect(self) -> sqlite3.Connection:
        with _sqlite_errors(f"open {self.path}"):
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # the clock of the event triggers (schema.py, migration 5)
            conn.create_function("netkit_now_ns", 0, time.time_ns)
        if not self.per_thread:
            self._shared = conn
            return conn
        me = threading.current_thread()
        with self._conns_lock:
            for ident, (thread, old) in list(self._conns.items()):
                if not thread.is_alive():             # a finished thread's connection
                    del self._conns[ident]
                    old.close()
            self._conns[me.ident or 0] = (me, conn)
        self._local.db = conn
        return conn

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for n, script in enumerate(MIGRATIONS[version:], version + 1):
                for stmt in _statements(script):
                    self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={n}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator["Tx"]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
        with _sqlite_errors("begin"):
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(self.db)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        with _sqlite_errors("commit"):
            self.db.execute("COMMIT")

    def read(self) -> "Tx":
        """Reads outside a transaction (autocommit; WAL gives a consistent snapshot per query)."""
        return Tx(self.db)

    def close(self) -> None:
        """Close every connection of this store (idempotent)."""
        if self._closed or self._pid != os.getpid():
            self._closed = True
            return
        self._closed = True
        with self._conns_lock:
            conns = [conn for _, conn in self._conns.values()]
            self._conns.clear()
        for conn in conns + ([self._shared] if self._shared is not None else []):
            conn.close()
        self._shared = None


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script (a trigger's body has semicolons of its own)."""
    stmt = ""
    for part in script.split(";"):
        stmt += part + ";"
        if sqlite3.complete_statement(stmt):
            if stmt.strip(" \n;"):
                yield stmt
            stmt = ""


def _j(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class AddressRows:
    """The `addresses` table, shared by the node store and the cluster store.

    Keys are fixed-width hex (netkit.ipam.to_key), so text order is numeric
    order and `taken_from` walks the index from the allocator's hint.
    """

    db: sqlite3.Connection       # the subclass provides it, and q() / x():
    q: Callable[..., list[Any]]  # rows of a query
    x: Callable[..., Any]        # run a statement

    def taken_from(self, network_id: str, family: int, start_key: str) -> Iterator[str]:
        cur = self.db.execute("SELECT addr FROM addresses WHERE network_id=? AND family=? AND addr>=? "
                              "ORDER BY addr", (network_id, family, start_key))
        for (key,) in cur:
            yield key

    def address_owner(self, network_id: str, family: int, key: str) -> str | None:
        rows = self.q("SELECT owner FROM addresses WHERE network_id=? AND family=? AND addr=?",
                      (network_id, family, key))
        return rows[0][0] if rows else None

    def hold_address(self, network_id: str, family: int, key: str, owner: str) -> None:
        self.x("INSERT INTO addresses (network_id,family,addr,owner) VALUES (?,?,?,?)",
               (network_id, family, key, owner))

    def release_address(self, network_id: str, family: int, key: str) -> None:
        self.x("DELETE FROM addresses WHERE network_id=? AND family=? AND addr=?",
               (network_id, family, key))


class Tx(AddressRows):
    """Row <-> model mapping. All SQL of netkit lives here."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def q(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise InternalError(f"state store: {exc}") from exc

    def x(self, sql: str, args: Iterable[Any] = ()) -> int:
        try:
            return self.db.execute(sql, tuple(args)).rowcount
        except sqlite3.IntegrityError as exc:
            raise NetkitError(f"state store: {exc}") from exc
        except sqlite3.Error as exc:
            raise InternalError(f"state store: {exc}") from exc

    # -- networks -------------------------------------------------------------
    _NET = ("id,name,driver,scope,created,internal,attachable,ipv4,ipv6,options,labels,"
            "ipam_driver,ipam_options")

    def _network(self, row: Row) -> Network:
        pools = self.q("SELECT subnet,ip_range,gateway,aux FROM pools WHERE network_id=? ORDER BY seq",
                       (row[0],))
        return Network(id=row[0], name=row[1], driver=row[2], scope=Scope(row[3]), created=row[4],
                       internal=bool(row[5]), attachable=bool(row[6]), ipv4=bool(row[7]),
                       ipv6=bool(row[8]), options=json.loads(row[9]), labels=json.loads(row[10]),
                       ipam_driver=row[11], ipam_options=json.loads(row[12]),
                       ipam=tuple(IPAMConfig(p[0], p[1], p[2], json.loads(p[3])) for p in pools))

    def networks(self) -> list[Network]:
        return [self._network(r) for r in self.q(f"SELECT {self._NET} FROM networks")]

    def network(self, network_id: str) -> Network | None:
        rows = self.q(f"SELECT {self._NET} FROM networks WHERE id=?", (network_id,))
        return self._network(rows[0]) if rows else None

    def network_refs(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.q("SELECT id, name FROM networks")]

    def insert_network(self, net: Network) -> None:
        self.x(f"INSERT INTO networks ({self._NET}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (net.id, net.name, net.driver, net.scope.value, net.created, int(net.internal),
                int(net.attachable), int(net.ipv4), int(net.ipv6), _j(net.options), _j(net.labels),
                net.ipam_driver, _j(net.ipam_options)))
        for seq, cfg in enumerate(net.ipam):
            self.x("INSERT INTO pools (network_id,seq,subnet,ip_range,gateway,aux,hint) "
                   "VALUES (?,?,?,?,?,?,NULL)",
                   (net.id, seq, cfg.subnet, cfg.ip_range, cfg.gateway, _j(cfg.aux)))

    def delete_network(self, network_id: str) -> None:
        self.x("DELETE FROM addresses WHERE network_id=?", (network_id,))
        self.x("DELETE FROM pools WHERE network_id=?", (network_id,))
        self.x("DELETE FROM networks WHERE id=?", (network_id,))

    def all_subnets(self) -> list[str]:
        return [r[0] for r in self.q("SELECT subnet FROM pools")]

    # -- addresses ------------------------------------------------------------
    def pool_hint(self, network_id: str, seq: int) -> str | None:
        rows = self.q("SELECT hint FROM pools WHERE network_id=? AND seq=?", (network_id, seq))
        return rows[0][0] if rows else None

    def set_pool_hint(self, network_id: str, seq: int, hint: str | None) -> None:
        self.x("UPDATE pools SET hint=? WHERE network_id=? AND seq=?", (hint, network_id, seq))

    def count_addresses(self, network_id: str, family: int) -> int:
        return self.q("SELECT count(*) FROM addresses WHERE network_id=? AND family=?",
                      (network_id, family))[0][0]

    # -- containers -----------------------------------------------------------
    _CTR = ("id,name,hostname,created,network_mode,netns,command,pid,pid_start,state,exit_code,"
            "auto_remove,dns,options,started_at,finished_at,restart_count,error,netconfig")

    def _container(self, r: Row, endpoints: tuple[Endpoint, ...] = (),
                   ports: tuple[PortMapping, ...] = ()) -> Container:
        opts = json.loads(r[13])
        opts["pid_start"] = r[8]
        return Container(id=r[0], name=r[1], hostname=r[2], created=r[3], network_mode=r[4],
                         netns=r[5], command=tuple(json.loads(r[6])), pid=r[7], state=State(r[9]),
                         exit_code=r[10], auto_remove=bool(r[11]), dns=tuple(json.loads(r[12])),
                         options=opts, endpoints=endpoints, ports=ports, started_at=r[14],
                         finished_at=r[15], restart_count=r[16], error=r[17],
                         netconfig=tuple(EndpointConfig.from_json(d) for d in json.loads(r[18])))

    def containers(self, with_endpoints: bool = True) -> list[Container]:
        eps: dict[str, list[Endpoint]] = {}
        ports: dict[str, list[PortMapping]] = {}
        if with_endpoints:
            for ep in self.endpoints():
                eps.setdefault(ep.container_id, []).append(ep)
            for cid, pm in self.ports():
                ports.setdefault(cid, []).append(pm)
        return [self._container(r, tuple(eps.get(r[0], ())), tuple(ports.get(r[0], ())))
                for r in self.q(f"SELECT {self._CTR} FROM containers ORDER BY created DESC, name")]

    def container(self, container_id: str) -> Container | None:
        rows = self.q(f"SELECT {self._CTR} FROM containers WHERE id=?", (container_id,))
        if not rows:
            return None
        return self._container(rows[0], tuple(self.endpoints(container_id=container_id)),
                               tuple(pm for _, pm in self.ports(container_id)))

    # -- published ports --------------------------------------------------------
    def ports(self, container_id: str | None = None) -> list[tuple[str, PortMapping]]:
        sql = ("SELECT container_id,proto,host_ip,host_port,container_port,container_ip,network_id "
               "FROM ports")
        args: tuple = ()
        if container_id:
            sql += " WHERE container_id=?"
            args = (container_id,)
        return [(r[0], PortMapping(r[1], r[2], r[3], r[4], r[5], r[6]))
                for r in self.q(sql + " ORDER BY proto, host_port, host_ip", args)]

    def insert_port(self, container_id: str, pm: PortMapping) -> None:
        self.x("INSERT INTO ports (container_id,network_id,proto,host_ip,host_port,container_ip,"
               "container_port) VALUES (?,?,?,?,?,?,?)",
               (container_id, pm.network_id, pm.proto, pm.host_ip, pm.host_port, pm.container_ip,
                pm.container_port))

    def delete_ports(self, container_id: str) -> None:
        self.x("DELETE FROM ports WHERE container_id=?", (container_id,))

    def port_holder(self, proto: str, host_ip: str, host_port: int) -> str | None:
        """The container holding host_port/proto on host_ip (0.0.0.0 clashes with every address)."""
        rows = self.q("SELECT container_id FROM ports WHERE proto=? AND host_port=? AND "
                      "(host_ip=? OR host_ip='0.0.0.0' OR ?='0.0.0.0')",
                      (proto, host_port, host_ip, host_ip))
        return rows[0][0] if rows else None

    def container_refs(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.q("SELECT id, name FROM containers")]

    def container_named(self, name: str) -> str | None:
        """The id of the container called `name` (one indexed read, whatever their number)."""
        rows = self.q("SELECT id FROM containers WHERE name=?", (name,))
        return rows[0][0] if rows else None

    def insert_container(self, c: Container) -> None:
        opts = {k: v for k, v in c.options.items() if k != "pid_start"}
        self.x(f"INSERT INTO containers ({self._CTR}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (c.id, c.name, c.hostname, c.created, c.network_mode, c.netns, _j(list(c.command)),
                c.pid, c.options.get("pid_start"), c.state.value, c.exit_code, int(c.auto_remove),
                _j(list(c.dns)), _j(opts), c.started_at, c.finished_at, c.restart_count, c.error,
                _j([e.to_json() for e in c.netconfig])))

    def set_container_state(self, container_id: str, state: State, *, pid: int | None = None,
                            pid_start: int | None = None, exit_code: int | None = None) -> None:
        self.x("UPDATE containers SET state=?, pid=?, pid_start=?, exit_code=? WHERE id=?",
               (state.value, pid, pid_start, exit_code, container_id))

    _STATE_FIELDS = frozenset({"started_at", "finished_at", "restart_count", "error", "name"})

    def update_container(self, container_id: str, **fields: Any) -> None:
        """Set lifecycle fields (started_at, finished_at, restart_count, error, name)."""
        bad = set(fields) - self._STATE_FIELDS
        if bad:
            raise InternalError(f"update_container: unknown fields {sorted(bad)}")
        if fields:
            cols = ", ".join(f"{k}=?" for k in fields)
            self.x(f"UPDATE containers SET {cols} WHERE id=?", (*fields.values(), container_id))

    def count_supervised(self) -> int:
        """Containers whose process the node's agent runs or will restart."""
        return self.q("SELECT count(*) FROM containers WHERE (state='running' AND pid IS NOT NULL) "
                      "OR state='restarting'")[0][0]

    def set_netconfig(self, container_id: str, netconfig: Iterable[EndpointConfig]) -> None:
        self.x("UPDATE containers SET netconfig=? WHERE id=?",
               (_j([e.to_json() for e in netconfig]), container_id))

    def delete_container(self, container_id: str) -> None:
        self.x("DELETE FROM ports WHERE container_id=?", (container_id,))
        self.x("DELETE FROM endpoints WHERE container_id=?", (container_id,))
        self.x("DELETE FROM containers WHERE id=?", (container_id,))

    # -- endpoints ------------------------------------------------------------
    _EP = ("e.id,e.network_id,e.container_id,e.ifname,e.mac,e.ipv4,e.ipv6,e.aliases,e.links,"
           "e.static_ipv4,e.static_ipv6,e.host_ifname,n.name")

    def endpoints(self, *, container_id: str | None = None,
                  network_id: str | None = None) -> list[Endpoint]:
        sql = f"SELECT {self._EP} FROM endpoints e JOIN networks n ON n.id=e.network_id"
        where, args = [], []
        if container_id:
            where.append("e.container_id=?")
            args.append(container_id)
        if network_id:
            where.append("e.network_id=?")
            args.append(network_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.seq"
        return [Endpoint(id=r[0], network_id=r[1], container_id=r[2], ifname=r[3], mac=r[4],
                         ipv4=r[5], ipv6=r[6], aliases=tuple(json.loads(r[7])),
                         links=tuple(json.loads(r[8])), static_ipv4=bool(r[9]),
                         static_ipv6=bool(r[10]), host_ifname=r[11], network_name=r[12])
                for r in self.q(sql, args)]

    def count_endpoints(self, network_id: str) -> int:
        return self.q("SELECT count(*) FROM endpoints WHERE network_id=?", (network_id,))[0][0]

    def insert_endpoint(self, ep: Endpoint) -> None:
        seq = self.q("SELECT coalesce(max(seq),0)+1 FROM endpoints")[0][0]
        self.x("INSERT INTO endpoints (id,network_id,container_id,ifname,mac,ipv4,ipv6,aliases,links,"
               "static_ipv4,static_ipv6,host_ifname,seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (ep.id, ep.network_id, ep.container_id, ep.ifname, ep.mac, ep.ipv4, ep.ipv6,
                _j(list(ep.aliases)), _j(list(ep.links)), int(ep.static_ipv4), int(ep.static_ipv6),
                ep.host_ifname, seq))

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.x("DELETE FROM endpoints WHERE id=?", (endpoint_id,))

    # -- events (written by the triggers of schema.py, migration 5) ------------
    _EV = "seq,time_nano,type,action,actor,attributes"

    def add_event(self, type_: str, action: str, actor: str, attributes: dict[str, str]) -> None:
        """An event no store change implies (`stop`, `kill`): recorded with this transaction."""
        self.x("INSERT INTO events (time_nano,type,action,actor,attributes) VALUES (?,?,?,?,?)",
               (time.time_ns(), type_, action, actor, _j(attributes)))

    def events_after(self, seq: int, *, since_ns: int | None = None,
                     limit: int = 1000) -> list[tuple[int, int, str, str, str, dict[str, str]]]:
        """Events newer than `seq` (and not older than `since_ns`), oldest first:
        (seq, time_nano, type, action, actor, attributes)."""
        rows = self.q(f"SELECT {self._EV} FROM events WHERE seq>? AND time_nano>=? "
                      "ORDER BY seq LIMIT ?", (seq, since_ns or 0, limit))
        return [(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def last_event_seq(self) -> int:
        return self.q("SELECT coalesce(max(seq), 0) FROM events")[0][0]

    # -- nodes and LANs (kept in the real host's store) -----------------------
    def lans(self) -> list[Lan]:
        return [Lan(*r) for r in self.q("SELECT name,subnet,gateway,netns FROM lans ORDER BY name")]

    def lan(self, name: str) -> Lan | None:
        rows = self.q("SELECT name,subnet,gateway,netns FROM lans WHERE name=?", (name,))
        return Lan(*rows[0]) if rows else None

    def insert_lan(self, lan: Lan) -> None:
        self.x("INSERT INTO lans (name,subnet,gateway,netns) VALUES (?,?,?,?)",
               (lan.name, lan.subnet, lan.gateway, lan.netns))

    def delete_lan(self, name: str) -> None:
        self.x("DELETE FROM lans WHERE name=?", (name,))

    def _node(self, r: Row) -> Node:
        return Node(name=r[0], netns=r[1], lan=r[2], ip=r[3], gateway=r[4],
                    dns=tuple(json.loads(r[5])), created=r[6])

    def nodes(self) -> list[Node]:
        return [self._node(r) for r in
                self.q("SELECT name,netns,lan,ip,gateway,dns,created FROM nodes ORDER BY name")]

    def node(self, name: str) -> Node | None:
        rows = self.q("SELECT name,netns,lan,ip,gateway,dns,created FROM nodes WHERE name=?", (name,))
        return self._node(rows[0]) if rows else None

    def insert_node(self, node: Node) -> None:
        self.x("INSERT INTO nodes (name,netns,lan,ip,gateway,dns,created) VALUES (?,?,?,?,?,?,?)",
               (node.name, node.netns, node.lan, node.ip, node.gateway, _j(list(node.dns)),
                node.created))

    def delete_node(self, name: str) -> None:
        self.x("DELETE FROM nodes WHERE name=?", (name,))
