"""The ingress network and the routing mesh on three simulated nodes (real traffic).

Node a is the manager, b and c workers. Service `web` is made through the service
API (the acting manager's reconciler and the node runners do the rest); it publishes
8080 -> 80 in mode ingress and its two tasks are pinned off node c
(`node.hostname!=C`), so c runs no task. Each task runs netkit.testing.probe
`serve tcp 80 --hostname` and answers with its host name (its container id[:12]).
Every node, c included, answers on its LAN address:8080, also to itself, and
spreads connections over the tasks of both other nodes. What test_swarm_e2e.py
checks already (a task on every node, host mode on the default network) is not
repeated here.
"""

from __future__ import annotations

import pytest

from netkit.errors import Conflict, NotFound
from netkit.kernel import ingress as kin
from netkit.services import mesh, model
from netkit.specs import NetworkSpec
from tests.kernel.helpers import PROBE, swarm_of_three
from tests.kernel.test_swarm_e2e import hostnames, probe_from_node, running, spread, wait_for

pytestmark = pytest.mark.root
IPS = {"a": "192.168.79.10", "b": "192.168.79.11", "c": "192.168.79.12"}
PORT, TARGET = 8080, 80
SERVE = (*PROBE, "serve", "tcp", str(TARGET), "--hostname")


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.79.0/24", IPS) as (engines, names, lan, cid):
        try:
            yield {"host": host, "names": names, "cid": cid, **engines}
        finally:
            remove_all(engines["a"])


def remove_all(a, timeout: float = 30) -> None:
    """`service rm` every service; until the runners removed every task object."""
    for svc in a.services():
        try:
            a.service_remove(svc.id)
        except NotFound:
            pass
    wait_for(lambda: not a.cluster.store().read().objects(model.TASK), timeout,
             "the runners to remove every task")


def sandbox_gone(sw) -> bool:
    return not any(kin.ns.exists(kin.sandbox_netns(n)) for n in sw["names"].values())


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
    assert sandbox_gone(sw)                          # no service publishes: no sandbox yet


def mesh_answers(sw, k: str, ip: str, n: int) -> list[str]:
    """`n` connections from node k to ip:8080: one answer each ("!Error" if none)."""
    return probe_from_node(sw["host"], sw["names"][k], ip, PORT, n)


def wait_mesh(sw, want: set[str], froms=tuple(IPS), timeout: float = 15) -> None:
    """Until every node's address:8080, from each node of `froms`, reaches exactly `want`."""
    for k in froms:
        for ip in IPS.values():
            wait_for(lambda: set(mesh_answers(sw, k, ip, 2 * len(want))) == want, timeout,
                     f"{ip}:{PORT} from {k} to reach {sorted(want)}")


@pytest.fixture(scope="module")
def web(sw):
    """Service `web` publishing 8080 -> 80 in mode ingress; two tasks, on a and b."""
    a = sw["a"]
    svc = a.service_create(model.ServiceSpec(
        "web", SERVE, replicas=2, ports=(model.PortConfig(PORT, TARGET),),
        constraints=(f"node.hostname!={sw['names']['c']}",), stop_grace_period=1.0))
    try:
        tasks = running(a, "web", 2)
        assert sorted(t.node for t in tasks) == sorted([sw["names"]["a"], sw["names"]["b"]])
        wait_mesh(sw, hostnames(tasks), froms=("c",))
        yield {"svc": svc, "tasks": tasks}
    finally:
        remove_all(a)


def test_every_node_answers_and_spreads_over_all_tasks(sw, web):
    want = hostnames(web["tasks"])
    for k in IPS:                                    # c: no task, and to its own address too
        for ip in IPS.values():
            got = mesh_answers(sw, k, ip, 8)
            assert spread(got, want, 4), (k, ip, got)


def test_sandboxes_and_no_drift(sw, web):
    store = sw["a"].cluster.store()
    ingress_id = mesh.ingress_network_id(store)
    c = store.read()
    sboxes = [ep for ep in c.endpoints(network_id=ingress_id) if ep.container_id == mesh.SANDBOX]
    assert sorted(ep.node for ep in sboxes) == sorted(sw["names"].values())
    for k in IPS:
        assert kin.sandbox_address(kin.sandbox_netns(sw["names"][k])) is not None
        assert "numgen inc mod 2" in kin.list_rules(kin.sandbox_netns(sw["names"][k]))
        assert f"ip daddr {IPS[k]} tcp dport {PORT} dnat to {kin.SANDBOX_ADDR}" in \
            kin.list_rules(sw[k].node.netns)
        assert sw[k].system_check() == []
    with pytest.raises(Conflict, match="ingress network cannot be removed"):
        sw["a"].remove_network("ingress")


def test_a_task_scaled_away_leaves_the_rotation(sw, web):
    a = sw["a"]
    a.service_scale({"web": 1})
    try:
        (left,) = running(a, "web", 1)
        wait_mesh(sw, {left.container_id[:12]})
        for k in IPS:
            for ip in IPS.values():
                assert set(mesh_answers(sw, k, ip, 4)) == {left.container_id[:12]}, (k, ip)
    finally:
        a.service_scale({"web": 2})
    web["tasks"] = running(a, "web", 2)
    wait_mesh(sw, hostnames(web["tasks"]))


def test_leave_and_rejoin_take_the_mesh_away_and_back(sw, web):
    """c has no task: leaving takes its sandbox and rules, and a rejoin brings them back."""
    c_name = sw["names"]["c"]
    sw["c"].swarm_leave()
    assert not kin.ns.exists(kin.sandbox_netns(c_name))
    assert kin.list_rules(sw["c"].node.netns) is None
    assert sw["c"].system_check() == []
    assert mesh_answers(sw, "a", IPS["c"], 2) == ["!ConnectionRefusedError"] * 2
    assert spread(mesh_answers(sw, "c", IPS["a"], 4), hostnames(web["tasks"]), 2)
    sw["c"].swarm_join(sw["names"]["a"])
    wait_mesh(sw, hostnames(web["tasks"]))
    assert kin.sandbox_address(kin.sandbox_netns(c_name)) is not None
    assert sw["c"].system_check() == []


def test_mesh_goes_with_the_last_ingress_port(sw, web):
    """Last in the module: removes `web`."""
    sw["a"].service_remove("web")
    wait_for(lambda: not sw["a"].cluster.store().read().objects(model.TASK), 30,
             "the runners to remove web's tasks")
    wait_for(lambda: sandbox_gone(sw), 10, "every ingress sandbox to go")
    for k in IPS:
        wait_for(lambda: kin.list_rules(sw[k].node.netns) is None, 10, f"{k}'s mesh rules to go")
        assert sw[k].system_check() == []
    for k in IPS:                                    # nothing listens on 8080 any more
        assert mesh_answers(sw, k, IPS["a"], 2) == ["!ConnectionRefusedError"] * 2, k


def test_host_mode_port_of_a_task_on_overlays_only(sw):
    """mode=host: the task container gets `-p published:target`; a task whose only network
    is an overlay publishes through its netkit_gwbridge endpoint, on its own node only."""
    a, names = sw["a"], sw["names"]
    net = a.create_network(NetworkSpec("hnet", driver="overlay", subnets=("10.0.52.0/24",)))
    try:
        a.service_create(model.ServiceSpec(
            "hp", SERVE, replicas=1, networks=(net.id,), stop_grace_period=1.0,
            ports=(model.PortConfig(9090, TARGET, mode=model.HOST_MODE),),
            constraints=(f"node.hostname=={names['b']}",)))
        (t,) = running(a, "hp", 1)
        [ctr] = [c for c in sw["b"].containers() if c.id == t.container_id]
        assert [p.host_port for p in ctr.ports] == [9090]
        assert [ep.network_id for ep in ctr.endpoints if ep.network_id == net.id] == [net.id]
        for k in IPS:
            wait_for(lambda: probe_from_node(sw["host"], names[k], IPS["b"], 9090, 1)
                     == [t.container_id[:12]], 10, f"b:9090 from {k} to answer")
            assert probe_from_node(sw["host"], names[k], IPS["a"], 9090, 2) == \
                ["!ConnectionRefusedError"] * 2
        assert sw["b"].system_check() == []
    finally:
        remove_all(a)
        a.remove_network(net.id)
