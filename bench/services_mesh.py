"""The routing mesh's cost: connections per second and iperf3 through it, against direct.

Three simulated nodes a, b, c on one LAN form a swarm. Stand-in task
containers on `ingress` (labelled as swarm tasks; Service and Task objects
written into the cluster store, as tests/kernel/test_routing_mesh.py does):
a TCP server answering its name on a and b (service `web`, 8080 -> 80) and
an iperf3 server on a (service `perf`, 5201 -> 5201). From node c, which
runs no task, measured:

- connections per second (connect, read the answer, close; one client,
  sequential, for --seconds): through the mesh to c's own LAN address
  (node -> sandbox -> overlay -> task), through the mesh to a's LAN address
  (LAN -> a's sandbox -> task), and directly from a container on c to a
  task's ingress address over the overlay; the ratio mesh / direct;
- iperf3 TCP, one stream: through the mesh (c's LAN address) against a
  container on c -> the task over the overlay.

    python -m bench.services_mesh [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time

SERVER = ("import socket,sys\n"
          "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('', 80)); s.listen(1024)\n"
          "while True:\n"
          "    c, _ = s.accept(); c.sendall(sys.argv[1].encode()); c.close()\n")
CPS = ("import socket,sys,time\n"
       "ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
       "n = fail = 0; end = time.monotonic() + secs\n"
       "while time.monotonic() < end:\n"
       "    try:\n"
       "        c = socket.create_connection((ip, port), timeout=2); c.recv(64); c.close(); n += 1\n"
       "    except OSError:\n"
       "        fail += 1\n"
       "print(n / secs, fail)\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    from netkit.engine import Engine
    from netkit.planning import TASK_LABEL
    from netkit.services import mesh
    from netkit.services.model import (RUNNING, PortConfig, Service, ServiceSpec, Task,
                                       new_object_id, put_service, put_task)
    from netkit.specs import ContainerSpec
    tmp = tempfile.mkdtemp(prefix="netkit-mesh.")
    root, run = os.path.join(tmp, "root"), os.path.join(tmp, "run")
    host = Engine(root=root, run=run)
    tag = secrets.token_hex(2)
    lan = f"ml{tag}"
    names = {k: f"m{k}{tag}" for k in "abc"}
    ips = {"a": "192.168.94.10", "b": "192.168.94.11", "c": "192.168.94.12"}
    engines: dict = {}
    try:
        host.create_lan(lan, "192.168.94.0/24", gateway="192.168.94.1")
        for k, ip in ips.items():
            host.create_node(names[k], lan=lan, ip=f"{ip}/24")
            engines[k] = Engine(names[k], root=root, run=run)
        engines["a"].swarm_init()
        engines["b"].swarm_join(names["a"])
        engines["c"].swarm_join(names["a"])
        store = engines["a"].cluster.store()
        ingress = mesh.ingress_network_id(store)

        def task(k: str, service: Service, slot: int, command: tuple[str, ...]) -> tuple[Task, str]:
            tid = new_object_id()
            ctr = engines[k].run(ContainerSpec(name=f"{service.name}.{slot}.{tid}", network="ingress",
                                               detach=True, labels={TASK_LABEL: tid},
                                               command=command))[0]
            addr = next(ep for ep in ctr.endpoints if ep.network_id == ingress).ipv4_address
            return Task(tid, service.id, service.name, slot, node=names[k], spec=service.spec,
                        state=RUNNING, container_id=ctr.id, addresses={ingress: f"{addr}/24"}), addr

        web = Service(new_object_id(), ServiceSpec("web", ("srv",), ports=(PortConfig(8080, 80),),
                                                   networks=(ingress,)))
        perf = Service(new_object_id(), ServiceSpec("perf", ("iperf3",), networks=(ingress,),
                                                    ports=(PortConfig(5201, 5201),)))
        iperf3 = shutil.which("iperf3") or "iperf3"
        ta, addr_a = task("a", web, 1, (sys.executable, "-c", SERVER, "a"))
        tb, _ = task("b", web, 2, (sys.executable, "-c", SERVER, "b"))
        tp, addr_p = task("a", perf, 1, (iperf3, "-s"))
        with store.transaction() as c:
            for s in (web, perf):
                put_service(c, s)
            for t in (ta, tb, tp):
                put_task(c, t)
        client = engines["c"].run(ContainerSpec(name="client", network="ingress", detach=True,
                                                labels={TASK_LABEL: new_object_id()},
                                                command=("sleep", "1d")))[0]
        assert client is not None

        def on_node(argv: list[str]) -> str:
            out: list[bytes] = []
            host.node_exec(names["c"], argv, capture=out)
            return b"".join(out).decode()

        deadline = time.monotonic() + 20
        while on_node([sys.executable, "-c", CPS, ips["c"], "8080", "0.2"]).split()[0] in ("0", "0.0"):
            if time.monotonic() > deadline:
                raise SystemExit("the mesh did not answer within 20 s")
            time.sleep(0.2)
        secs = str(args.seconds)
        mesh_own = float(on_node([sys.executable, "-c", CPS, ips["c"], "8080", secs]).split()[0])
        mesh_lan = float(on_node([sys.executable, "-c", CPS, ips["a"], "8080", secs]).split()[0])
        _, out = engines["c"].exec_output("client", [sys.executable, "-c", CPS, addr_a, "80", secs])
        direct = float(out.split()[0])
        print(f"RESULT mesh cps through_own_node={mesh_own:.0f} through_other_node={mesh_lan:.0f} "
              f"direct_to_task={direct:.0f} ratio_own={mesh_own / direct:.2f} "
              f"ratio_other={mesh_lan / direct:.2f}", flush=True)
        t = str(int(args.seconds))
        through = json.loads(on_node([iperf3, "-J", "-c", ips["c"], "-p", "5201", "-t", t]))
        _, out = engines["c"].exec_output("client", [iperf3, "-J", "-c", addr_p, "-t", t])
        direct_j = json.loads(out)
        g_mesh = through["end"]["sum_received"]["bits_per_second"] / 1e9
        g_direct = direct_j["end"]["sum_received"]["bits_per_second"] / 1e9
        print(f"RESULT mesh iperf3 through_mesh_gbit_s={g_mesh:.2f} overlay_direct_gbit_s="
              f"{g_direct:.2f} ratio={g_mesh / g_direct:.2f}", flush=True)
    finally:
        from bench.common import remove_lab
        remove_lab(host, engines.values(), names.values(), lan, tmp)


if __name__ == "__main__":
    main()
