"""The cluster store on etcd v3 (ARCHITECTURE.md §6; docs/architecture.md "The cluster
store on etcd").

The client is etcd3gw: it speaks etcd's HTTP/JSON gateway (/v3/...), so it
needs no gRPC build; it talks to one endpoint at a time, so `_Gateway` does
the failover itself: every call goes to the current endpoint and, on a
connection error, a timeout or an etcd "unavailable" (no leader, request
timed out), moves on to the next listed endpoint, round and round until the
call's deadline (`timeout`, 10 s by default); then it raises
ClusterUnavailable. Reads are linearizable (etcd's default), so a member cut
off from the majority answers nothing rather than stale data. Every socket
is opened inside `netns` (netkit/kernel/netsock.py).

Write transactions span one engine action, as SQLite's BEGIN IMMEDIATE does:

  begin     one etcd txn: if the key `lock` does not exist (create_revision
            == 0), put it on this store's lease and read the whole prefix (the
            snapshot, at that revision); else read the holder's lock, wait for
            its deletion with a watch (in slices, re-trying, so a lost quorum
            still fails within about `timeout`) for at most LOCK_WAIT s.
  reads and writes  in memory (etcd_tx.EtcdClusterTx): read-your-writes.
  commit    one etcd txn: if the lock is still ours (its create_revision),
            apply every put/delete, put meta/version + 1 and delete the lock.
            More than MAX_TXN_OPS operations (etcd's --max-txn-ops, 128) are
            applied in several txns, each with the same compare, the lock
            held until the last (readers may then see a partial commit).
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

import base64
import json
import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from netkit.errors import ClusterUnavailable, InternalError, InvalidArgument, NotFound
from netkit.store.etcd_tx import ALIVE, DATA, LOCK, META, EtcdClusterTx

LOCK_TTL = 10            # s: the write lock's lease (kept alive while held)
LOCK_WAIT = 120.0        # s: waiting for another writer's lock, as SQLite's busy timeout
MAX_TXN_OPS = 128        # etcd's default --max-txn-ops
CONNECT_TIMEOUT = 2.0    # s: one TCP connect to one endpoint
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


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str | None) -> str:
    return base64.b64decode(s).decode() if s else ""


class _Retry(Exception):
    """This endpoint did not answer usefully: try the next one."""


class _Gateway:
    """etcd3gw clients for the listed endpoints, with failover and a deadline per call."""

    def __init__(self, endpoints: Sequence[str], netns: str | None, timeout: float,
                 url: str) -> None:
        from netkit.kernel.netsock import session
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.url = url
        self.session = session(netns)
        self.current = 0
        self.calls = 0                      # round trips made (benchmarks)

    def unavailable(self, detail: str) -> ClusterUnavailable:
        return ClusterUnavailable(f"the swarm's cluster store {self.url} does not have a leader: "
                                  f"make sure more than half of its members are online ({detail})")

    def _client(self, endpoint: str, timeout: float) -> Any:
        import etcd3gw
        proto, _, hostport = endpoint.partition("://")
        host, _, port = hostport.rpartition(":")
        return etcd3gw.Etcd3Client(host=host.strip("[]"), port=int(port), protocol=proto,
                                   timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                                   api_path="/v3/", session=self.session)

    def _rotation(self, deadline: float) -> Iterator[tuple[int, float]]:
        """(endpoint index, time left) from the current endpoint on, round and round."""
        n, tried = len(self.endpoints), 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if tried and tried % n == 0:
                time.sleep(min(0.2, left))   # all failed once: an election may be under way
            yield (self.current + tried) % n, deadline - time.monotonic()
            tried += 1

    def post(self, path: str, payload: dict, *, timeout: float | None = None) -> dict:
        from etcd3gw import exceptions as ex
        deadline = time.monotonic() + (timeout or self.timeout)
        per_try = max(1.0, (timeout or self.timeout) / 3)
        detail = "no endpoint answered"
        for i, left in self._rotation(deadline):
            if left <= 0:
                break
            client = self._client(self.endpoints[i], min(left, per_try))
            self.calls += 1
            try:
                result = client.post(client.get_url(path), json=payload)
                self.current = i
                return result
            except (ex.ConnectionFailedError, ex.ConnectionTimeoutError) as exc:
                detail = _short(exc)
            except ex.Etcd3Exception as exc:
                text = _short(exc)
                if not any(w in text for w in ("leader", "timed out", "unavailable", "stopped")):
                    raise InternalError(f"cluster store {self.url}: {text}") from exc
                detail = text
            except ValueError as exc:           # a cut-off reply
                detail = str(exc)
            except Exception as exc:            # requests' other transport errors
                if type(exc).__module__.split(".")[0] not in ("requests", "urllib3"):
                    raise
                detail = _short(exc)
            self.current = (i + 1) % len(self.endpoints)
        raise self.unavailable(detail)

    def watch(self, key: str, start_revision: int, wait: float) -> list[dict] | None:
        """Events on `key` from `start_revision` on, waiting up to `wait` s: a list (one
        event, or [] when the watch was cancelled: compacted), None when nothing happened.
        ClusterUnavailable when no endpoint could be watched for the whole wait."""
        import requests
        deadline = time.monotonic() + wait
        payload = {"create_request": {"key": _b64(key), "start_revision": str(start_revision)}}
        detail = "no endpoint answered"
        for i, left in self._rotation(deadline):
            self.calls += 1
            endpoint, established = self.endpoints[i], False
            try:
                with self.session.post(f"{endpoint}/v3/watch", json=payload, stream=True,
                                       timeout=(min(CONNECT_TIMEOUT, left), left)) as resp:
                    if resp.status_code != 200:
                        raise _Retry(f"{resp.status_code} {resp.reason}")
                    self.current, established = i, True
                    for line in resp.iter_lines():
                        msg = json.loads(line)
                        if "error" in msg:
                            raise _Retry(str(msg["error"].get("message")))
                        result = msg.get("result", {})
                        if result.get("events"):
                            return result["events"]
                        if result.get("canceled") or result.get("compact_revision"):
                            return []
                    raise _Retry("watch stream ended")
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if established and time.monotonic() >= deadline - 0.05:
                    return None                 # the wait is over, nothing happened
                detail = _short(exc)
            except (_Retry, ValueError, requests.exceptions.RequestException) as exc:
                detail = _short(exc)
            self.current = (i + 1) % len(self.endpoints)
        raise self.unavailable(detail)

    def txn(self, compare: list, success: list, failure: list = (), **kw: Any) -> dict:
        return self.post("kv/txn", {"compare": compare, "success": success,
                                    "failure": list(failure)}, **kw)

    def range(self, key: str, *, prefix: bool = False, **kw: Any) -> dict:
        return self.post("kv/range", _range(key, prefix), **kw)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ("Connection refused", "timed out", "No route to host", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return text[:160]


def _range(key: str, prefix: bool = False) -> dict:
    out = {"key": _b64(key)}
    if prefix:
        out["range_end"] = _b64(key[:-1] + chr(ord(key[-1]) + 1))
    return out


def _put(key: str, value: str, lease: int | None = None) -> dict:
    op: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        op["lease"] = str(lease)
    return {"request_put": op}


def _delete(key: str) -> dict:
    return {"request_delete_range": {"key": _b64(key)}}


def _created(key: str, revision: int) -> dict:
    return {"key": _b64(key), "result": "EQUAL", "target": "CREATE",
            "create_revision": str(revision)}


def _kvs(response: dict) -> list[dict]:
    return response.get("kvs") or []


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
        self.gw = _Gateway(self.endpoints, netns, timeout, self.url)
        self._tx: EtcdClusterTx | None = None
        self._lock_rev = 0                 # create_revision of our lock key while we hold it
        self._lease = 0                    # this store's lease for the lock, 0: none
        self._lease_at = 0.0               # monotonic time it was last granted or refreshed
        self._keeper: tuple[threading.Thread, threading.Event] | None = None
        self._alive: tuple[str, int] | None = None       # (node, lease) of keep_alive
        try:
            if create:
                cid = self.prefix + META + "cluster_id"
                self.gw.txn([_created(cid, 0)], [_put(cid, cluster_id),
                                                 _put(self.prefix + VERSION, "0")])
            elif not _kvs(self.gw.range(self.prefix + META + "cluster_id")):
                raise NotFound(f"cluster {cluster_id} not found")
        except BaseException:
            self.gw.session.close()
            raise

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
            r = self.gw.txn([_created(lock, 0)],
                            [_put(lock, str(lease), lease), {"request_range": _range(self.prefix, True)}],
                            [{"request_range": _range(lock)}])
            revision = int(r["header"]["revision"])
            if r.get("succeeded"):
                self._lock_rev = revision
                self._tx = EtcdClusterTx(self._snapshot(r["responses"][1]["response_range"]))
                self._keep_lock_alive()
                return self._tx
            holder = _kvs(r["responses"][0]["response_range"])
            if holder and int(holder[0].get("lease") or 0) == lease:
                # our own lock, left by a rollback that could not reach etcd: drop it
                self.gw.txn([_created(lock, int(holder[0]["create_revision"]))], [_delete(lock)])
                continue
            left = give_up - time.monotonic()
            if left <= 0:
                raise ClusterUnavailable(f"the swarm's cluster store {self.url} is busy: another "
                                         f"node's change did not finish in {LOCK_WAIT:.0f} s")
            self.gw.watch(lock, revision + 1, min(left, self.timeout / 2))

    def _snapshot(self, response: dict) -> dict[str, str]:
        out = {}
        n = len(self.prefix)
        for kv in _kvs(response):
            key = _unb64(kv["key"])[n:]
            if key.startswith(DATA):
                out[key] = _unb64(kv.get("value"))
        return out

    def commit(self) -> None:
        """Apply the transaction's writes and bump the version in one etcd txn (if the lock is
        still ours), releasing the lock."""
        tx, self._tx = self._tx, None
        if tx is None:
            raise InternalError("cluster store: commit without a transaction")
        try:
            ops = [_put(self.prefix + k, v) if v is not None else _delete(self.prefix + k)
                   for k, v in tx.ops.items()]
            version = int(tx.data.get(VERSION) or 0) + 1
            last = [_put(self.prefix + VERSION, str(version)), _delete(self.prefix + LOCK)]
            mine = [_created(self.prefix + LOCK, self._lock_rev)]
            step = MAX_TXN_OPS - 1
            while len(ops) + len(last) > MAX_TXN_OPS:
                chunk, ops = ops[:step], ops[step:]
                if not self.gw.txn(mine, chunk).get("succeeded"):
                    raise self._lost()
            if not self.gw.txn(mine, ops + last).get("succeeded") and not self._applied():
                raise self._lost()
        except BaseException:
            self._lease = 0                 # not kept alive any more: the lock expires with it
            raise
        finally:
            self._stop_keeper()

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
            self.gw.txn([_created(self.prefix + LOCK, self._lock_rev)], [_delete(self.prefix + LOCK)])
        except ClusterUnavailable:
            self._lease = 0

    # -- reads --------------------------------------------------------------------------
    def read(self) -> EtcdClusterTx:
        """A consistent snapshot (one linearizable range read); inside an open write
        transaction, that transaction (its own writes visible, as on SQLite's connection)."""
        if self._tx is not None:
            return self._tx
        return EtcdClusterTx(self._snapshot(self.gw.range(self.prefix, prefix=True)),
                             writable=False)

    def _version(self) -> tuple[int, int]:
        """(version, etcd revision it was read at)."""
        r = self.gw.range(self.prefix + VERSION)
        kvs = _kvs(r)
        return (int(_unb64(kvs[0].get("value")) or 0) if kvs else 0), int(r["header"]["revision"])

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
            current = int(_unb64(kv.get("value")) or 0)
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
                out[i] = (self.endpoints[i], False, _short(exc))

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
        self.gw.post("kv/put", _put(self.prefix + ALIVE + node, "", lease)["request_put"])
        self._alive = (node, lease)

    def alive(self) -> set[str]:
        """The nodes whose alive key (lease) is current."""
        n = len(self.prefix + ALIVE)
        return {_unb64(kv["key"])[n:] for kv in _kvs(self.gw.range(self.prefix + ALIVE, prefix=True))}

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
            self.gw.post("kv/deleterange", _range(self.prefix, True))
        finally:
            self.close()
