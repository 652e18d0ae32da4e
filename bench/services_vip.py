"""Connections per second through a service VIP against direct connections to one task.

On bench.services' three simulated nodes (a swarm on the SQLite store, the
attachable overlay `svcnet`, a client container on node c), a real
service made with `Engine.service_create`: three replicas (one per node)
of a TCP server answering every connection with its host name (the task
container's id[:12]) and closing it. The client opens connections one
after another for `--seconds` (connect, read the name, close with a reset),
to the VIP and to the address of the task on node a directly, in
alternating runs of the same session; `--reps` runs each. RESULT: the
median connections per second of each path and their ratio (the issue's
goal: >= 0.8), and how the VIP spread the connections.

(Until the services parts were merged this bench wrote the service and
its tasks into the cluster store by hand, over stand-in containers; the
acting manager's reconciler and the runners now own those objects.)

    python -m bench.services_vip [--seconds 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit  # noqa: E402

SERVER = """
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
name = (sys.argv[1] if len(sys.argv) > 1 else socket.gethostname()).encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(1024)
while True:
    c, _ = s.accept()
    c.sendall(name)
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


def cps(client, ip: str, seconds: float) -> dict:
    code, out = client.exec_output("client", [sys.executable, "-c", CLIENT, ip, str(seconds), "3"],
                                   timeout=seconds + 30)
    if code != 0:
        raise SystemExit(f"client to {ip} failed: {out}")
    return json.loads(out)


def alternate(client, vip: str, direct: str, seconds: float,
              reps: int) -> tuple[float, float, dict[str, int]]:
    """`reps` runs of `seconds` each from container "client" of engine `client`, to `direct`
    and to `vip` alternating (direct first): the median connections per second through the
    VIP, the median direct, and how many connections each server answered through the VIP."""
    via, to = [], []
    for _ in range(reps):
        to.append(cps(client, direct, seconds))
        via.append(cps(client, vip, seconds))
    med = lambda xs: sorted(x["cps"] for x in xs)[len(xs) // 2]   # noqa: E731
    spread: dict[str, int] = {}
    for r in via:
        for name, count in r["seen"].items():
            spread[name] = spread.get(name, 0) + count
    return med(via), med(to), spread


def measure(lab, seconds: float, reps: int) -> None:
    """The rates through a new service `cps` of `lab` (a bench.services.Lab); removed after."""
    from bench.services import spec, until_answered, vip_of, wait, ask
    svc = lab.a.service_create(spec("cps", 3, (sys.executable, "-c", SERVER)))
    vip = vip_of(svc)
    until_answered(lab.netns, vip, 3, 30)       # every task in the rotation, peers programmed
    task = next(t for t in lab.tasks(svc.id) if t.node == lab.names["a"])
    direct = lab.address(task)
    wait(lambda: ask(lab.netns, direct) is not None, 30, f"{direct} answering directly")
    via, to, spread = alternate(lab.engines["c"], vip, direct, seconds, reps)
    emit(f"RESULT services_vip cps_vip={via:.0f} cps_direct={to:.0f} ratio={via / to:.2f} "
         f"tasks=3 reps={reps} seconds={seconds} "
         f"spread={','.join(str(spread[n]) for n in sorted(spread))}")
    lab.remove_all()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from bench.services import lab_of_three
    with lab_of_three() as lab:
        measure(lab, args.seconds, args.reps)

if __name__ == "__main__":
    main()
