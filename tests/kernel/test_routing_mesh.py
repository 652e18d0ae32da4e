"""The ingress network and the routing mesh on three simulated nodes (real traffic).

Node a is the manager, b and c workers. Stand-in task containers (labelled as
swarm tasks, so they may join the non-attachable `ingress`) run small TCP
servers answering their own name on a and b; the Service and Task objects are
written straight into the cluster store, as the managers and runners would.
Every node, c included (no task), answers on its LAN address:8080, also to
itself, and spreads connections over the tasks of both nodes.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from netkit.errors import Conflict
from netkit.kernel import ingress as kin
from netkit.planning import TASK_LABEL
from netkit.services import mesh
from netkit.services.model import (RUNNING, SHUTDOWN, TASK, PortConfig, Service, ServiceSpec,
                                   Task, new_object_id, put_service, put_task)
from netkit.specs import ContainerSpec
from tests.kernel.helpers import swarm_of_three, wait_converged

pytestmark = pytest.mark.root
IPS = {"a": "192.168.79.10", "b": "192.168.79.11", "c": "192.168.79.12"}
PORT, TARGET = 8080, 80
SERVER = ("import socket,sys\n"
          "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('', {TARGET})); s.listen(128)\n"
          "while True:\n"
          "    c, _ = s.accept(); c.sendall(sys.argv[1].encode()); c.close()\n")
CLIENT = ("import json,socket,sys\n"
          "out = {}\n"
          "for ip in sys.argv[2:]:\n"
          "    got = out.setdefault(ip, [])\n"
          "    for _ in range(int(sys.argv[1])):\n"
          "        try:\n"
          f"            c = socket.create_connection((ip, {PORT}), timeout=2)\n"
          "            got.append(c.recv(64).decode() or 'EMPTY'); c.close()\n"
          "        except OSError as e:\n"
          "            got.append('ERR ' + type(e).__name__)\n"
          "print(json.dumps(out))\n")


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.79.0/24", IPS) as (engines, names, lan, cid):
        yield {"host": host, "names": names, "cid": cid, **engines}


def test_ingress_network_made_by_swarm_init(sw):
    for k in IPS:
        [js] = sw[k].inspect_networks(["ingress"])
        assert (js["Driver"], js["Scope"], js["Ingress"], js["Attachable"], js["Internal"]) == \
            ("overlay", "swarm", True, False, False)
        assert js["IPAM"]["Config"] == [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
        assert js["Options"] == {"com.docker.network.driver.overlay.vxlanid_list": "4096"}
    assert mesh.ingress_network_id(sw["a"].cluster.store()) == sw["a"].network("ingress").id
    [bridge] = sw["a"].inspect_networks(["bridge"])
    assert bridge["Ingress"] is False


def clients(sw, k: str, n: int) -> dict[str, list[str]]:
    out: list[bytes] = []
    rc = sw["host"].node_exec(sw["names"][k], [sys.executable, "-c", CLIENT, str(n), *IPS.values()],
                              capture=out)
    assert rc == 0, out
    return json.loads(b"".join(out).decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def web(sw):
    """Service `web` publishing 8080 -> 80 in mode ingress; tasks on a and b."""
    store = sw["a"].cluster.store()
    ingress_id = mesh.ingress_network_id(store)
    sid = new_object_id()
    spec = ServiceSpec("web", ("srv",), ports=(PortConfig(PORT, TARGET),), networks=(ingress_id,))
    tasks = {}
    try:
        for slot, k in enumerate(("a", "b"), start=1):
            tid = new_object_id()
            ctr = sw[k].run(ContainerSpec(name=f"web.{slot}.{tid}", network="ingress", detach=True,
                                          labels={TASK_LABEL: tid},
                                          command=(sys.executable, "-c", SERVER, f"task-{k}")))[0]
            addr = next(ep for ep in ctr.endpoints if ep.network_id == ingress_id).ipv4_address
            tasks[k] = Task(tid, sid, "web", slot, node=sw["names"][k], spec=spec, state=RUNNING,
                            container_id=ctr.id, addresses={ingress_id: f"{addr}/24"})
        with store.transaction() as c:
            put_service(c, Service(sid, spec))
            for t in tasks.values():
                put_task(c, t)
        wait_mesh(sw, lambda got: {"task-a", "task-b"} <= set(got))
        yield {"store": store, "tasks": tasks, "sid": sid}
    finally:
        with store.transaction() as c:
            for t in tasks.values():
                c.delete_object(TASK, t.id)
            c.delete_object("service", sid)
        for k, t in tasks.items():
            sw[k].remove_container(t.container_id, force=True)


def wait_mesh(sw, ok, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = clients(sw, "c", 6)[IPS["c"]]
        if ok(got):
            return
        assert time.monotonic() < deadline, got
        time.sleep(0.2)


def test_every_node_answers_and_spreads_over_all_tasks(sw, web):
    for k in IPS:
        got = clients(sw, k, 8)
        for ip, names in got.items():
            assert set(names) == {"task-a", "task-b"}, (k, ip, names)     # both, all answered
            assert abs(names.count("task-a") - names.count("task-b")) <= 2, (k, ip, names)


def test_sandboxes_and_no_drift(sw, web):
    ingress_id = mesh.ingress_network_id(web["store"])
    c = web["store"].read()
    sboxes = [ep for ep in c.endpoints(network_id=ingress_id) if ep.container_id == mesh.SANDBOX]
    assert sorted(ep.node for ep in sboxes) == sorted(sw["names"].values())
    for k in IPS:
        assert kin.sandbox_address(kin.sandbox_netns(sw["names"][k])) is not None
        assert "numgen inc mod 2" in kin.list_rules(kin.sandbox_netns(sw["names"][k]))
        assert f"ip daddr {IPS[k]} tcp dport {PORT} dnat to {kin.SANDBOX_ADDR}" in kin.list_rules(sw[k].node.netns)
        assert sw[k].system_check() == []
    with pytest.raises(Conflict, match="ingress network cannot be removed"):
        sw["a"].remove_network("ingress")


def test_desired_shutdown_leaves_the_rotation(sw, web):
    store, t = web["store"], web["tasks"]["b"]
    with store.transaction() as c:
        put_task(c, Task.from_dict({**t.to_dict(), "desired": SHUTDOWN}))
    try:
        wait_mesh(sw, lambda got: set(got) == {"task-a"})
        for k in IPS:
            for ip, names in clients(sw, k, 4).items():
                assert set(names) == {"task-a"}, (k, ip, names)
    finally:
        with store.transaction() as c:
            put_task(c, t)
    wait_mesh(sw, lambda got: {"task-a", "task-b"} <= set(got))


def test_mesh_goes_with_the_last_ingress_port_and_on_leave(sw, web, cli):
    store = web["store"]
    saved = store.read().get_object("service", web["sid"])
    with store.transaction() as c:
        c.delete_object("service", web["sid"])
    try:
        wait_converged(sw[k] for k in IPS)
        deadline = time.monotonic() + 5
        while any(kin.sandbox_address(kin.sandbox_netns(n)) for n in sw["names"].values()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for k in IPS:
            assert kin.list_rules(sw[k].node.netns) is None
            assert sw[k].system_check() == []
    finally:
        with store.transaction() as c:
            c.put_object("service", web["sid"], saved)
    wait_mesh(sw, lambda got: {"task-a", "task-b"} <= set(got))
    # c has no task: leaving takes its sandbox and rules, and a rejoin brings them back
    c_name = sw["names"]["c"]
    sw["c"].swarm_leave()
    assert not kin.ns.exists(kin.sandbox_netns(c_name))
    assert kin.list_rules(sw["c"].node.netns) is None
    assert sw["c"].system_check() == []
    sw["c"].swarm_join(sw["names"]["a"])
    wait_mesh(sw, lambda got: {"task-a", "task-b"} <= set(got))


def test_host_mode_port_of_a_container_on_overlays_only(sw):
    """mode=host: the runner gives the task container `-p published:target`; a container
    whose only networks are overlays publishes through its netkit_gwbridge endpoint."""
    tid = new_object_id()
    name = f"hostport.1.{tid}"
    ctr = sw["b"].run(ContainerSpec(name=name, network="ingress", detach=True, publish=("9090:80",),
                                    labels={TASK_LABEL: tid},
                                    command=(sys.executable, "-c", SERVER, "host-b")))[0]
    try:
        assert [p.host_port for p in ctr.ports] == [9090]
        probe = ("import socket,sys\n"
                 "try:\n"
                 "    c = socket.create_connection((sys.argv[1], 9090), timeout=2)\n"
                 "    print(c.recv(64).decode())\n"
                 "except OSError as e:\n"
                 "    print('ERR', type(e).__name__)\n")
        deadline = time.monotonic() + 5
        for k, target, want in (("a", IPS["b"], "host-b"), ("b", IPS["b"], "host-b"),
                                ("c", IPS["a"], "ERR ConnectionRefusedError")):
            while True:
                out: list[bytes] = []
                sw["host"].node_exec(sw["names"][k], [sys.executable, "-c", probe, target], capture=out)
                got = b"".join(out).decode().strip()
                if got == want or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got == want, (k, target, got)
        assert sw["b"].system_check() == []
    finally:
        sw["b"].remove_container(name, force=True)
