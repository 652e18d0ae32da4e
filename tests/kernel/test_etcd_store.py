"""The cluster store on a real etcd (netkit/store/etcd.py), beside SQLite.

etcd runs in simulated nodes (netkit/testing/etcd.py) on a LAN of the
test's own; the stores connect from another simulated node's netns (the
test process stays in the host's root netns, as the CLI's engine does).
One contract runs on both backends and must give identical results.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from netkit.errors import ClusterUnavailable, NetkitError, NotFound
from netkit.model import IPAMConfig, Network, Scope
from netkit.store.cluster import ClusterEndpoint, Member, SqliteClusterStore
from netkit.store.etcd import EtcdClusterStore
from tests.conftest import etcd_members, remove_lan, unique

pytestmark = pytest.mark.root
SUBNET, GATEWAY, CLIENT_IP = "192.168.79.0/24", "192.168.79.1", "192.168.79.10/24"


@pytest.fixture(scope="module")
def lan3(host, tmp_path_factory):
    """A LAN with a client node (whose netns the stores connect from) and a 3-member etcd."""
    lan = unique("l")
    host.create_lan(lan, SUBNET, gateway=GATEWAY)
    try:
        client = host.create_node(unique("c"), lan=lan, ip=CLIENT_IP)
        with etcd_members(host, lan, 3, str(tmp_path_factory.mktemp("etcd"))) as cluster:
            yield cluster, client.netns
    finally:
        remove_lan(host, lan)


@pytest.fixture
def etcd3(lan3):
    """The module's 3-member cluster with every member running (again) after the test."""
    cluster, netns = lan3
    yield cluster, netns
    for name in cluster.names:
        cluster.start_member(name, wait=False)
    cluster.wait_healthy(cluster.names)


def etcd_store(cluster, netns, cid=None, *, order=None, timeout=10.0, create=True):
    eps = cluster.endpoints()
    if order is not None:
        eps = [eps[i] for i in order]
    return EtcdClusterStore(eps, cid or unique("k"), create=create, netns=netns, timeout=timeout)


def net(name: str, subnet: str) -> Network:
    return Network(id=f"id-{name}", name=name, driver="overlay", scope=Scope.SWARM,
                   created="2026-01-01T00:00:00Z", attachable=True, options={"o": "1"},
                   labels={"l": name}, ipam=(IPAMConfig(subnet, None, subnet[:-4] + "1", {}),))


def ep(eid: str, network_id: str, node: str, name: str) -> ClusterEndpoint:
    return ClusterEndpoint(eid, network_id, node, f"c-{eid}", name, "10.0.9.2/24", None,
                           "02:42:0a:00:09:02", "192.168.79.20", (name, eid[:4]))


def scenario(store) -> list:
    """Every ClusterTx method, errors included; the results in order."""
    out: list = []

    def step(fn):
        try:
            with store.transaction() as tx:
                out.append(fn(tx))
        except NetkitError as exc:
            out.append((type(exc).__name__, str(exc)))
        out.append(store.version())

    v0 = store.version()
    step(lambda tx: [tx.add_member(Member(n, "manager" if n == "b" else "worker",
                                          f"192.168.79.{i}", "t")) for i, n in enumerate("cab")])
    step(lambda tx: tx.add_member(Member("a", "worker", "x", "t")))          # duplicate
    step(lambda tx: (tx.members(), tx.member("b"), tx.member("zz")))
    step(lambda tx: (tx.set_meta("token", "s3cr3t"), tx.meta("token"), tx.meta("missing"),
                     tx.meta("version")))
    step(lambda tx: (tx.insert_network(net("zeta", "10.0.9.0/24"), 4097),
                     tx.insert_network(net("alpha", "10.0.8.0/24"), 4098)))
    for bad in ((net("zeta", "10.1.0.0/24"), 1), (net("other", "10.2.0.0/24"), 4097)):
        step(lambda tx, bad=bad: tx.insert_network(*bad))
    step(lambda tx: tx.insert_network(replace(net("x", "10.3.0.0/24"), id="id-zeta"), 9))
    step(lambda tx: (tx.networks(), tx.network("id-alpha"), tx.network("nope"), tx.vnis(),
                     tx.all_subnets()))
    keys = ["0a000905", "0a000902", "0a000910", "0a000903"]
    step(lambda tx: [tx.hold_address("id-zeta", 4, k, f"o{k}") for k in keys])
    step(lambda tx: tx.hold_address("id-zeta", 4, "0a000902", "again"))        # duplicate
    step(lambda tx: tx.hold_address("id-nope", 4, "0a000902", "x"))            # no network
    step(lambda tx: (list(tx.taken_from("id-zeta", 4, "0a000903")), list(tx.taken_from(
        "id-zeta", 4, "")), list(tx.taken_from("id-zeta", 6, "")), tx.address_owner(
        "id-zeta", 4, "0a000910"), tx.address_owner("id-zeta", 4, "0a000911")))
    step(lambda tx: (tx.release_address("id-zeta", 4, "0a000905"),
                     tx.release_address("id-zeta", 4, "ffffffff"),
                     list(tx.taken_from("id-zeta", 4, "0"))))
    step(lambda tx: [tx.publish_endpoint(e) for e in (
        ep("e3", "id-zeta", "b", "web"), ep("e1", "id-zeta", "a", "db"),
        ep("e2", "id-alpha", "a", "api"), ep("e4", "id-zeta", "a", "cache"))])
    step(lambda tx: tx.publish_endpoint(ep("e1", "id-alpha", "a", "dup")))      # duplicate
    step(lambda tx: tx.publish_endpoint(ep("e9", "id-nope", "a", "x")))         # no network
    step(lambda tx: (tx.endpoints(), tx.endpoints(network_id="id-zeta"), tx.endpoints(node="a"),
                     tx.endpoints(network_id="id-zeta", node="b"), tx.endpoints(network_id="")))
    step(lambda tx: tx.delete_network("id-zeta"))                              # has endpoints
    step(lambda tx: (tx.withdraw_endpoint("e1"), tx.withdraw_endpoint("e3"),
                     tx.withdraw_endpoint("e4"), tx.withdraw_endpoint("e404")))
    step(lambda tx: (tx.delete_network("id-zeta"), tx.delete_network("id-zeta"),
                     list(tx.taken_from("id-zeta", 4, "")), tx.vnis()))
    step(lambda tx: (tx.remove_member("c"), tx.remove_member("nobody"), tx.members()))
    step(lambda tx: (tx.put_object("task", "t2", {"slot": 2, "node": "a"}),
                     tx.put_object("task", "t1", {"slot": 1}),
                     tx.put_object("service", "s1", {"name": "web", "spec": {"replicas": 3}}),
                     tx.objects("task"), tx.get_object("service", "s1"), tx.get_object("task", "x")))
    step(lambda tx: (tx.put_object("task", "t1", {"slot": 1, "state": "running"}),
                     tx.delete_object("task", "t2"), tx.delete_object("task", "nope"),
                     tx.objects("task"), tx.objects("secret")))

    def inside(tx):       # read-your-writes, and read() inside the open transaction sees them
        tx.add_member(Member("d", "worker", "y", "t"))
        tx.set_meta("k", "v")
        return tx.member("d"), store.read().member("d"), store.read().meta("k")
    step(inside)
    try:                  # an exception rolls everything back
        with store.transaction() as tx:
            tx.remove_member("d")
            tx.insert_network(net("gone", "10.4.0.0/24"), 77)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    r = store.read()
    out += [store.version() - v0, r.member("d"), [n.name for n in r.networks()], r.vnis()]
    tx = store.begin()                        # begin / rollback
    tx.remove_member("d")
    store.rollback()
    out.append(store.read().member("d") is not None)
    tx = store.begin()                        # begin / commit
    tx.remove_member("d")
    store.commit()
    out += [store.read().member("d"), store.version() - v0]
    return out


def test_contract_identical_on_sqlite_and_etcd(etcd3, tmp_path):
    cluster, netns = etcd3
    sq = SqliteClusterStore(str(tmp_path), "cid", create=True)
    et = etcd_store(cluster, netns)
    try:
        expect, got = scenario(sq), scenario(et)
        for i, (a, b) in enumerate(zip(expect, got)):
            assert a == b, f"step {i}: sqlite {a!r} != etcd {b!r}"
        assert len(expect) == len(got)
        assert ("NetkitError", "cluster store: FOREIGN KEY constraint failed") in got
        assert got[-1] == 17 and got[-2] is None       # each committed step bumped the version
    finally:
        sq.destroy()
        et.destroy()


def test_open_and_destroy(etcd3):
    cluster, netns = etcd3
    cid = unique("k")
    with pytest.raises(NotFound, match=f"cluster {cid} not found"):
        etcd_store(cluster, netns, cid, create=False)
    s = etcd_store(cluster, netns, cid)
    assert s.url == cluster.url and s.version() == 0
    t = etcd_store(cluster, netns, cid, create=False)
    t.destroy()
    with pytest.raises(NotFound):
        etcd_store(cluster, netns, cid, create=False)
    s.close()


def allocate(store, n: int, out: list, errors: list) -> None:
    try:
        for _ in range(n):
            with store.transaction() as tx:
                taken = set(tx.taken_from("id-n", 4, ""))
                key = next(f"{i:08x}" for i in range(1, 10_000) if f"{i:08x}" not in taken)
                tx.hold_address("id-n", 4, key, str(threading.get_ident()))
                vni = max(tx.vnis().values()) + 1
                tx.insert_network(net(f"n{vni}", "10.9.0.0/24"), vni)
                out.append((key, vni))
    except Exception as exc:
        errors.append(exc)


def test_two_writers_never_hand_out_one_address_or_vni_twice(etcd3):
    cluster, netns = etcd3
    first = etcd_store(cluster, netns)
    with first.transaction() as tx:
        tx.insert_network(net("n", "10.9.0.0/24"), 4096)
    stores = [first, etcd_store(cluster, netns, first.cluster_id, order=[1, 2, 0], create=False),
              etcd_store(cluster, netns, first.cluster_id, order=[2, 0, 1], create=False)]
    out: list = []
    errors: list = []
    threads = [threading.Thread(target=allocate, args=(s, 8, out, errors)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        assert len(out) == 24
        assert len({k for k, _ in out}) == 24 and len({v for _, v in out}) == 24
        r = first.read()
        assert len(list(r.taken_from("id-n", 4, ""))) == 24 and len(r.vnis()) == 25
        assert first.version() == 25
    finally:
        first.destroy()
        for s in stores[1:]:
            s.close()


def test_one_member_lost_changes_nothing(etcd3):
    cluster, netns = etcd3
    store = etcd_store(cluster, netns)            # the first listed endpoint will be down
    try:
        cluster.stop_member(cluster.names[0])
        t0 = time.monotonic()
        with store.transaction() as tx:
            tx.add_member(Member("a", "manager", "1.1.1.1", "t"))
        other = etcd_store(cluster, netns, store.cluster_id, create=False)
        assert other.read().member("a") is not None and other.version() == 1
        assert time.monotonic() - t0 < 8
        health = store.health()
        assert [h[1] for h in health] == [False, True, True]
        assert health[0][2] == "connection refused"
        other.close()
    finally:
        store.destroy()


def test_majority_lost_fails_cleanly_then_recovers(etcd3):
    cluster, netns = etcd3
    store = etcd_store(cluster, netns, timeout=4.0)
    with store.transaction() as tx:
        tx.add_member(Member("a", "manager", "1.1.1.1", "t"))
    tx = store.begin()                            # a change under way when the majority goes
    tx.add_member(Member("b", "worker", "1.1.1.2", "t"))
    tx.set_meta("half", "done")
    cluster.stop_member(cluster.names[1])
    cluster.stop_member(cluster.names[2])
    for call in (store.commit, store.version, store.read, store.begin):
        t0 = time.monotonic()
        with pytest.raises(ClusterUnavailable, match="does not have a leader"):
            call()
        assert time.monotonic() - t0 < 4.0 + 1.5, call
    cluster.start_member(cluster.names[1], wait=False)
    cluster.start_member(cluster.names[2], wait=False)
    cluster.wait_healthy(cluster.names)
    r = store.read()                              # nothing of the failed change
    assert [m.node for m in r.members()] == ["a"] and r.meta("half") is None
    assert store.version() == 1
    t0 = time.monotonic()                         # the store drops its own dead lock at once
    with store.transaction() as tx:
        tx.add_member(Member("c", "worker", "1.1.1.3", "t"))
    assert time.monotonic() - t0 < 2
    assert store.version() == 2
    store.destroy()


def test_lease_expiry_drops_the_node(etcd3):
    cluster, netns = etcd3
    a = etcd_store(cluster, netns)
    b = etcd_store(cluster, netns, a.cluster_id, create=False)
    try:
        a.keep_alive("na", 2)
        b.keep_alive("nb", 30)
        assert a.alive() == {"na", "nb"}
        for _ in range(3):                         # refreshed: stays
            time.sleep(1)
            a.keep_alive("na", 2)
        assert b.alive() == {"na", "nb"}
        time.sleep(4)                              # not refreshed: gone
        assert b.alive() == {"nb"}
        a.keep_alive("na", 2)                      # back with a new lease
        assert b.alive() == {"na", "nb"}
    finally:
        a.destroy()
        b.close()


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_wait_change_wakes_on_another_stores_write(etcd3, tmp_path, backend):
    cluster, netns = etcd3
    if backend == "sqlite":
        waiter = SqliteClusterStore(str(tmp_path), "w", create=True)
        writer = SqliteClusterStore(str(tmp_path), "w")
    else:
        waiter = etcd_store(cluster, netns)
        writer = etcd_store(cluster, netns, waiter.cluster_id, create=False, order=[2, 1, 0])
    try:
        v = waiter.version()
        t0 = time.monotonic()
        assert waiter.wait_change(v, 0.5) == v and time.monotonic() - t0 >= 0.45

        def write() -> None:
            time.sleep(0.5)
            with writer.transaction() as tx:
                tx.set_meta("x", "1")
        threading.Thread(target=write).start()
        t0 = time.monotonic()
        assert waiter.wait_change(v, 10) == v + 1
        assert 0.4 < time.monotonic() - t0 < 3
        assert waiter.wait_change(v, 10) == v + 1      # already different: at once
        if backend == "etcd":
            calls = waiter.gw.calls
            waiter.wait_change(v + 1, 1.0)
            assert waiter.gw.calls - calls == 2       # one read, one watch: no polling
        else:
            waiter.keep_alive("n", 5)
            assert waiter.alive() == {"n"} and writer.alive() == {"n"}
            assert waiter.health()[0][1] and waiter.url == "sqlite"
    finally:
        writer.close()
        waiter.destroy()


CRASHING_HOLDER = """
import os, sys
from netkit.store.etcd import EtcdClusterStore
store = EtcdClusterStore(sys.argv[1].split(","), sys.argv[2], netns=sys.argv[3])
store.begin().set_meta("crashed", "yes")
print("locked", flush=True)
os._exit(0)                          # no rollback, no release: as a crash
"""


def test_a_crashed_holders_lock_goes_with_its_lease(etcd3):
    import subprocess
    import sys
    cluster, netns = etcd3
    store = etcd_store(cluster, netns)
    try:
        proc = subprocess.run([sys.executable, "-c", CRASHING_HOLDER, ",".join(cluster.endpoints()),
                               store.cluster_id, netns], capture_output=True, text=True, timeout=60)
        assert proc.stdout == "locked\n", proc.stderr
        t0 = time.monotonic()
        with store.transaction() as tx:           # waits (a watch) until the lease expires
            assert tx.meta("crashed") is None
            tx.set_meta("after", "yes")
        waited = time.monotonic() - t0
        assert 3 < waited < 15, waited
        assert store.read().meta("after") == "yes" and store.version() == 1
    finally:
        store.destroy()


def test_round_trips_of_a_write_transaction(etcd_single):
    """On the conftest fixture's one-member cluster, from the member's own netns: a write
    transaction is two round trips (begin: lock + snapshot; commit: writes + version + unlock)."""
    store = EtcdClusterStore(etcd_single.endpoints(), unique("k"), create=True,
                             netns=etcd_single.netns[etcd_single.names[0]])
    try:
        with store.transaction() as tx:           # the first one also grants the store's lease
            tx.set_meta("a", "1")
        calls = store.round_trips
        with store.transaction() as tx:
            tx.add_member(Member("m", "manager", "1.1.1.1", "t"))
            tx.set_meta("b", tx.meta("a") or "")
        assert store.round_trips - calls == 2
        assert store.read().meta("b") == "1"
    finally:
        store.destroy()


def test_a_commit_above_etcds_txn_limit(etcd3):
    """300 writes (etcd allows 128 operations per txn): applied in parts under the lock, the
    version bumped once; deleting the network removes them all again."""
    cluster, netns = etcd3
    store = etcd_store(cluster, netns)
    try:
        with store.transaction() as tx:
            tx.insert_network(net("big", "10.7.0.0/22"), 4100)
            for i in range(300):
                tx.hold_address("id-big", 4, f"{0x0a070000 + i:08x}", f"o{i}")
        other = etcd_store(cluster, netns, store.cluster_id, create=False, order=[1, 2, 0])
        assert len(list(other.read().taken_from("id-big", 4, ""))) == 300
        assert other.version() == 1
        with other.transaction() as tx:
            tx.delete_network("id-big")
        assert store.read().vnis() == {} and not list(store.read().taken_from("id-big", 4, ""))
        assert store.version() == 2
        other.close()
    finally:
        store.destroy()


def test_a_big_commit_cut_off_half_way_is_finished_by_the_next_writer(etcd3):
    """The writer of a 300-write commit loses etcd after its first part: the change was
    recorded whole first, and the next writer (another store) applies the rest before its
    own transaction: nothing stays half-done."""
    cluster, netns = etcd3
    store = etcd_store(cluster, netns)
    other = etcd_store(cluster, netns, store.cluster_id, create=False, order=[2, 0, 1])
    try:
        with store.transaction() as tx:
            tx.insert_network(net("big", "10.7.0.0/22"), 4100)
        real, sent = store.gw.txn, []

        def cut_off(*args, **kw):
            sent.append(args)
            if len(sent) == 4:                 # begin, the record, one part: then etcd is gone
                raise ClusterUnavailable("gone")
            return real(*args, **kw)
        store.gw.txn = cut_off
        with pytest.raises(ClusterUnavailable):
            with store.transaction() as tx:
                for i in range(300):
                    tx.hold_address("id-big", 4, f"{0x0a070000 + i:08x}", f"o{i}")
        store.gw.txn = real
        assert 0 < len(list(store.read().taken_from("id-big", 4, ""))) < 300   # half-way
        with other.transaction() as tx:        # waits for the dead lock; finishes the change
            assert len(list(tx.taken_from("id-big", 4, ""))) == 300
            tx.set_meta("after", "1")
        assert len(list(store.read().taken_from("id-big", 4, ""))) == 300
        assert store.version() == 3
    finally:
        other.close()
        store.destroy()
