"""The routing mesh's cost: connections per second and iperf3 through it, against direct.

On bench.services' three simulated nodes a, b, c (a swarm on the SQLite
store, the overlay `svcnet`, a client container on c), real services made
with `Engine.service_create`, kept off node c by a constraint: `mweb`, two
replicas of a TCP server answering its name (8080 -> 80, on a and b), and
`perf`, an iperf3 server on a (5201 -> 5201). From node c, which runs no
task, measured:

- connections per second (connect, read the answer, close; one client,
  sequential, for --seconds): through the mesh to c's own LAN address
  (node -> sandbox -> overlay -> task), through the mesh to a's LAN address
  (LAN -> a's sandbox -> task), and directly from the client container on
  c to the task on a over the overlay (svcnet); the ratio mesh / direct;
- iperf3 TCP, one stream: through the mesh (c's LAN address) against the
  client container on c -> the task over the overlay.

(Until the services parts were merged this bench wrote the services and
their tasks into the cluster store by hand, over stand-in containers; the
reconciler and the runners now own those objects.)

    python -m bench.services_mesh [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit  # noqa: E402

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


def measure(lab, seconds: float) -> None:
    """The mesh's figures through new services of `lab` (a bench.services.Lab); removed after."""
    from bench.services import IPS, spec, wait
    from netkit.services.model import PortConfig
    away = (f"node.hostname!={lab.names['c']}",)
    web = lab.a.service_create(spec("mweb", 2, (sys.executable, "-c", SERVER, "t"),
                                    ports=(PortConfig(8080, 80),), constraints=away))
    iperf3 = shutil.which("iperf3") or "iperf3"
    perf = lab.a.service_create(spec("perf", 1, (iperf3, "-s"), ports=(PortConfig(5201, 5201),),
                                     constraints=(f"node.hostname=={lab.names['a']}",)))
    wait(lambda: lab.running(web.id) == 2 and lab.running(perf.id) == 1, 60, "mweb and perf")

    def on_node(argv: list[str]) -> str:
        out: list[bytes] = []
        lab.host.node_exec(lab.names["c"], argv, capture=out)
        return b"".join(out).decode()

    def rate(argv: list[str]) -> float:
        return float(on_node([sys.executable, "-c", CPS, *argv]).split()[0])

    wait(lambda: rate([IPS["c"], "8080", "0.2"]) > 0, 20, "the mesh to answer")
    task = next(t for t in lab.tasks(web.id) if t.node == lab.names["a"])
    secs = str(seconds)
    mesh_own = rate([IPS["c"], "8080", secs])
    mesh_lan = rate([IPS["a"], "8080", secs])
    _, out = lab.engines["c"].exec_output("client", [sys.executable, "-c", CPS, lab.address(task),
                                                     "80", secs])
    direct = float(out.split()[0])
    emit(f"RESULT mesh cps through_own_node={mesh_own:.0f} through_other_node={mesh_lan:.0f} "
         f"direct_to_task={direct:.0f} ratio_own={mesh_own / direct:.2f} "
         f"ratio_other={mesh_lan / direct:.2f}")
    t = str(max(1, int(seconds)))
    (ptask,) = lab.tasks(perf.id)
    through = json.loads(on_node([iperf3, "-J", "-c", IPS["c"], "-p", "5201", "-t", t]))
    _, out = lab.engines["c"].exec_output("client", [iperf3, "-J", "-c", lab.address(ptask),
                                                     "-t", t])
    g_mesh = through["end"]["sum_received"]["bits_per_second"] / 1e9
    g_direct = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    emit(f"RESULT mesh iperf3 through_mesh_gbit_s={g_mesh:.2f} overlay_direct_gbit_s="
         f"{g_direct:.2f} ratio={g_mesh / g_direct:.2f}")
    lab.remove_all()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    from bench.services import lab_of_three
    with lab_of_three() as lab:
        measure(lab, args.seconds)

if __name__ == "__main__":
    main()
