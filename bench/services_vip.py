"""Connections per second through a service VIP against direct connections to one task.

Three simulated nodes on one LAN form a swarm (embedded store); an
attachable overlay has three stand-in tasks (a TCP server each, answering
every connection with its name and closing it: two on node a, one on b) and
a client container on node c. The service and its tasks are written into
the cluster store as the managers and runners would (a VIP held in the
cluster IPAM and published as a cluster endpoint of node "", running Task
objects), so every node's agent programs the VIP (netkit/services/lb.py).

The client opens connections one after another for `--seconds` (connect,
read the name, close), to VIP:80 and to one task's address:80 directly, in
alternating runs of the same session; `--reps` runs each. RESULT lines:
the median connections per second of each path and their ratio (the
issue's goal: >= 0.8).

    python -m bench.services_vip [--seconds 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, workspace  # noqa: E402

SERVER = """
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(1024)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[1].encode())
    try:
        c.recv(1)                  # the client closes first (a reset: see CLIENT)
    except OSError:
        pass
    c.close()
"""
CLIENT = """
import json, socket, struct, sys, time
linger = struct.pack("ii", 1, 0)   # close with a reset: no TIME_WAIT on either side, so a
                                   # client port used again never meets an old connection
ip, seconds, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n, seen, t0 = 0, {}, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    try:
        with socket.create_connection((ip, 80), timeout=timeout) as c:
            name = c.recv(100).decode()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    except OSError as exc:
        name = type(exc).__name__
    seen[name] = seen.get(name, 0) + 1
    n += 1
print(json.dumps({"cps": n / (time.perf_counter() - t0), "seen": seen}))
"""
IPS = {"a": "192.168.94.10", "b": "192.168.94.11", "c": "192.168.94.12"}


def publish_service(engines: dict, net, tasks: dict) -> str:
    """A vip-mode service `web` on `net` with running tasks {container name: node key};
    returns its VIP."""
    from netkit.ipam import allocate
    from netkit.services.model import (RUNNING, Service, ServiceSpec, Task, new_object_id,
                                       put_service, put_task)
    from netkit.store.cluster import ClusterEndpoint
    sid = new_object_id()
    with engines["a"].cluster.store().transaction() as c:
        vip = allocate(c, c.network(net.id), 4, None, f"vip:{sid}", hints=False)
        put_service(c, Service(sid, ServiceSpec("web", ("bench",), networks=(net.id,)),
                               vips={net.id: vip}))
        c.publish_endpoint(ClusterEndpoint(f"vip-{net.id[:12]}-{sid}", net.id, "", sid, "web",
                                           vip, None, "", "", ("web",)))
        for slot, (name, k) in enumerate(tasks.items(), 1):
            ctr = engines[k].container(name)
            put_task(c, Task(new_object_id(), sid, "web", slot, node=engines[k].node_name,
                             state=RUNNING, desired=RUNNING, container_id=ctr.id,
                             addresses={net.id: ctr.endpoints[0].ipv4}))
    return vip.split("/")[0]


def cps(client, ip: str, seconds: float) -> dict:
    code, out = client.exec_output("client", [sys.executable, "-c", CLIENT, ip, str(seconds), "3"],
                                   timeout=seconds + 30)
    if code != 0:
        raise SystemExit(f"client to {ip} failed: {out}")
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    with workspace("netkit-vip.") as (root, run):
        host = Engine(root=root, run=run)
        tag = os.urandom(2).hex()
        lan, names = f"vl{tag}", {k: f"v{k}{tag}" for k in IPS}
        engines: dict = {}
        try:
            host.create_lan(lan, "192.168.94.0/24", gateway="192.168.94.1")
            for k, ip in IPS.items():
                host.create_node(names[k], lan=lan, ip=f"{ip}/24")
                engines[k] = Engine(names[k], root=root, run=run)
            engines["a"].swarm_init()
            for k in ("b", "c"):
                engines[k].swarm_join(names["a"])
            net = engines["a"].create_network(NetworkSpec("vipnet", driver="overlay",
                                                          attachable=True,
                                                          subnets=("10.0.94.0/24",)))
            tasks = {"w1": "a", "w2": "a", "w3": "b"}
            for name, k in tasks.items():
                engines[k].run(ContainerSpec(name=name, network="vipnet", detach=True,
                                             command=(sys.executable, "-c", SERVER, name)))
            engines["c"].run(ContainerSpec(name="client", network="vipnet", detach=True,
                                           command=("sleep", "3600")))
            t0 = time.perf_counter()
            vip = publish_service(engines, net, tasks)
            direct = engines["a"].container("w1").endpoints[0].ipv4_address
            while True:                 # until every task answers through the VIP
                code, out = engines["c"].exec_output(
                    "client", [sys.executable, "-c", CLIENT, vip, "0.05", "0.1"], timeout=30)
                if code == 0 and set(json.loads(out)["seen"]) == set(tasks):
                    break
                if time.perf_counter() - t0 > 20:
                    raise SystemExit(f"the VIP did not reach every task within 20 s: {out}")
            ready = time.perf_counter() - t0
            via, to = [], []
            for _ in range(args.reps):          # alternating, direct first
                to.append(cps(engines["c"], direct, args.seconds))
                via.append(cps(engines["c"], vip, args.seconds))
            med = lambda xs: sorted(x["cps"] for x in xs)[len(xs) // 2]   # noqa: E731
            spread: dict[str, int] = {}
            for r in via:
                for name, count in r["seen"].items():
                    spread[name] = spread.get(name, 0) + count
            emit(f"RESULT services_vip cps_vip={med(via):.0f} cps_direct={med(to):.0f} "
                 f"ratio={med(via) / med(to):.2f} tasks={len(tasks)} reps={args.reps} "
                 f"seconds={args.seconds} vip_ready_s={ready:.2f} "
                 f"spread={','.join(f'{n}:{spread[n]}' for n in sorted(spread))}")
        finally:
            for e in engines.values():
                e.close()
            for n in names.values():
                if any(x.name == n for x in host.nodes()):
                    host.remove_node(n, force=True)
            if any(x.name == lan for x in host.lans()):
                host.remove_lan(lan)
            host.close()


if __name__ == "__main__":
    main()
