"""Swarm services end to end: create -> answering through the VIP, scale 3 -> 100 -> 3.

Three simulated nodes a (manager), b, c (workers) on one simulated LAN form
a swarm on the SQLite store; an attachable overlay `svcnet` and a client
container on node c (the bench opens its connections from inside the
client's netns, as convergence.py does, so no exec sits in the timing).
Real services, made with `Engine.service_create` on a's engine; the
reconciler, the runners and the load balancing in the nodes' agents do the
rest. Measured:

1. create: `service_create(replicas=3, networks=(svcnet,), command=probe
   serve tcp 80 --hostname)`; from its return until every task answered
   (its host name) through the VIP from the client (the issue's goal:
   <= 2 s). The tasks spread one per node, so two of the three are on
   other nodes than the client. Repeated --reps times (create, measure,
   remove, wait until no task object and no task container is left):
   p50/p90/max, and the create call itself.
2. scale: a service of 3 scaled to --scale (100): until all are RUNNING in
   the store, until every one answered through the VIP (one connection
   each, round robin), the task containers per node and each agent's Pss
   (/proc/PID/smaps_rollup) then; scaled back to 3: until 3 tasks are left
   and the other containers are gone from every node.
3. connection rate through the VIP of a real service against direct to a
   task (bench.services_vip's server and client), with --cps-seconds > 0.

    python -m bench.services [--reps 10] [--scale 100] [--cps-seconds 2] [--cps-reps 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from contextlib import contextmanager
from typing import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, percentile, remove_lab, swarm_lab, workspace  # noqa: E402

IPS = {"a": "192.168.95.10", "b": "192.168.95.11", "c": "192.168.95.12"}
SUBNET = "10.0.96.0/22"                 # room for 100 tasks, their VIP and the client
PORT = 80


def ask(netns: str, ip: str, timeout: float = 0.2) -> str | None:
    """One TCP connection from inside `netns` to ip:PORT (a probe server): its answer."""
    from netkit.kernel import netns as kns
    try:
        with kns.socket_in(netns, socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((ip, PORT))
            s.sendall(b"hi")
            return s.recv(100).decode() or None
    except OSError:
        return None


def until_answered(netns: str, vip: str, n: int, timeout: float) -> float:
    """Connect to vip until `n` different tasks answered; the time.monotonic() of the last."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {n} tasks answered through {vip} "
                             f"within {timeout:.0f} s")
        if (name := ask(netns, vip, 0.05)) is not None:    # timeout: the resolution
            seen.add(name)
        else:
            time.sleep(0.005)
    return time.monotonic()


def wait(check, timeout: float, what: str) -> float:
    """Poll `check` until true; the time.monotonic() it was first seen true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic()


class Lab:
    """The three nodes' engines and what the measurements read of them."""

    def __init__(self, host, engines: dict, names: dict, netns: str) -> None:
        self.host, self.engines, self.names, self.netns = host, engines, names, netns
        self.a = engines["a"]
        self.store = self.a.cluster.store()
        self.net = self.a.network("svcnet").id if netns else ""

    def address(self, task) -> str:
        """Task `task`'s address on svcnet."""
        return task.addresses[self.net].split("/")[0]

    def tasks(self, sid: str | None = None) -> list:
        from netkit.services import model
        return model.tasks(self.store.read(), service_id=sid)

    def running(self, sid: str) -> int:
        return sum(1 for t in self.tasks(sid) if t.state == "running" and t.desired == "running")

    def containers(self) -> dict[str, int]:
        """Task containers (any state) per node."""
        from netkit.services.runner import task_id_of
        return {k: sum(1 for ctr in e.store.read().containers() if task_id_of(ctr) is not None)
                for k, e in self.engines.items()}

    def live_containers(self) -> dict[str, int]:
        from netkit.model import State
        from netkit.services.runner import task_id_of
        return {k: sum(1 for ctr in e.store.read().containers()
                       if task_id_of(ctr) is not None and ctr.state is State.RUNNING)
                for k, e in self.engines.items()}

    def clean(self) -> bool:
        return not self.tasks() and not any(self.containers().values())

    def agent_pss(self) -> dict[str, int]:
        from bench.procmem import pss_kib
        from netkit.agent import client
        return {k: pss_kib(client.pid(e.paths.run) or 0) for k, e in self.engines.items()}

    def remove_all(self, timeout: float = 60) -> float:
        t0 = time.monotonic()
        for svc in self.a.services():
            self.a.service_remove(svc.id)
        return wait(self.clean, timeout, "the services' tasks and containers to go") - t0


def spec(name: str, replicas: int, command: tuple[str, ...], **more):
    from netkit.services.model import ServiceSpec
    return ServiceSpec(name, command, replicas=replicas, networks=("svcnet",), **more)


def vip_of(svc) -> str:
    """Service `svc`'s VIP on svcnet (its only network)."""
    return next(iter(svc.vips.values())).split("/")[0]


def probe_server() -> tuple[str, ...]:
    from netkit.testing import probe
    return (sys.executable, probe.__file__, "serve", "tcp", str(PORT), "--hostname")


def bench_create(lab: Lab, netns: str, reps: int) -> None:
    ready, calls, cleanup = [], [], []
    for _ in range(reps):
        t0 = time.monotonic()
        svc = lab.a.service_create(spec("web", 3, probe_server()))
        t1 = time.monotonic()
        vip = vip_of(svc)
        t2 = until_answered(netns, vip, 3, 30)
        calls.append((t1 - t0) * 1000)
        ready.append(t2 - t1)
        cleanup.append(lab.remove_all())
    f = lambda xs, u: (f"p50={percentile(xs, 50):{u}} p90={percentile(xs, 90):{u}} "  # noqa: E731
                       f"max={max(xs):{u}}")
    emit(f"RESULT services create_to_vip_s {f(ready, '.3f')} reps={reps} goal_s=2 "
         f"met={sum(x <= 2 for x in ready)}/{reps}")
    emit(f"RESULT services create_call_ms {f(calls, '.1f')}")
    emit(f"RESULT services remove_to_clean_s {f(cleanup, '.3f')}")


def bench_scale(lab: Lab, netns: str, n: int) -> None:
    svc = lab.a.service_create(spec("web", 3, probe_server()))
    vip = vip_of(svc)
    until_answered(netns, vip, 3, 30)
    pss3 = lab.agent_pss()
    v0, t0 = lab.store.version(), time.monotonic()
    lab.a.service_scale({"web": n})
    t1 = wait(lambda: lab.running(svc.id) == n, 600, f"{n} tasks running")
    writes = lab.store.version() - v0
    t2 = until_answered(netns, vip, n, 120)
    per_node = lab.live_containers()
    pss = lab.agent_pss()
    emit(f"RESULT services scale_up to={n} running_s={t1 - t0:.2f} answering_s={t2 - t0:.2f} "
         f"store_writes={writes} containers={','.join(f'{k}:{v}' for k, v in per_node.items())} "
         f"agent_pss_kib={','.join(f'{k}:{v}' for k, v in pss.items())} "
         f"agent_pss_kib_at_3={','.join(f'{k}:{v}' for k, v in pss3.items())}")
    v0, t0 = lab.store.version(), time.monotonic()
    lab.a.service_scale({"web": 3})
    t1 = wait(lambda: len(lab.tasks(svc.id)) == 3, 600, "3 tasks left")
    t2 = wait(lambda: sum(lab.containers().values()) == 3, 600, "the other containers gone")
    emit(f"RESULT services scale_down from={n} to=3 tasks_left_s={t1 - t0:.2f} "
         f"containers_gone_s={t2 - t0:.2f} store_writes={lab.store.version() - v0} "
         f"running={lab.running(svc.id)}")
    lab.remove_all()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--cps-seconds", type=float, default=2.0, help="0: no VIP/mesh rates")
    ap.add_argument("--cps-reps", type=int, default=3)
    args = ap.parse_args()
    from bench import services_mesh, services_vip
    with lab_of_three() as lab:
        if args.reps:
            bench_create(lab, lab.netns, args.reps)
        if args.scale:
            bench_scale(lab, lab.netns, args.scale)
        if args.cps_seconds > 0:
            services_vip.measure(lab, args.cps_seconds, args.cps_reps)
            services_mesh.measure(lab, args.cps_seconds)
        emit(f"RESULT services done load={os.getloadavg()[0]:.2f}")


@contextmanager
def lab_of_three() -> Iterator[Lab]:
    """The three-node swarm, `svcnet` and the client on c (module doc), in a workspace;
    all removed afterwards, also on failure."""
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    with workspace("netkit-svc.") as (root, run):
        host = Engine(root=root, run=run)
        tag = os.urandom(2).hex()
        lan, names = f"sl{tag}", {k: f"s{k}{tag}" for k in IPS}
        engines: dict = {}
        try:
            swarm_lab(host, engines, lan, "192.168.95.0/24", IPS, names)
            engines["a"].create_network(NetworkSpec("svcnet", driver="overlay", attachable=True,
                                                    subnets=(SUBNET,)))
            client = engines["c"].run(ContainerSpec(name="client", network="svcnet",
                                                    detach=True, command=("sleep", "1d")))[0]
            emit(f"RESULT services setup load={os.getloadavg()[0]:.2f} store=sqlite nodes=3")
            yield Lab(host, engines, names, client.netns)
        finally:
            try:
                if engines:
                    Lab(host, engines, names, "").remove_all()
            except Exception as exc:             # noqa: BLE001 - the lab goes anyway
                print(f"cleanup: {exc}", file=sys.stderr)
            remove_lab(host, engines.values(), names.values(), lan, root)


if __name__ == "__main__":
    main()
