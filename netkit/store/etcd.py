"""The cluster store on etcd v3 (ARCHITECTURE.md §6; docs/architecture.md "The cluster
store on etcd").

The client is etcd3gw: it speaks etcd's HTTP/JSON gateway (/v3/...), so it
needs no gRPC build. It talks to one endpoint at a time, so
`etcd_gateway.Gateway` does the failover itself, every call bounded by
`timeout` (10 s by default): a call that cannot reach a majority raises
ClusterUnavailable within it. Reads are linearizable (etcd's default), so
a member cut off from the majority answers nothing rather than stale data.
Every socket is opened inside `netns` (netkit/kernel/netsock.py).

Write transactions span one engine action, as SQLite's BEGIN IMMEDIATE does:

  begin     one etcd txn: if the key `lock` does not exist (create_revision
            == 0), put it on this store's lease and read the whole prefix (the
            snapshot, at that revision); else read the holder's lock, wait for
            its deletion with a watch (in slices, re-trying, so a lost quorum
            still fails within about `timeout`) for at most LOCK_WAIT s.
  reads and writes  in memory (etcd_tx.EtcdClusterTx): read-your-writes.
  commit    one etcd txn: if the lock is still ours (its create_revision),
            apply every put/delete, put meta/version + 1 and delete the lock.
            A change too big for one txn (etcd's --max-txn-ops, 128) is first
            put whole as the record `pending`, then applied in parts, each
            with the same compare, the lock held until the last (which deletes
            the record). If the writer fails half-way, whoever takes the lock
            next finishes the record before its own transaction, so writers
            never see half a change (readers may, for that moment).
  rollback  delete the lock (if ours).

The lock's lease (LOCK_TTL s) is kept alive by a thread while the lock is
held, so a crashed holder's lock is freed by etcd when the lease expires. A
commit whose reply was lost (timeout) is re-sent to the next endpoint: its
puts are absolute and its compare fails if the first try applied; then a
live lease with our lock gone means it did apply. A typical write
transaction costs two round trips (+1 for a lease grant or refresh when the
store's lease is older than LOCK_TTL/2).

`version()` is meta/version; `wait_change` watches that key (no polling).
`keep_alive(node, ttl)` puts alive/<node> on a lease of its own.
"""

from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from netkit.errors import ClusterUnavailable, InternalError, InvalidArgument, NotFound
from netkit.store.etcd_gateway import (CONNECT_TIMEOUT, Gateway, created, delete, kvs, put,
                                       range_of, short, unb64)
from netkit.store.etcd_tx import ALIVE, DATA, LOCK, META, PENDING, EtcdClusterTx

LOCK_TTL = 10            # s: the write lock's lease (kept alive while held)
LOCK_WAIT = 120.0        # s: waiting for another writer's lock, as SQLite's busy timeout
MAX_TXN_OPS = 128        # etcd's default --max-txn-ops
VERSION = META + "version"


def parse_store_url(url: str) -> list[str]:
    """"etcd://10.0.0.5:2379,10.0.0.6:2379" -> ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]."""
    bad = InvalidArgument(f"invalid cluster store {url!r}: use etcd://HOST:PORT[,HOST:PORT...]")
    if not url.startswith("etcd://"):
        raise bad
    out = []
    for part in url[len("etcd://"):].split(","):
        host, sep, port = part.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            inner = host[1:-1]
            if not inner or ":" not in inner:
                raise bad
        elif not host or ":" in host or "[" in host:
            raise bad
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or \
                any(c in host for c in "/?#@ "):
            raise bad
        out.append(f"http://{host}:{int(port)}")
    return out


class EtcdClusterStore:
    """The cluster store in etcd, under /netkit/<cluster-id>/ (layout: netkit/store/etcd_tx.py)."""

    def __init__(self, endpoints: Sequence[str], cluster_id: str, *, create: bool = False,
                 netns: str | None = None, timeout: float = 10.0) -> None:
        if not endpoints:
            raise InvalidArgument("a cluster store needs at least one endpoint")
        self.cluster_id = cluster_id
        self.endpoints = list(endpoints)
        self.url = "etcd://" + ",".join(e.partition("://")[2] for e in self.endpoints)
        self.timeout = timeout
        self.prefix = f"/netkit/{cluster_id}/"
        self.gw = Gateway(self.endpoints, netns, timeout, self.url)
        self._tx: EtcdClusterTx | None = None
        self._lock_rev = 0                 # create_revision of our lock key while we hold it
        self._lease = 0                    # this store's lease for the lock, 0: none
        self._dropped: set[int] = set()    # our leases given up after etcd could not be reached
        self._lease_at = 0.0               # monotonic time it was last granted or refreshed
        self._keeper: tuple[threading.Thread, threading.Event] | None = None
        self._alive: tuple[str, int] | None = None       # (node, lease) of keep_alive
        try:
            if create:
                cid = self.prefix + META + "cluster_id"
                self.gw.txn([created(cid, 0)], [put(cid, cluster_id),
                                                 put(self.prefix + VERSION, "0")])
            elif not kvs(self.gw.range(self.prefix + META + "cluster_id")):
                raise NotFound(f"cluster {cluster_id} not found")
        except BaseException:
            self.gw.session.close()
            raise

    @property
    def round_trips(self) -> int:
        """Requests sent to etcd by this store so far (benchmarks: round trips per action)."""
        return self.gw.calls

    # -- leases ------------------------------------------------------------------------
    def _grant(self, ttl: int) -> int:
        return int(self.gw.post("lease/grant", {"TTL": str(ttl), "ID": "0"})["ID"])

    def _refresh(self, lease: int) -> int:
        """Keep `lease` alive; its TTL, 0 when it has expired."""
        try:
            reply = self.gw.post("lease/keepalive", {"ID": str(lease)})
        except InternalError:                 # "requested lease not found"
            return 0
        return int(reply.get("result", {}).get("TTL") or 0)

    def _lock_lease(self) -> int:
        now = time.monotonic()
        if self._lease and now - self._lease_at < LOCK_TTL / 2:
            return self._lease
        if not self._lease or self._refresh(self._lease) <= 0:
            self._lease = self._grant(LOCK_TTL)
        self._lease_at = time.monotonic()
        return self._lease

    def _keep_lock_alive(self) -> None:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(LOCK_TTL / 3):
                try:
                    if self._refresh(lease) > 0:
                        self._lease_at = time.monotonic()
                except Exception:               # commit finds out: the lock is gone then
                    pass

        lease = self._lease
        thread = threading.Thread(target=run, name="netkit-etcd-lock", daemon=True)
        thread.start()
        self._keeper = (thread, stop)

    def _stop_keeper(self) -> None:
        if self._keeper is not None:
            self._keeper[1].set()
            self._keeper = None

    # -- write transactions --------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[EtcdClusterTx]:
        """begin ... commit; rollback on any exception."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> EtcdClusterTx:
        """Take the cluster's write lock and a snapshot: an open write transaction the caller
        ends with commit() or rollback()."""
        if self._tx is not None:
            raise InternalError("cluster store: a transaction is already open")
        lock = self.prefix + LOCK
        give_up = time.monotonic() + LOCK_WAIT
        while True:
            lease = self._lock_lease()
            try:
                r = self.gw.txn([created(lock, 0)],
                                [put(lock, str(lease), lease),
                                 {"request_range": range_of(self.prefix, True)}],
                                [{"request_range": range_of(lock)}])
            except InternalError as exc:
                if "lease not found" not in str(exc):
                    raise
                self._lease = 0             # expired while we were not looking: a new one
                continue
            revision = int(r["header"]["revision"])
            if r.get("succeeded"):
                self._lock_rev = revision
                self._keep_lock_alive()
                data, pending = self._snapshot(r["responses"][1]["response_range"])
                if pending is not None:       # a big commit whose writer failed: finish it
                    try:
                        self._apply(json.loads(pending), release=False)
                        data, _ = self._snapshot(self.gw.range(self.prefix, prefix=True))
                    except BaseException:
                        self._stop_keeper()
                        self._drop_lease()
                        raise
                self._tx = EtcdClusterTx(data)
                return self._tx
            holder = kvs(r["responses"][0]["response_range"])
            if holder and int(holder[0].get("lease") or 0) in self._dropped | {lease}:
                # our own lock, left by a commit or rollback that could not reach etcd: drop it
                self.gw.txn([created(lock, int(holder[0]["create_revision"]))], [delete(lock)])
                continue
            left = give_up - time.monotonic()
            if left <= 0:
                raise ClusterUnavailable(f"the swarm's cluster store {self.url} is busy: another "
                                         f"node's change did not finish in {LOCK_WAIT:.0f} s")
            self.gw.watch(lock, revision + 1, min(left, self.timeout / 2))

    def _snapshot(self, response: dict) -> tuple[dict[str, str], str | None]:
        """The rows of a range read of the prefix, and the pending record if there is one."""
        out, pending = {}, None
        n = len(self.prefix)
        for kv in kvs(response):
            key = unb64(kv["key"])[n:]
            if key.startswith(DATA):
                out[key] = unb64(kv.get("value"))
            elif key == PENDING:
                pending = unb64(kv.get("value"))
        return out, pending

    def commit(self) -> None:
        """Apply the transaction's writes and bump the version in one etcd txn (if the lock is
        still ours), releasing the lock."""
        tx, self._tx = self._tx, None
        if tx is None:
            raise InternalError("cluster store: commit without a transaction")
        record: dict[str, Any] = {"version": int(tx.data.get(VERSION) or 0) + 1,
                                  "ops": list(tx.ops.items())}
        try:
            if len(record["ops"]) + 3 > MAX_TXN_OPS:
                # too big for one etcd txn: first the whole change as one record, then its
                # parts; whoever takes the lock next finishes it if we cannot
                if not self.gw.txn(self._mine(), [put(self.prefix + PENDING,
                                                      json.dumps(record))]).get("succeeded"):
                    raise self._lost()
            self._apply(record, release=True)
        except BaseException:
            self._drop_lease()              # not kept alive any more: the lock expires with it
            raise
        finally:
            self._stop_keeper()

    def _mine(self) -> list[dict]:
        return [created(self.prefix + LOCK, self._lock_rev)]

    def _apply(self, record: dict, *, release: bool) -> None:
        """The writes of `record` ({"version", "ops": [[key, value or None], ...]}), in etcd
        txns of at most MAX_TXN_OPS operations while the lock is ours; the last one puts the
        version, deletes the pending record and (`release`) the lock."""
        ops = [put(self.prefix + k, v) if v is not None else delete(self.prefix + k)
               for k, v in record["ops"]]
        last = [put(self.prefix + VERSION, str(record["version"])), delete(self.prefix + PENDING)]
        if release:
            last.append(delete(self.prefix + LOCK))
        while len(ops) + len(last) > MAX_TXN_OPS:
            chunk, ops = ops[:MAX_TXN_OPS], ops[MAX_TXN_OPS:]
            if not self.gw.txn(self._mine(), chunk).get("succeeded"):
                raise self._lost()
        if not self.gw.txn(self._mine(), ops + last).get("succeeded") and \
                not (release and self._applied()):
            raise self._lost()

    def _applied(self) -> bool:
        """After a commit whose compare failed: our lock is gone; if our lease still lives,
        nobody but that commit (sent twice after a lost reply) can have removed it."""
        try:
            reply = self.gw.post("kv/lease/timetolive", {"ID": str(self._lease)})
        except ClusterUnavailable:
            return False
        return int(reply.get("TTL") or -1) > 0

    def _lost(self) -> ClusterUnavailable:
        return ClusterUnavailable(f"the swarm's cluster store {self.url} lost this node's lock "
                                  "(unreachable for too long): the change was not made")

    def rollback(self) -> None:
        """Drop the transaction's writes and release the lock (best effort: if etcd cannot be
        reached the lock goes when its lease expires)."""
        if self._tx is None:
            return
        self._tx = None
        self._stop_keeper()
        try:
            self.gw.txn(self._mine(), [delete(self.prefix + LOCK)])
        except ClusterUnavailable:
            self._drop_lease()

    def _drop_lease(self) -> None:
        """Stop using the lock's lease (it expires, and our lock with it, unless our next
        begin() finds that lock first and deletes it)."""
        if self._lease:
            self._dropped.add(self._lease)
        self._lease = 0

    # -- reads --------------------------------------------------------------------------
    def read(self) -> EtcdClusterTx:
        """A consistent snapshot (one linearizable range read); inside an open write
        transaction, that transaction (its own writes visible, as on SQLite's connection)."""
        if self._tx is not None:
            return self._tx
        data, _ = self._snapshot(self.gw.range(self.prefix, prefix=True))
        return EtcdClusterTx(data, writable=False)

    def _version(self) -> tuple[int, int]:
        """(version, etcd revision it was read at)."""
        r = self.gw.range(self.prefix + VERSION)
        found = kvs(r)
        version = int(unb64(found[0].get("value")) or 0) if found else 0
        return version, int(r["header"]["revision"])

    def version(self) -> int:
        return self._version()[0]

    def wait_change(self, version: int, timeout: float) -> int:
        """Block until version() != `version` or `timeout` s passed (a watch on meta/version);
        the version then."""
        current, revision = self._version()
        deadline = time.monotonic() + timeout
        while current == version:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            events = self.gw.watch(self.prefix + VERSION, revision + 1, left)
            if events is None:
                break
            if not events:                      # cancelled (compacted): read it again
                return self.version()
            kv = events[-1].get("kv", {})
            current = int(unb64(kv.get("value")) or 0)
            revision = int(kv.get("mod_revision") or revision)
        return current

    # -- health and liveness ----------------------------------------------------------------
    def health(self) -> list[tuple[str, bool, str]]:
        """(endpoint, healthy, detail) for every listed endpoint, asked in parallel."""
        out: list[tuple[str, bool, str]] = [(e, False, "") for e in self.endpoints]
        wait = min(self.timeout, 3.0)

        def ask(i: int) -> None:
            try:
                r = self.gw.session.get(f"{self.endpoints[i]}/health",
                                        timeout=(min(CONNECT_TIMEOUT, wait), wait))
                body = r.json()
                ok = r.status_code == 200 and body.get("health") == "true"
                out[i] = (self.endpoints[i], ok, "healthy" if ok else
                          body.get("reason") or f"unhealthy ({r.status_code})")
            except Exception as exc:
                out[i] = (self.endpoints[i], False, short(exc))

        threads = [threading.Thread(target=ask, args=(i,), daemon=True)
                   for i in range(len(self.endpoints))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(wait + 1)
        return out

    def keep_alive(self, node: str, ttl: float) -> None:
        """alive/<node> on a lease of `ttl` s: granted on the first call, refreshed by the
        next ones (a new lease and key when the old one has expired)."""
        if self._alive is not None and self._alive[0] == node and self._refresh(self._alive[1]) > 0:
            return
        lease = self._grant(max(1, math.ceil(ttl)))
        self.gw.post("kv/put", put(self.prefix + ALIVE + node, "", lease)["request_put"])
        self._alive = (node, lease)

    def alive(self) -> set[str]:
        """The nodes whose alive key (lease) is current."""
        n = len(self.prefix + ALIVE)
        return {unb64(kv["key"])[n:] for kv in kvs(self.gw.range(self.prefix + ALIVE, prefix=True))}

    # -- the end ------------------------------------------------------------------------------
    def close(self) -> None:
        """Roll back an open transaction, stop the lock's keeper, close the connections (the
        alive lease is left to expire: a restarted agent takes over without a flap)."""
        if self._tx is not None:
            self.rollback()
        self._stop_keeper()
        self.gw.session.close()

    def destroy(self) -> None:
        """Delete the cluster's keys (the last member left) and close."""
        try:
            self.gw.post("kv/deleterange", range_of(self.prefix, True))
        finally:
            self.close()
