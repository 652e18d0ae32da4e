"""Cluster store: etcd (watches) against SQLite (polling + pokes), between simulated hosts.

Per backend, two simulated hosts A and B on one simulated LAN form a swarm
with an attachable overlay; B runs a probe container. With etcd the hosts
have roots of their own and the cluster lives in a three-member etcd
cluster inside the LAN (netkit.testing.etcd), B joined with a token over
the LAN; with SQLite they share the cluster file, as before. Measured:

- convergence: `run` of a container on A; from the moment it returned (its
  cluster change is committed just before) until B's resolver answers the
  new container's name (a DNS query from the probe's netns), and until the
  first echo reply to the probe (an ICMP echo from the probe's netns to the
  address the name resolved to). B's agent programs the peer, then pushes
  the names, so a reply never waits for the kernel's ARP retry;
- `network create` of an overlay on A (then removed) and `network connect`
  of a running container on B to the overlay (then disconnected);
- etcd round trips per action (the store's gateway counts its calls).

    python -m bench.convergence [--reps 20] [--actions 10] [--backend etcd|sqlite|both]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import struct
import time

from bench.common import emit, percentile, workspace
from netkit.testing.etcd import remove_swarm

IPS = {"a": "192.168.94.10", "b": "192.168.94.20"}
SUBNET = "192.168.94.0/24"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo(netns: str, ip: str, timeout: float = 1.0) -> bool:
    """One ICMP echo from inside `netns` to `ip`; True on a reply within `timeout`."""
    from netkit.kernel import netns as kns
    ident, seq = os.getpid() & 0xFFFF, secrets.randbits(16)
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(head + b"netkit"), ident, seq) + b"netkit"
    with kns.socket_in(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(timeout)
        s.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, (src, _) = s.recvfrom(2048)
            except socket.timeout:
                return False
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if src == ip and kind == 0 and (rid, rseq) == (ident, seq):
                return True
    return False


def resolve(netns: str, name: str) -> str | None:
    """The A answer of the resolver 127.0.0.11 seen from inside `netns` (None: none yet)."""
    from dnslib import DNSRecord
    from netkit.kernel import netns as kns
    q = DNSRecord.question(name, "A")
    with kns.socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.connect(("127.0.0.11", 53))
        s.send(bytes(q.pack()))
        try:
            reply = DNSRecord.parse(s.recv(4096))
        except (ConnectionRefusedError, socket.timeout):
            return None
    return next((str(rr.rdata) for rr in reply.rr if rr.rtype == 1), None)


def _ms(values: list[float]) -> str:
    return (f"median={percentile(values, 50):.1f} p90={percentile(values, 90):.1f} "
            f"min={min(values):.1f} max={max(values):.1f}")


def measure(backend: str, root: str, run: str, reps: int, actions: int) -> None:
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    host = Engine(root=root, run=run)
    tag = secrets.token_hex(2)
    lan, names = f"cl{tag}", {k: f"c{k}{tag}" for k in IPS}
    engines: dict[str, Engine] = {}
    etcd = None
    try:
        host.create_lan(lan, SUBNET, gateway="192.168.94.1")
        own: dict = {k: {} for k in IPS}
        if backend == "etcd":
            from netkit.testing.etcd import EtcdCluster
            etcd = EtcdCluster(host, lan, [f"ce{i}{tag}" for i in range(3)],
                               data_root=os.path.join(root, "etcd"))
            etcd.start()
            own = {k: {"state_dir": os.path.join(root, "own", n, "state"),
                       "run_dir": os.path.join(run, "own", n)} for k, n in names.items()}
        for k, n in names.items():
            host.create_node(n, lan=lan, ip=f"{IPS[k]}/24", **own[k])
            engines[k] = Engine(n, root=root, run=run)
        ea, eb = engines["a"], engines["b"]
        ea.swarm_init(cluster_store=etcd.url if etcd else None)
        if etcd:
            eb.swarm_join(token=ea.swarm_join_token(), remote=IPS["a"])
        else:
            eb.swarm_join(names["a"])
        ea.create_network(NetworkSpec("ovl", driver="overlay", attachable=True,
                                      subnets=("10.0.94.0/24",)))
        probe = eb.run(ContainerSpec(name="probe", network="ovl", detach=True))[0]
        ns = probe.netns
        runs, dns, reply = [], [], []
        for i in range(reps):
            t0 = time.perf_counter()
            ea.run(ContainerSpec(name=f"t{i}", network="ovl", detach=True))
            t1 = time.perf_counter()
            while (ip := resolve(ns, f"t{i}")) is None:
                if time.perf_counter() - t1 > 10:
                    raise SystemExit(f"{backend}: t{i} not resolvable on B within 10 s")
                time.sleep(0.001)
            t2 = time.perf_counter()
            while not echo(ns, ip):
                if time.perf_counter() - t1 > 10:
                    raise SystemExit(f"{backend}: no reply from t{i} within 10 s")
            t3 = time.perf_counter()
            runs.append((t1 - t0) * 1000)
            dns.append((t2 - t1) * 1000)
            reply.append((t3 - t1) * 1000)
            ea.remove_container(f"t{i}", force=True)
        emit(f"RESULT convergence store={backend} reps={reps} run_ms {_ms(runs)}")
        emit(f"RESULT convergence store={backend} resolvable_on_b_ms {_ms(dns)}")
        emit(f"RESULT convergence store={backend} first_reply_on_b_ms {_ms(reply)}")
        calls = lambda e: e.cluster.store().gw.calls if etcd else 0     # noqa: E731
        creates, connects, create_calls, connect_calls = [], [], [], []
        eb.run(ContainerSpec(name="free", detach=True))
        for i in range(actions):
            c0, t0 = calls(ea), time.perf_counter()
            ea.create_network(NetworkSpec(f"n{i}", driver="overlay", attachable=True))
            creates.append((time.perf_counter() - t0) * 1000)
            create_calls.append(calls(ea) - c0)
            ea.remove_network(f"n{i}")
            c0, t0 = calls(eb), time.perf_counter()
            eb.connect("ovl", "free")
            connects.append((time.perf_counter() - t0) * 1000)
            connect_calls.append(calls(eb) - c0)
            eb.disconnect("ovl", "free")
        emit(f"RESULT actions store={backend} network_create_ms {_ms(creates)}"
             + (f" etcd_round_trips={percentile(create_calls, 50):.0f}" if etcd else ""))
        emit(f"RESULT actions store={backend} connect_ms {_ms(connects)}"
             + (f" etcd_round_trips={percentile(connect_calls, 50):.0f}" if etcd else ""))
    finally:
        remove_swarm(host, engines.values(), names.values(), etcd, lan)
        host.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--actions", type=int, default=10)
    ap.add_argument("--backend", choices=("etcd", "sqlite", "both"), default="both")
    args = ap.parse_args()
    for backend in (("sqlite", "etcd") if args.backend == "both" else (args.backend,)):
        with workspace("netkit-conv.") as (root, run):
            measure(backend, root, run, args.reps, args.actions)


if __name__ == "__main__":
    main()
