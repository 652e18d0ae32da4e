"""Overlay data plane and convergence, beside raw VXLAN.

Two simulated hosts on one simulated LAN form a swarm; an attachable
overlay joins a container on each. Measured:

- convergence: from the start of `run` on node A to the first successful
  ping reply from a container on node B to the new container (by IP), and
  (once cluster-wide DNS answers) by name;
- throughput: iperf3 TCP, one stream, container on A -> container on B
  over the overlay, to compare with the peers' raw VXLAN figure
  (`../shared/bench/peers/dataplane.sh`, path "vxlan", run in the same
  session by `bash bench/overlay.sh`).

    python -m bench.overlay [--seconds 10] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    tmp = tempfile.mkdtemp(prefix="netkit-ovl.")
    root, run = os.path.join(tmp, "root"), os.path.join(tmp, "run")
    host = Engine(root=root, run=run)
    tag = secrets.token_hex(2)
    lan, a, b = f"bl{tag}", f"ba{tag}", f"bb{tag}"
    engines = []
    try:
        host.create_lan(lan, "192.168.93.0/24", gateway="192.168.93.1")
        host.create_node(a, lan=lan, ip="192.168.93.10/24")
        host.create_node(b, lan=lan, ip="192.168.93.20/24")
        ea, eb = Engine(a, root=root, run=run), Engine(b, root=root, run=run)
        engines += [ea, eb]
        ea.swarm_init()
        eb.swarm_join(a)
        ea.create_network(NetworkSpec("ovl", driver="overlay", attachable=True, subnets=("10.0.93.0/24",)))
        eb.run(ContainerSpec(name="probe", network="ovl", detach=True))
        conv = []
        for i in range(args.reps):
            t0 = time.perf_counter()
            c, _ = ea.run(ContainerSpec(name=f"t{i}", network="ovl", detach=True))
            ip = c.endpoints[0].ipv4_address
            while eb.exec_output("probe", ["ping", "-c", "1", "-W", "0.2", "-q", ip])[0] != 0:
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"no reply from {ip} within 10 s")
            conv.append((time.perf_counter() - t0) * 1000)
        conv.sort()
        print(f"RESULT overlay convergence_ms reps={len(conv)} min={conv[0]:.1f} "
              f"median={conv[len(conv) // 2]:.1f} max={conv[-1]:.1f}", flush=True)
        srv, _ = eb.run(ContainerSpec(name="iperf", network="ovl", detach=True,
                                      command=("iperf3", "-s", "-1")))
        time.sleep(0.5)
        code, out = ea.exec_output("t0", ["iperf3", "-J", "-c", srv.endpoints[0].ipv4_address,
                                          "-t", str(args.seconds)])
        data = json.loads(out)
        gbps = data["end"]["sum_received"]["bits_per_second"] / 1e9
        retr = data["end"]["sum_sent"].get("retransmits", 0)
        print(f"RESULT overlay iperf3 gbit_s={gbps:.2f} retransmits={retr} mtu=1450", flush=True)
    finally:
        from bench.common import remove_lab
        remove_lab(host, engines, (a, b), lan, tmp)


if __name__ == "__main__":
    main()
